"""First contact with a server: from the provider's initial access to penguinctl's own admin key.

``admin_connection`` returns an open ``SshConnection`` authenticated with the server's admin key
(``servers/<server>/ssh`` in the secrets backend, see ``admin_key``). When there is no admin key
yet, it generates one, stores it *before* touching the server, installs its public half using the
initial access (a static server's ``initial_key`` from the spec), then logs in with the new key
and uses only that from then on. A crash anywhere converges on the next run: a stored key that the
server does not accept yet is installed again through the initial access.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from penguinctl.errors import ProviderError
from penguinctl.remote import admin_key
from penguinctl.remote.errors import SshAuthFailed
from penguinctl.remote.hostkeys import HostKeyStore
from penguinctl.remote.ssh import SshConnection, SshOptions

Audit = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class Target:
    server: str
    host: str
    port: int
    user: str


def admin_connection(
    target: Target,
    *,
    secrets,
    host_keys: HostKeyStore,
    options: SshOptions | None = None,
    initial_key: Any = None,
    audit: Audit | None = None,
) -> SshConnection:
    """An open connection with the admin key, bootstrapping it through ``initial_key`` (private
    key text or a ``SecretValue``) when needed. Raises ``ProviderError`` subclasses."""
    path = admin_key.secret_path(target.server)
    fields = secrets.get(path)
    if fields is None or "private_key" not in fields:
        if initial_key is None:
            raise ProviderError(
                f"server {target.server}: no admin SSH key at {path} and no initial access",
                hint=f"set static.initial_key on server {target.server} to a key that logs in "
                f"as {target.user}, or store one with `penguinctl secrets put {path}`",
            )
        private, public = admin_key.generate(admin_key.key_comment(target.server))
        # stored before the server is touched: a crash leaves a key the next run installs
        secrets.put(
            path,
            {
                "private_key": private,
                "public_key": public,
                "rotated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )
        if audit:
            audit("ssh.admin_key.generate", {"path": path})
        fields = secrets.get(path) or {}
    conn = _connect(target, fields["private_key"], host_keys, options)
    try:
        conn.connect()
        return conn
    except SshAuthFailed:
        conn.close()
        public = fields.get("public_key")
        if initial_key is None or public is None:
            raise
    with _connect(target, initial_key, host_keys, options) as first:
        admin_key.authorize(first, public.reveal())
    if audit:
        audit("ssh.admin_key.install", {"path": path, "via": "initial access"})
    conn = _connect(target, fields["private_key"], host_keys, options)
    conn.connect()  # the proof: the admin key now logs in
    return conn


def _connect(
    target: Target, key: Any, host_keys: HostKeyStore, options: SshOptions | None
) -> SshConnection:
    text = key.reveal() if hasattr(key, "reveal") else key
    return SshConnection(
        target.host, target.port, target.user, text, host_keys=host_keys, options=options
    )
