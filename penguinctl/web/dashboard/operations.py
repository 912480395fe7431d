"""Fleet, Jobs and events, and Audit: read-only queries, each scoped to a tenant or the platform.

A tenant viewer sees its own servers and series; platform rows (tenant ``""``) only a platform
viewer sees."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from penguinctl.backup.tables import runs as backup_runs
from penguinctl.control.tables import JobRun, JobSeries
from penguinctl.health.tables import check_results
from penguinctl.state.columns import aware
from penguinctl.state.models import AuditEvent, ResourceRow
from penguinctl.webhooks.tables import WebhookDelivery, WebhookEndpoint

_R = ResourceRow.__table__
_S = JobSeries.__table__
_RUN = JobRun.__table__
_A = AuditEvent.__table__
_D = WebhookDelivery.__table__
_E = WebhookEndpoint.__table__
_C = check_results
AUDIT_PAGE = 100


def _scope(stmt: Any, column: Any, scope: str | None) -> Any:
    return stmt if scope is None else stmt.where(column == scope)


def fleet(engine: sa.Engine, scope: str | None) -> list[dict[str, Any]]:
    from penguinctl.web.dashboard.domains import latest_checks

    with engine.connect() as conn:
        servers = conn.execute(
            _scope(sa.select(_R).where(_R.c.kind == "server"), _R.c.tenant, scope).order_by(
                _R.c.tenant, _R.c.name
            )
        ).all()
        checks = latest_checks(conn, sorted({s.name for s in servers}))
        b = backup_runs.c
        last: dict[tuple[str, str, str], datetime] = {}
        for tenant, server, op, when in conn.execute(
            _scope(
                sa.select(b.tenant, b.server, b.operation, sa.func.max(b.finished_at))
                .where(b.status == "ok")
                .group_by(b.tenant, b.server, b.operation),
                b.tenant,
                scope,
            )
        ):
            last[(tenant, server, op)] = aware(when)
    out = []
    for s in servers:
        data = s.data or {}
        ips = data.get("ips") or (data.get("external") or {}).get("ips") or []
        found = [c for c in checks.get(s.name, []) if c["tenant"] in (s.tenant, "")]
        fcrdns = [c for c in found if c["check"] == "fcrdns"]
        disk = [c for c in found if c["check"] == "disk"]
        cost = data.get("monthly_cost")
        out.append(
            {
                "tenant": s.tenant,
                "name": s.name,
                "provider": data.get("provider") or s.provider.split(":")[-1],
                "status": s.status,
                "hostname": data.get("hostname", ""),
                "ips": ips,
                "rdns": (
                    "ok"
                    if fcrdns and all(c["status"] == "ok" for c in fcrdns)
                    else "fail"
                    if fcrdns
                    else "unknown"
                ),
                "rdns_detail": "; ".join(f"{c['subject']}: {c['detail']}" for c in fcrdns)[:300],
                "cost": f"${cost}" if cost not in (None, "") else "-",
                "mailu": (data.get("mail") or {}).get("version") or "-",
                "disk": disk[0]["detail"][:80] if disk else "not checked",
                "disk_status": (disk[0]["status"] if disk else "unknown"),
                "last_backup": last.get((s.tenant, s.name, "backup")),
                "last_drill": last.get((s.tenant, s.name, "verify")),
            }
        )
    return out


def jobs(engine: sa.Engine, scope: str | None) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        series = conn.execute(
            _scope(sa.select(_S).where(_S.c.active.is_(True)), _S.c.tenant, scope).order_by(
                _S.c.job, _S.c.tenant, _S.c.target
            )
        ).all()
        latest = sa.select(sa.func.max(_RUN.c.id)).group_by(
            _RUN.c.job, _RUN.c.tenant, _RUN.c.target
        )
        runs = {
            (r.job, r.tenant, r.target): r
            for r in conn.execute(
                _scope(sa.select(_RUN).where(_RUN.c.id.in_(latest)), _RUN.c.tenant, scope)
            )
        }
    out = []
    for s in series:
        run = runs.get((s.job, s.tenant, s.target))
        out.append(
            {
                "id": s.id,
                "job": s.job,
                "tenant": s.tenant,
                "target": s.target,
                "schedule": s.schedule,
                "source": s.source,
                "paused": s.paused,
                "failures": s.failures,
                "next_run": aware(s.next_run_at),
                "last_run": aware(run.started_at) if run else None,
                "last_status": run.status if run else "never",
                "last_error": (run.error or "")[:300] if run else "",
            }
        )
    return out


def failures(engine: sa.Engine, scope: str | None, limit: int = 50) -> list[dict[str, Any]]:
    stmt = (
        _scope(
            sa.select(_RUN).where(_RUN.c.status.in_(("failed", "timeout", "interrupted"))),
            _RUN.c.tenant,
            scope,
        )
        .order_by(_RUN.c.id.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        return [
            {
                "id": r.id,
                "job": r.job,
                "tenant": r.tenant,
                "target": r.target,
                "status": r.status,
                "started_at": aware(r.started_at),
                "error": (r.error or "")[:300],
            }
            for r in conn.execute(stmt)
        ]


def series(engine: sa.Engine, scope: str | None, series_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            _scope(sa.select(_S).where(_S.c.id == series_id), _S.c.tenant, scope)
        ).first()


def deliveries(engine: sa.Engine, scope: str | None, limit: int = 50) -> list[dict[str, Any]]:
    stmt = (
        _scope(sa.select(_D, _E.c.url).join(_E, _E.c.id == _D.c.endpoint_id), _D.c.tenant, scope)
        .order_by(_D.c.id.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        return [
            {
                "id": r.id,
                "event_id": r.event_id,
                "event_type": r.event_type,
                "tenant": r.tenant,
                "url": r.url,
                "status": r.status,
                "attempts": r.attempts,
                "last_status": r.last_status,
                "last_error": (r.last_error or "")[:200],
                "created_at": aware(r.created_at),
                "delivered_at": aware(r.delivered_at),
            }
            for r in conn.execute(stmt)
        ]


def audit(
    engine: sa.Engine,
    scope: str | None,
    *,
    action: str = "",
    actor: str = "",
    resource: str = "",
    result: str = "",
    before: int | None = None,
) -> dict[str, Any]:
    """One page of audit events, newest first; ``before`` is the id to continue below."""
    stmt = _scope(sa.select(_A), _A.c.tenant, scope)
    if action:
        stmt = stmt.where(_A.c.action.startswith(action[:100], autoescape=True))
    if actor:
        stmt = stmt.where(_A.c.actor.contains(actor[:100], autoescape=True))
    if resource:
        stmt = stmt.where(_A.c.resource.contains(resource[:200], autoescape=True))
    if result:
        stmt = stmt.where(_A.c.result == result[:20])
    if before:
        stmt = stmt.where(_A.c.id < before)
    with engine.connect() as conn:
        rows = conn.execute(stmt.order_by(_A.c.id.desc()).limit(AUDIT_PAGE + 1)).all()
    more = len(rows) > AUDIT_PAGE
    rows = rows[:AUDIT_PAGE]
    return {
        "rows": [
            {
                "id": r.id,
                "ts": aware(r.ts),
                "actor": r.actor,
                "tenant": r.tenant,
                "action": r.action,
                "resource": r.resource,
                "result": r.result,
                "details": r.details or {},
            }
            for r in rows
        ],
        "next": rows[-1].id if more and rows else None,
    }
