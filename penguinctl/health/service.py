"""One check pass: run the checks, keep them as history, pause what a critical failure hits.
What ``check`` and the scheduled ``check`` job both call."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass
class CheckPass:
    run_id: int
    results: list[Any]
    paused: list[dict[str, Any]]
    target_names: list[str]

    @property
    def failures(self) -> list[Any]:
        return [r for r in self.results if r.failing]


def backup_schedules(app: Any, servers: list[Any], specs: Any = None) -> dict[str, str]:
    """Server name -> its BackupPolicy's cron schedule: from ``specs`` (given with -f) when
    set, else from each server's tenant's recorded spec."""
    from penguinctl.backup.policy import policy_for

    out = {}
    for t in servers:
        source = specs if specs is not None else RecordedSpecs(app).of(t.tenant)
        policy = policy_for(t.name, t.data, specs=source, recorded={})
        if policy.schedule:
            out[t.name] = policy.schedule
    return out


def backup_on_server(app: Any, servers: list[Any], specs: Any = None) -> dict[str, str]:
    """Server name -> why its backups stay on it: its BackupPolicy (or, without one, where
    it was last backed up) names a repository on the server itself."""
    from penguinctl.backup import records
    from penguinctl.backup.offsite import on_server
    from penguinctl.backup.policy import policy_for

    out = {}
    for t in servers:
        source = specs if specs is not None else RecordedSpecs(app).of(t.tenant)
        policy = policy_for(t.name, t.data, specs=source, recorded={})
        repo = policy.repository
        if policy.name is None:
            runs = [r for r in records.list_runs(app.read_db, server=t.name, limit=20)
                    if r["operation"] == "backup"]  # fmt: skip
            if not runs:
                continue  # never backed up: the freshness check says so
            repo = runs[0]["repository"]
        why = on_server(repo, t.name, t.data)
        if why:
            out[t.name] = why
    return out


class RecordedSpecs:
    """Recorded specs loaded per tenant, once each (names are unique within what one apply
    validated, so tenants are loaded apart). None for a tenant with nothing recorded."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._cache: dict[str, Any] = {}

    def of(self, tenant: str) -> Any:
        if tenant not in self._cache:
            from penguinctl.control import specs
            from penguinctl.errors import PenguinError

            try:
                self._cache[tenant] = specs.load(self.app.db, [tenant] if tenant else None)
            except PenguinError:
                self._cache[tenant] = None
        return self._cache[tenant]


def check_and_record(
    app: Any,
    targets: Any,
    config: Any,
    *,
    actor: str,
    started: datetime,
    pause: bool = True,
    tenant: str | None = None,
    progress: Any = None,
) -> CheckPass:
    from penguinctl.health import actions, history
    from penguinctl.health.runner import Runner
    from penguinctl.state.db import session_scope

    results = Runner(app, config).run(targets, progress)
    names = [t.name for t in targets.servers] + [d for _, d, _ in targets.domains]
    with session_scope(app.db) as session:
        run_id = history.save(session, results, actor=actor, targets=names, started=started)
        paused: list[dict[str, Any]] = []
        if pause:
            servers = {r.name: r.data for r in targets.rows if r.kind == "server"}
            domains = {r.name: r.data.get("server") for r in targets.rows if r.kind == "domain"}
            paused = actions.pause_campaigns(
                session, results, servers=servers, domains=domains, actor=actor, tenant=tenant
            )
    return CheckPass(run_id, results, paused, names)
