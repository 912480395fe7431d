"""The rebuild's proof that mail flows on the replacement.

- ``smtp``: the server answers on port 25 with a ``220`` banner;
- ``imap``: a mailbox of the server logs in over IMAP (993, TLS) with the password the secrets
  backend holds for it (restored by ``recover``);
- ``dkim``: for each domain the server signs, the private key the signer loads on the new host
  (``<root>/dkim-sign/<domain>.<selector>.key``) is the one whose public half is published
  (the recorded DKIM key): mail signed there verifies.

``probes`` may point a check at another address/port (``--probe smtp=HOST:PORT``), e.g. when
the new host's ports are mapped; timeouts are short and bounded.
"""

from __future__ import annotations

import base64
import contextlib
import socket
from typing import Any

TIMEOUT = 10.0


def _target(rb: Any, name: str, default_port: int) -> tuple[str, int]:
    host, port = rb.opts.probes.get(name, (None, default_port))
    return host or rb.row["replacement"]["address"], port


def smtp_banner(host: str, port: int) -> dict[str, Any]:
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
            sock.settimeout(TIMEOUT)
            line = sock.makefile("rb").readline(512).decode("ascii", "replace").strip()
            with contextlib.suppress(OSError):
                sock.sendall(b"QUIT\r\n")
    except OSError as exc:
        return {"check": "smtp", "ok": False, "detail": f"{host}:{port}: {exc}"}
    ok = line.startswith("220")
    return {"check": "smtp", "ok": ok, "detail": f"{host}:{port}: {line[:120]}"}


def imap_login(host: str, port: int, user: str, password: str, *, tls: bool) -> dict[str, Any]:
    import imaplib
    import ssl

    try:
        if tls:
            client = imaplib.IMAP4_SSL(
                host, port, ssl_context=ssl.create_default_context(), timeout=TIMEOUT
            )
        else:
            client = imaplib.IMAP4(host, port, timeout=TIMEOUT)
        try:
            client.login(user, password)
            client.select("INBOX", readonly=True)
        finally:
            with contextlib.suppress(Exception):
                client.logout()
    except (OSError, imaplib.IMAP4.error, ssl.SSLError) as exc:
        from penguinctl.masking import mask

        return {
            "check": "imap",
            "ok": False,
            "detail": f"{user} at {host}:{port}: {mask(str(exc))[:200]}",
        }
    return {"check": "imap", "ok": True, "detail": f"{user} logged in at {host}:{port}"}


def _mailbox(rb: Any) -> tuple[str, str] | None:
    """A mailbox of the server's domains with a password in the secrets backend."""
    from penguinctl.state import repo
    from penguinctl.state.db import session_scope

    with session_scope(rb.app.db) as session:
        domains = {
            r.name
            for r in repo.list_resources(session, kind="domain")
            if (r.data or {}).get("server") == rb.server
        }
        boxes = sorted(
            (r.name, r.tenant or "")
            for r in repo.list_resources(session, kind="mailbox")
            if r.name.rsplit("@", 1)[-1] in domains
        )
    from penguinctl.providers.mailu import mailbox_secret_path

    secrets = rb.app.secrets()
    for address, tenant in boxes:
        fields = secrets.get(mailbox_secret_path(tenant, address)) or {}
        if "password" in fields:
            return address, fields["password"].reveal()
    return None


def dkim_keys(rb: Any, conn: Any) -> list[dict[str, Any]]:
    from cryptography.hazmat.primitives import serialization

    from penguinctl.mailu.signing import KEY_DIR, key_file
    from penguinctl.state import repo
    from penguinctl.state.db import session_scope

    signing = dict((rb.stack or {}).get("signing") or {})
    with session_scope(rb.app.db) as session:
        published = {
            r.name: (r.data or {}).get("public_key")
            for r in repo.list_resources(session, kind="dkim")
        }
    out = []
    for domain, selector in sorted(signing.items()):
        path = f"{rb.root}/{KEY_DIR}/{key_file(domain, selector)}"
        res = conn.run(["cat", "--", path])
        want = published.get(f"{domain}/{selector}")
        if not res.ok:
            out.append({"check": f"dkim:{domain}", "ok": False, "detail": f"{path} missing"})
            continue
        try:
            key = serialization.load_pem_private_key(res.stdout.encode(), password=None)
            der = key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            have = base64.b64encode(der).decode()
        except ValueError:
            have = None
        ok = have is not None and have == want
        detail = (
            f"s={selector} signs with the published key"
            if ok
            else f"s={selector}: the key at {path} is not the published one"
        )
        out.append({"check": f"dkim:{domain}", "ok": ok, "detail": detail})
    return out


def verify_mail(rb: Any, opts: Any) -> list[dict[str, Any]]:
    results = [smtp_banner(*_target(rb, "smtp", 25))]
    box = _mailbox(rb)
    if box is not None:
        host, port = _target(rb, "imap", 993)
        results.append(imap_login(host, port, box[0], box[1], tls=opts.imap_tls))
    if rb.stack is not None:
        with rb.provider().connect() as conn:
            results += dkim_keys(rb, conn)
    return results
