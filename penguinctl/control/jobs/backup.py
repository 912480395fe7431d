"""``backup`` (one BackupPolicy's servers, on its schedule), ``backup-verify`` (the restore
drill: restic check plus a test restore of sample files compared by sha256) and
``backup-state`` (the state store itself and the secrets escrow): the same calls as ``backup
run / verify / state``."""

from __future__ import annotations

from typing import Any

from penguinctl.control.registry import JobFailed


def _fan(ctx: Any, jobs: list[Any], work: Any, what: str) -> dict[str, Any]:
    from penguinctl.remote.fanout import fan_out

    def guarded(job: Any) -> Any:
        if ctx.cancelled:
            raise RuntimeError("not started: the run was asked to stop")
        return work(job)

    summary = fan_out(jobs, guarded, parallel=5, name=lambda j: j.target.name)
    servers = []
    for r in summary.results:
        item = {"server": r.host, "status": "ok" if r.status in ("ok", "changed") else r.status}
        item.update({k: v for k, v in (r.value or {}).items() if k != "warnings"})
        if r.error:
            item["error"] = r.error
        servers.append(item)
    out = {"servers": servers}
    bad = [s for s in servers if s["status"] != "ok"]
    if bad:
        raise JobFailed(
            f"{what}: {len(bad)} of {len(servers)} server(s) failed; first: {bad[0]['server']}: "
            f"{bad[0].get('error')}",
            summary=out,
        )
    return out


def run_backup(ctx: Any) -> dict[str, Any]:
    from penguinctl.backup.plan import backup_jobs

    root = ctx.app.env.get("PENGUINCTL_MAILU_ROOT") or "/mailu"
    jobs = backup_jobs(ctx.app, None, root=root, tenant=ctx.tenant, policy=ctx.target or None)
    return {"policy": ctx.target, **_fan(ctx, jobs, lambda j: j.backup(), "backup")}


def run_verify(ctx: Any) -> dict[str, Any]:
    from penguinctl.backup import records
    from penguinctl.backup.plan import backup_jobs

    jobs = [
        j
        for j in backup_jobs(ctx.app, None, tenant=ctx.tenant)
        if records.last_success(ctx.app.db, j.target.name) is not None  # something to drill
    ]
    return _fan(ctx, jobs, lambda j: j.verify(subset="5%", snapshot=None), "restore drill")


def run_state(ctx: Any) -> dict[str, Any]:
    from penguinctl.backup.statestore import backup_state

    result = backup_state(ctx.app, None)  # and the secrets escrow, when a recovery key exists
    out = {k: result[k] for k in ("file", "bytes", "sha256") if k in result}
    secrets = result.get("secrets") or {}
    out["secrets"] = (
        {k: secrets[k] for k in ("file", "count", "sha256")}
        if secrets.get("file")
        else {"file": None, "warning": secrets.get("warning")}
    )
    return out
