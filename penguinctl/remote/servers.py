"""Recorded servers as SSH endpoints, the route to them, and connections.

A server's SSH endpoint comes from its recorded data (``static``: address, user, port; a
``hostwinds`` server: its main IP as root on 22, or on ``ssh_port`` when its data has one); its
key from the secrets backend at ``tenants/<tenant>/servers/<server>/ssh`` (``platform/...`` for
a server of no tenant; field ``private_key``); its host key is
pinned in the state store. A static server's address may be an alias of the operator's ssh
client config, whose ``User``/``Port`` apply when the spec leaves ``ssh_user``/``ssh_port`` out
(``penguinctl.remote.sshconfig``).

``ssh.via`` in a server's data says it is reached through a jump host: another Server (of the
same tenant, or shared), logged in to with that server's own admin key and pinned host key; or
``ssh://[user@]host[:port]``, a host penguinctl holds no key for, logged in to with the
operator's own identity. Without ``ssh.via`` the config's ``ProxyJump`` for the address applies.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from penguinctl.errors import NotFound, ProviderError, UsageError

if TYPE_CHECKING:
    import paramiko

    from penguinctl.remote.hostkeys import HostKeyStore
    from penguinctl.remote.ssh import SshConnection, SshOptions

HOST_PREFIX = "ssh://"
MAX_VIA = 8
# name -> (tenant, recorded data) of the servers a route may go through
ServerMap = Mapping[str, tuple[str, dict[str, Any]]]


@dataclass(frozen=True)
class Endpoint:
    """Where a server is reached. ``port``/``user`` None: from the ssh config, else 22/root.
    ``via``: the jump Server's endpoint, an ``ssh://`` host string, or None (direct, or the
    ssh config's ``ProxyJump``)."""

    server: str
    host: str
    port: int | None
    user: str | None
    via: Endpoint | str | None = None
    tenant: str = ""  # the server's owner ("" for the platform): where its key lives

    def __str__(self) -> str:
        return self.server


def endpoint_of(
    name: str,
    data: dict[str, Any],
    servers: ServerMap | None = None,
    *,
    tenant: str | None = None,
    _seen: tuple[str, ...] = (),
) -> Endpoint | None:
    """Where to reach a recorded server over SSH (None: an external server, not reachable).
    ``servers`` (name -> (tenant, data)) resolves a jump Server named by ``ssh.via``; a Server
    route needs it (``ProviderError`` otherwise, or when the route is broken)."""
    provider = data.get("provider")
    if provider == "static":
        static = data.get("static") or {}
        port = int(static["ssh_port"]) if static.get("ssh_port") else None
        user = str(static["ssh_user"]) if static.get("ssh_user") else None
        host = str(static.get("address"))
    elif provider == "hostwinds" and data.get("main_ip"):
        host, port, user = str(data["main_ip"]), int(data.get("ssh_port") or 22), "root"
    else:
        return None
    via = (data.get("ssh") or {}).get("via")
    return Endpoint(name, host, port, user, _via(name, via, servers, tenant, _seen), tenant or "")


def _via(
    name: str, via: Any, servers: ServerMap | None, tenant: str | None, seen: tuple[str, ...]
) -> Endpoint | str | None:
    if not via:
        return None
    via = str(via)
    if via.lower().startswith(HOST_PREFIX):
        return via
    route = (*seen, name)
    if via in route or len(route) > MAX_VIA:
        raise ProviderError(f"server {name}: ssh.via loops ({' -> '.join((*route, via))})")
    found = (servers or {}).get(via)
    if found is None:
        raise ProviderError(
            f"server {name}: its jump host, server {via}, is not recorded",
            hint=f"apply the spec with Server {via} in it",
        )
    via_tenant, via_data = found
    if tenant is not None and via_tenant not in ("", tenant):
        raise ProviderError(
            f"server {name} (tenant {tenant}) cannot go through server {via} of tenant "
            f"{via_tenant}",
            hint="a jump Server must belong to the same tenant or be shared",
        )
    ep = endpoint_of(via, via_data, servers, tenant=via_tenant or tenant, _seen=route)
    if ep is None:
        raise ProviderError(
            f"server {name}: its jump host, server {via}, is external: no SSH access to it"
        )
    return replace(ep, tenant=via_tenant or "")


def recorded_servers(engine: Any) -> dict[str, tuple[str, dict[str, Any]]]:
    """name -> (tenant, data) of every recorded (not pending) server."""
    from penguinctl.state import repo
    from penguinctl.state.db import session_scope

    with session_scope(engine) as session:
        rows = [r for r in repo.list_resources(session, kind="server") if r.status != "pending"]
        return {r.name: (r.tenant or "", dict(r.data or {})) for r in rows}


def endpoints(app_or_engine: Any, names: Sequence[str] | None) -> list[Endpoint]:
    """Endpoints of the named recorded servers (in the order given), or of every reachable one
    when ``names`` is empty. ``app_or_engine`` is an ``AppContext`` or a SQLAlchemy engine.
    Raises ``NotFound`` for an unknown name, ``UsageError`` for a named external server."""
    engine = getattr(app_or_engine, "db", app_or_engine)
    known = recorded_servers(engine)
    wanted = list(names) if names else sorted(known)
    missing = [n for n in wanted if n not in known]
    if missing:
        raise NotFound(
            f"no recorded server {', '.join(missing)}", hint="see `penguinctl server list`"
        )
    out = []
    for name in wanted:
        tenant, data = known[name]
        ep = endpoint_of(name, data, known, tenant=tenant)
        if ep is None:
            if names:
                raise UsageError(f"server {name} is external: penguinctl has no SSH access to it")
            continue
        out.append(ep)
    return out


def private_key(secrets: Any, server: str, tenant: str) -> Any:
    """The SSH private key (a ``SecretValue``) of ``server`` of ``tenant`` ("": the platform)
    from the secrets backend."""
    from penguinctl import secret_paths

    path = secret_paths.server_ssh(tenant, server)
    fields = secrets.get(path) or {}
    key = fields.get("private_key")
    if key is None:
        raise ProviderError(
            f"server {server}: no SSH key in the secrets backend at {path}",
            hint=f"store it with `penguinctl secrets put {path} --file FILE` "
            "(a JSON object with a private_key field)",
        )
    return key


def trust_hint(server: str, jump: str | None = None) -> str:
    """What to run to accept a changed host key deliberately."""
    command = f"penguinctl server trust-hostkey {server}" + (f" --jump {jump}" if jump else "")
    return f"if the server was rebuilt on purpose, run `{command}`"


class JumpPool:
    """Jump-host sessions shared by the servers behind them for one command (a fan-out through
    a bastion opens one session to it, not one per server); ``close`` ends them all."""

    def __init__(self) -> None:
        self._conns: dict[Any, SshConnection] = {}
        self._lock = threading.Lock()

    def get(self, key: Any, make: Callable[[], SshConnection]) -> SshConnection:
        with self._lock:
            conn = self._conns.get(key)
            if conn is None:
                conn = self._conns[key] = make()
            return conn

    def close(self) -> None:
        with self._lock:
            conns, self._conns = list(self._conns.values()), {}
        for conn in conns:
            conn.close()

    def __enter__(self) -> JumpPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


KeySource = Callable[[Endpoint], Any]


def connection(
    endpoint: Endpoint,
    key: KeySource,
    host_keys: HostKeyStore,
    options: SshOptions | None = None,
    *,
    ssh_config: paramiko.SSHConfig | None = None,
    jumps: JumpPool | None = None,
    via: Callable[[Endpoint], SshConnection] | None = None,
) -> SshConnection:
    """An unopened ``SshConnection`` to ``endpoint`` and its jump hosts. ``key(endpoint)``
    gives a server's private key (asked at connect time); a jump Server's connection is
    ``via(jump_endpoint)`` when given (the bootstrap's), else built the same way as this one.
    With ``jumps``, jump hosts are shared through the pool. ``ssh_config`` None: the
    operator's, read now (``penguinctl.remote.sshconfig.load``)."""
    from penguinctl.remote import sshconfig
    from penguinctl.remote.ssh import SshConnection

    if ssh_config is None:
        ssh_config = sshconfig.load()
    jump: SshConnection | None = None
    if endpoint.via is not None:

        def make() -> SshConnection:
            if isinstance(endpoint.via, Endpoint):
                if via is not None:
                    return via(endpoint.via)
                return connection(
                    endpoint.via, key, host_keys, options, ssh_config=ssh_config, jumps=jumps
                )
            assert isinstance(endpoint.via, str)
            return SshConnection.jump(
                endpoint.via, host_keys=host_keys, options=options, ssh_config=ssh_config
            )

        jump = jumps.get(endpoint.via, make) if jumps is not None else make()
    conn = SshConnection(
        endpoint.host,
        endpoint.port,
        endpoint.user,
        lambda: key(endpoint),
        host_keys=host_keys,
        options=options,
        via=jump,
        owns_via=jumps is None,
        ssh_config=ssh_config,
        trust_hint=trust_hint(endpoint.server),
    )
    conn.server = endpoint.server
    conn.tenant = endpoint.tenant
    label_hops(conn, endpoint.server)
    return conn


def label_hops(conn: SshConnection, server: str) -> None:
    """Give each jump host in front of ``conn`` that is not a Server of its own the hint naming
    ``trust-hostkey SERVER --jump HOST:PORT`` (the command that accepts its changed key)."""
    for hop in conn.hops():
        if hop.trust_hint is None:
            hop.trust_hint = trust_hint(server, f"{hop.pin_host}:{hop.port}")


def connect(
    endpoint: Endpoint,
    secrets: Any,
    host_keys: HostKeyStore,
    options: SshOptions | None = None,
    *,
    ssh_config: paramiko.SSHConfig | None = None,
    jumps: JumpPool | None = None,
) -> SshConnection:
    """An open ``SshConnection`` to ``endpoint`` (use it as a context manager), through its jump
    hosts; keys from ``secrets``. A changed host key raises ``HostKeyChanged`` whose hint names
    the command that accepts it."""
    conn = connection(
        endpoint,
        lambda ep: private_key(secrets, ep.server, ep.tenant),
        host_keys,
        options,
        ssh_config=ssh_config,
        jumps=jumps,
    )
    try:
        conn.connect()
    except BaseException:
        conn.close()
        raise
    return conn
