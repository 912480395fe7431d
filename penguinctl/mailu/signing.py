"""Per-domain DKIM signing on a MailU server, through rspamd's ``dkim_signing`` maps.

MailU signs every domain with one global selector through its admin container's fake vault.
penguinctl overrides that (``overrides/rspamd/dkim_signing.conf``, written by the MailU playbook:
``.priority 2``, ``use_vault = false``, ``selector_map``/``path_map``) and keeps, on the host:

- ``<root>/dkim-sign/<domain>.<selector>.key``: the private key of each signing domain (PEM,
  mode 0640, group = the ``rspamd`` group inside the antispam container), from the secrets
  backend (``tenants/<tenant>/domains/<domain>/dkim/<selector>``: ``owner`` says each domain's
  tenant);
- ``<root>/dkim-sign/selectors.map`` (``domain selector`` lines) and ``paths.map`` (``domain
  /dkim-sign/$domain.$selector.key``): which key signs which domain. rspamd reloads changed maps
  by itself within seconds, so a switch needs no restart.

``sync`` makes the host match a ``{domain: selector}`` mapping: keys written first, maps
replaced atomically after (a map never names a key that is not there yet), then keys no map line
names any more are deleted. Every step is idempotent; a crash converges on the next call.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping

from penguinctl.errors import ProviderError
from penguinctl.providers.signing import DkimSigner
from penguinctl.remote.ssh import SshConnection

KEY_DIR = "dkim-sign"
CONTAINER_DIR = "/dkim-sign"  # where antispam sees KEY_DIR (read-only mount)
_KEY_FILE = re.compile(r"([a-z0-9.-]+)\.([A-Za-z0-9_-]+)\.key")
_GID_MARKER = ".rspamd-gid"


def key_file(domain: str, selector: str) -> str:
    return f"{domain}.{selector}.key"


def render_maps(signing: Mapping[str, str]) -> tuple[bytes, bytes]:
    """``selectors.map`` and ``paths.map`` for ``{domain: selector}``, sorted by domain."""
    selectors = "".join(f"{d} {s}\n" for d, s in sorted(signing.items()))
    paths = "".join(
        f"{d} {CONTAINER_DIR}/$domain.$selector.key\n" for d, _ in sorted(signing.items())
    )
    header = "# written by penguinctl: which DKIM selector signs each domain\n"
    return (header + selectors).encode(), (header + paths).encode()


class MailuSigning:
    """The signing keys and maps under ``root`` on one connected host."""

    def __init__(
        self,
        conn: SshConnection,
        *,
        secrets,
        root: str = "/mailu",
        sudo: bool = False,
        project: str = "mailu",
        owner: Callable[[str], str] = lambda domain: "",
    ) -> None:
        self.conn = conn
        self.secrets = secrets
        self.owner = owner  # domain -> its tenant (where its keys live)
        self.dir = posixpath.join(root, KEY_DIR)
        self.root = root
        self.sudo = sudo
        self.project = project

    def _private_key(self, domain: str, selector: str) -> bytes:
        from penguinctl import secret_paths

        path = secret_paths.dkim_key(self.owner(domain), domain, selector)
        fields = self.secrets.get(path)
        if not fields or "private_key" not in fields:
            raise ProviderError(
                f"{self.conn.target}: no DKIM private key at {path} to sign {domain} with",
                hint="run `penguinctl apply` so the key is generated first",
            )
        return fields["private_key"].reveal().encode()

    def rspamd_gid(self) -> int | None:
        """The rspamd group id inside the antispam container (cached in a marker file once the
        container answered); None before the stack runs."""
        marker = posixpath.join(self.dir, _GID_MARKER)
        res = self.conn.run(["cat", marker], sudo=self.sudo)
        if res.ok and res.stdout.strip().isdecimal():
            return int(res.stdout.strip())
        res = self.conn.run(
            ["docker", "compose", "-p", self.project, "--project-directory", self.root,
             "exec", "-T", "antispam", "id", "-g", "rspamd"],
            sudo=self.sudo,
            timeout=60,
        )  # fmt: skip
        text = res.stdout.strip()
        if not res.ok or not text.isdecimal():
            return None
        self.conn.put_file(marker, f"{text}\n".encode(), 0o644, sudo=self.sudo)
        return int(text)

    def present(self) -> set[str]:
        res = self.conn.run(["ls", "-1", "--", self.dir], sudo=self.sudo)
        return set(res.stdout.split()) if res.ok else set()

    def sync(self, signing: Mapping[str, str]) -> list[str]:
        """Make the host sign exactly ``signing`` ({domain: selector}); returns what changed."""
        changed: list[str] = []
        gid = self.rspamd_gid()
        wanted = {key_file(d, s) for d, s in signing.items()}
        for domain, selector in sorted(signing.items()):
            path = posixpath.join(self.dir, key_file(domain, selector))
            if self.conn.put_file(path, self._private_key(domain, selector), 0o640, sudo=self.sudo):
                changed.append(f"key {domain}/{selector}")
            if gid is not None:
                self.conn.run(["chgrp", str(gid), "--", path], sudo=self.sudo, check=True)
        selectors, paths = render_maps(signing)
        for name, data in (("selectors.map", selectors), ("paths.map", paths)):
            if self.conn.put_file(posixpath.join(self.dir, name), data, 0o644, sudo=self.sudo):
                changed.append(name)
        stale = sorted(f for f in self.present() if _KEY_FILE.fullmatch(f) and f not in wanted)
        if stale:
            self.conn.run(
                ["rm", "-f", "--", *(posixpath.join(self.dir, f) for f in stale)],
                sudo=self.sudo,
                check=True,
            )
            changed += [f"removed {f}" for f in stale]
        return changed

    def signing(self) -> dict[str, str]:
        """What the host's selectors map says now."""
        res = self.conn.run(["cat", posixpath.join(self.dir, "selectors.map")], sudo=self.sudo)
        out: dict[str, str] = {}
        for line in res.stdout.splitlines() if res.ok else []:
            parts = line.split()
            if len(parts) == 2 and not line.startswith("#"):
                out[parts[0]] = parts[1]
        return out


class MailuSigner(DkimSigner):
    """The DKIM rotation's signer switch for a MailU server: keeps every other domain's line,
    points ``domain`` at ``selector`` (its key written first), drops the old key file."""

    def __init__(self, server: str, open_signing: Callable[[], MailuSigning]) -> None:
        self.server = server
        self._open = open_signing

    def switch(self, domain: str, selector: str, secret_path: str) -> str:
        signing = self._open()
        try:
            current = signing.signing()
            current[domain] = selector
            changed = signing.sync(current)
        finally:
            signing.conn.close()
        did = ", ".join(changed) if changed else "already signing"
        return f"{self.server} signs {domain} with {selector} ({did})"
