"""Recorded servers as SSH endpoints, and connections to them.

A server's SSH endpoint comes from its recorded data (``static``: address, user, port; a
``hostwinds`` server: its main IP as root on 22, or on ``ssh_port`` when its data has one); its
key from the secrets backend at ``servers/<server>/ssh`` (field ``private_key``); its host key is
pinned in the state store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from penguinctl.errors import NotFound, ProviderError, UsageError

if TYPE_CHECKING:
    from penguinctl.remote.hostkeys import HostKeyStore
    from penguinctl.remote.ssh import SshConnection, SshOptions


@dataclass(frozen=True)
class Endpoint:
    server: str
    host: str
    port: int
    user: str

    def __str__(self) -> str:
        return self.server


def endpoint_of(name: str, data: dict[str, Any]) -> Endpoint | None:
    """Where to reach a recorded server over SSH (None: an external server, not reachable)."""
    provider = data.get("provider")
    if provider == "static":
        static = data.get("static") or {}
        return Endpoint(
            name,
            str(static.get("address")),
            int(static.get("ssh_port") or 22),
            str(static.get("ssh_user") or "root"),
        )
    if provider == "hostwinds" and data.get("main_ip"):
        return Endpoint(name, str(data["main_ip"]), int(data.get("ssh_port") or 22), "root")
    return None


def endpoints(app_or_engine: Any, names: Sequence[str] | None) -> list[Endpoint]:
    """Endpoints of the named recorded servers (in the order given), or of every reachable one
    when ``names`` is empty. ``app_or_engine`` is an ``AppContext`` or a SQLAlchemy engine.
    Raises ``NotFound`` for an unknown name, ``UsageError`` for a named external server."""
    from penguinctl.state import repo
    from penguinctl.state.db import session_scope

    engine = getattr(app_or_engine, "db", app_or_engine)
    with session_scope(engine) as session:
        rows = [r for r in repo.list_resources(session, kind="server") if r.status != "pending"]
        known = {r.name: dict(r.data or {}) for r in rows}
    wanted = list(names) if names else sorted(known)
    missing = [n for n in wanted if n not in known]
    if missing:
        raise NotFound(
            f"no recorded server {', '.join(missing)}", hint="see `penguinctl server list`"
        )
    out = []
    for name in wanted:
        ep = endpoint_of(name, known[name])
        if ep is None:
            if names:
                raise UsageError(f"server {name} is external: penguinctl has no SSH access to it")
            continue
        out.append(ep)
    return out


def private_key(secrets: Any, server: str) -> Any:
    """The server's SSH private key (a ``SecretValue``) from the secrets backend."""
    fields = secrets.get(f"servers/{server}/ssh") or {}
    key = fields.get("private_key")
    if key is None:
        raise ProviderError(
            f"server {server}: no SSH key in the secrets backend at servers/{server}/ssh",
            hint=f"store it with `penguinctl secrets put servers/{server}/ssh --file FILE` "
            "(a JSON object with a private_key field)",
        )
    return key


def connect(
    endpoint: Endpoint,
    secrets: Any,
    host_keys: HostKeyStore,
    options: SshOptions | None = None,
) -> SshConnection:
    """An open ``SshConnection`` to ``endpoint`` (use it as a context manager). A changed host
    key raises ``HostKeyChanged`` whose hint names this server in the command to accept it."""
    from penguinctl.remote.errors import HostKeyChanged
    from penguinctl.remote.ssh import SshConnection

    conn = SshConnection(
        endpoint.host,
        endpoint.port,
        endpoint.user,
        private_key(secrets, endpoint.server),
        host_keys=host_keys,
        options=options,
    )
    try:
        conn.connect()
    except HostKeyChanged as exc:
        exc.hint = (exc.hint or "").replace(
            "trust-hostkey SERVER", f"trust-hostkey {endpoint.server}"
        )
        raise
    return conn
