"""First contact with a server: from the provider's initial access to penguinctl's own admin key.

``admin_connection`` returns an open ``SshConnection`` authenticated with the server's admin key
(``<owner>/servers/<server>/ssh`` in the secrets backend, see ``admin_key``). When there is no
admin key yet, it generates one, stores it *before* touching the server, installs its public half
using the initial access (a static server's ``initial_key`` from the spec, or a Hostwinds server's
root password from the provider's API: ``initial_password``, the only password login penguinctl ever
makes), then logs in with the new key and uses only that from then on. The initial access may be
given as a callable: it is called only when the admin key does not log in yet, so a server that
is already bootstrapped never has its root password fetched. A crash anywhere converges on the
next run: a stored key that the server does not accept yet is installed again through the
initial access. A server behind a jump host (``Target.via``) is bootstrapped through it: every
session this module opens asks ``via()`` for a fresh (unopened or open) jump connection and
closes it with its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from penguinctl import clock
from penguinctl.errors import ProviderError
from penguinctl.remote import admin_key
from penguinctl.remote.errors import SshAuthFailed
from penguinctl.remote.hostkeys import HostKeyStore
from penguinctl.remote.ssh import SshConnection, SshOptions

if TYPE_CHECKING:
    import paramiko

Audit = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class Target:
    """The server to bootstrap. ``port``/``user`` None: from ``ssh_config``, else 22/root.
    ``via`` returns the jump host's connection (None: direct); ``ssh_config`` is the operator's
    client config (None: none)."""

    server: str
    host: str
    port: int | None
    user: str | None
    via: Callable[[], SshConnection | None] | None = None
    ssh_config: paramiko.SSHConfig | None = None
    trust_hint: str | None = None
    tenant: str = ""  # the server's owner ("": the platform): where its admin key lives


def admin_connection(
    target: Target,
    *,
    secrets,
    host_keys: HostKeyStore,
    options: SshOptions | None = None,
    initial_key: Any = None,
    initial_password: Any = None,
    audit: Audit | None = None,
) -> SshConnection:
    """An open connection with the admin key, bootstrapping it through ``initial_key`` (private
    key text or a ``SecretValue``) or ``initial_password`` (a ``SecretValue`` or str) when
    needed; either may be a callable returning it, called only then. Raises ``ProviderError``
    subclasses."""
    path = admin_key.secret_path(target.tenant, target.server)
    has_initial = initial_key is not None or initial_password is not None
    fields = secrets.get(path)
    if fields is None or "private_key" not in fields:
        if not has_initial:
            raise ProviderError(
                f"server {target.server}: no admin SSH key at {path} and no initial access",
                hint=f"set static.initial_key on server {target.server} to a key that logs in "
                f"as {target.user or 'root'}, or store one with `penguinctl secrets put {path}`",
            )
        private, public = admin_key.generate(admin_key.key_comment(target.server))
        # stored before the server is touched: a crash leaves a key the next run installs
        secrets.put(
            path,
            {
                "private_key": private,
                "public_key": public,
                "rotated_at": clock.now().isoformat(timespec="seconds"),
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
        if not has_initial or public is None:
            raise
    except BaseException:
        conn.close()
        raise
    with _initial_connection(target, initial_key, initial_password, host_keys, options) as first:
        admin_key.authorize(first, public.reveal())
    if audit:
        audit("ssh.admin_key.install", {"path": path, "via": "initial access"})
    conn = _connect(target, fields["private_key"], host_keys, options)
    try:
        conn.connect()  # the proof: the admin key now logs in
    except BaseException:
        conn.close()
        raise
    return conn


def _initial_connection(
    target: Target,
    initial_key: Any,
    initial_password: Any,
    host_keys: HostKeyStore,
    options: SshOptions | None,
) -> SshConnection:
    """The session through the provider's initial access (the key if given, else the
    password); a callable is asked for the value now."""
    if initial_key is not None:
        key = initial_key() if callable(initial_key) else initial_key
        return _connect(target, key, host_keys, options)
    password = initial_password() if callable(initial_password) else initial_password
    return _session(target, None, host_keys, options, password=password)


def _connect(
    target: Target, key: Any, host_keys: HostKeyStore, options: SshOptions | None
) -> SshConnection:
    text = key.reveal() if hasattr(key, "reveal") else key
    return _session(target, text, host_keys, options)


def _session(
    target: Target,
    key: Any,
    host_keys: HostKeyStore,
    options: SshOptions | None,
    *,
    password: Any = None,
) -> SshConnection:
    from penguinctl.remote.servers import label_hops

    via = target.via() if target.via is not None else None
    try:
        conn = SshConnection(
            target.host,
            target.port,
            target.user,
            key,
            password=password,
            host_keys=host_keys,
            options=options,
            via=via,
            ssh_config=target.ssh_config,
            trust_hint=target.trust_hint,
        )
    except BaseException:
        if via is not None:
            via.close()
        raise
    label_hops(conn, target.server)
    return conn
