"""Which servers a backup operation covers and under which policy: what ``backup run /
prune / verify / restore`` and the scheduled ``backup`` and ``backup-verify`` jobs share.

Policies come from the spec files given with ``-f`` when there are any (an override), else from
the recorded spec (what the last apply of each tenant recorded), else the defaults."""

from __future__ import annotations

from typing import Any

from penguinctl.errors import UsageError


def backup_jobs(
    app: Any,
    names: list[str] | None,
    *,
    files: list[Any] | None = None,
    root: str = "/mailu",
    tenant: str | None = None,
    policy: str | None = None,
    **opts: Any,
) -> list[Any]:
    """A ``backup.service.Job`` per server reachable over SSH (every one when ``names`` is
    None; only ``tenant``'s and only those under BackupPolicy ``policy`` when given)."""
    from penguinctl.backup.policy import policy_for
    from penguinctl.backup.service import Job, Options
    from penguinctl.backup.targets import load_targets
    from penguinctl.health.service import RecordedSpecs

    targets = load_targets(app.read_db, names or None, require_ssh=True)  # none: NoState
    if tenant is not None:
        targets = [t for t in targets if t.tenant == tenant]
    given = None
    if files:
        from penguinctl.spec import load_specs

        given = load_specs(files)
    recorded = RecordedSpecs(app)
    options = Options(root=root, **opts)
    out = []
    for t in targets:
        specs = given if given is not None else recorded.of(t.tenant)
        chosen = policy_for(t.name, t.data, specs=specs, recorded={})
        if policy is not None and chosen.name != policy:
            continue
        out.append(Job(app, t, chosen, options))
    return out


def require_choice(names: list[str] | None, all_servers: bool) -> None:
    if bool(names) == all_servers:
        raise UsageError("name the servers, or pass --all (not both)")
