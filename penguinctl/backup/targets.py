"""Recorded servers as backup (and check) targets: endpoint, tenant, data, and an SSH session.

The endpoint, key lookup and connection are ``penguinctl.remote.servers``' (the ones ``server
exec`` uses; key at ``servers/<server>/ssh``, field ``private_key``); host keys are pinned in the
state store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from penguinctl.errors import NotFound, UsageError


def endpoint_of(name: str, data: dict[str, Any], servers=None, *, tenant: str | None = None):
    from penguinctl.remote.servers import endpoint_of as find

    return find(name, data, servers, tenant=tenant)


@dataclass(frozen=True)
class Target:
    tenant: str
    name: str
    data: dict[str, Any]
    endpoint: Any  # commands_remote.Endpoint, None for an external server

    def __str__(self) -> str:
        return self.name


def load_targets(engine, names: list[str] | None, *, require_ssh: bool) -> list[Target]:
    """Recorded (not pending) servers named ``names`` (every one when None). With
    ``require_ssh`` an external server named explicitly is an error; unnamed ones are skipped."""
    from penguinctl.state import repo
    from penguinctl.state.db import session_scope

    with session_scope(engine) as session:
        rows = [r for r in repo.list_resources(session, kind="server") if r.status != "pending"]
    known = {r.name: r for r in rows}
    routes = {r.name: (r.tenant or "", dict(r.data or {})) for r in rows}
    wanted = list(dict.fromkeys(names)) if names else sorted(known)
    missing = [n for n in wanted if n not in known]
    if missing:
        raise NotFound(
            f"no recorded server {', '.join(missing)}", hint="see `penguinctl server list`"
        )
    out = []
    for name in wanted:
        row = known[name]
        ep = endpoint_of(name, row.data or {}, routes, tenant=row.tenant or "")
        if ep is None and require_ssh:
            if names:
                raise UsageError(f"server {name} is external: penguinctl has no SSH access to it")
            continue
        out.append(Target(row.tenant, name, dict(row.data or {}), ep))
    return out


def connect(app, target: Target, *, timeout: float = 6 * 3600.0):
    """An open ``SshConnection`` to ``target`` (host key pinned in the state store; a changed
    key names the server in the hint). Use it as a context manager."""
    from penguinctl.remote.hostkeys import StateHostKeyStore
    from penguinctl.remote.servers import connect as open_ssh
    from penguinctl.remote.ssh import SshOptions

    store = StateHostKeyStore(app.db, actor=app.actor())
    return open_ssh(target.endpoint, app.secrets(), store, SshOptions(command_timeout=timeout))
