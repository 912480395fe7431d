"""Plan history: which plan (and catalog version) each tenant had when.

A row of ``plan_assignments`` covers ``[effective_from, effective_to)``. ``apply`` writes them
through :func:`note_tenant_changes` (called from ``state.recording.record_results`` in the
transaction that records the Tenant), so the history is exact to the second. Tenants recorded
before billing existed get one backfilled row from their resource row (``created_at``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from penguinctl.billing import tables as t
from penguinctl.billing.periods import as_utc
from penguinctl.state.models import ResourceRow


@dataclass(frozen=True)
class Assignment:
    tenant: str
    plan: str
    version: int | None
    start: datetime
    end: datetime | None


def _now() -> datetime:
    from penguinctl.state.models import utcnow

    return utcnow()


def _pinned_version(plan: str, at: datetime) -> int | None:
    """The catalog version current at ``at``; None when the catalog cannot say (the version is
    then resolved by the assignment's date when billing)."""
    from penguinctl.errors import PenguinError

    try:
        from penguinctl.billing.catalog import load_catalog

        return load_catalog().plan(plan).current(at.date()).version
    except PenguinError:
        return None


def assign_plan(
    conn: Any,
    *,
    tenant: str,
    plan: str | None,
    at: datetime | None = None,
    version: int | None = None,
    source: str = "manual",
) -> bool:
    """Close the tenant's open assignment at ``at`` and open one for ``plan`` (None: the tenant
    is gone). Nothing happens when the open assignment already has that plan. Returns whether
    the history changed. ``conn`` is a Connection or Session; the caller commits."""
    at = at or _now()
    current = conn.execute(
        sa.select(t.assignments.c.id, t.assignments.c.plan)
        .where(t.assignments.c.tenant == tenant, t.assignments.c.effective_to.is_(None))
        .order_by(t.assignments.c.effective_from.desc())
    ).first()
    if current is not None and current.plan == plan:
        return False
    if current is None and plan is None:
        return False
    if current is not None:
        conn.execute(
            sa.update(t.assignments).where(t.assignments.c.id == current.id).values(effective_to=at)
        )
    if plan is not None:
        conn.execute(
            sa.insert(t.assignments).values(
                tenant=tenant,
                plan=plan,
                version=version if version is not None else _pinned_version(plan, at),
                effective_from=at,
                effective_to=None,
                source=source,
                created_at=_now(),
            )
        )
    return True


def note_tenant_changes(session: Any, results: Sequence[Any]) -> None:
    """Hook for ``record_results``: write plan history for recorded Tenant changes."""
    for res in results:
        change = res.change
        if change.key.kind != "tenant":
            continue
        if change.action.value == "delete":
            assign_plan(session, tenant=change.key.tenant, plan=None, source="apply")
            continue
        plan = (res.data or change.after or {}).get("plan")
        if isinstance(plan, str):
            assign_plan(session, tenant=change.key.tenant, plan=plan, source="apply")


def backfill(conn: Any) -> int:
    """An assignment for every recorded tenant that has none (recorded before billing existed),
    starting when its resource row was created. Returns how many were written."""
    have = set(conn.execute(sa.select(t.assignments.c.tenant).distinct()).scalars())
    resources = ResourceRow.__table__
    rows = conn.execute(
        sa.select(resources.c.tenant, resources.c.data, resources.c.created_at).where(
            resources.c.kind == "tenant"
        )
    ).all()
    written = 0
    for tenant, data, created in rows:
        plan = (data or {}).get("plan") or "starter"
        if tenant in have:
            continue
        assign_plan(conn, tenant=tenant, plan=plan, at=as_utc(created), source="backfill")
        written += 1
    return written


def assignments(conn: Any, tenant: str, start: datetime, end: datetime) -> list[Assignment]:
    """The tenant's assignments overlapping ``[start, end)``, oldest first."""
    a = t.assignments.c
    rows = conn.execute(
        sa.select(a.tenant, a.plan, a.version, a.effective_from, a.effective_to)
        .where(a.tenant == tenant, a.effective_from < end)
        .where(sa.or_(a.effective_to.is_(None), a.effective_to > start))
        .order_by(a.effective_from, a.id)
    ).all()
    return [
        Assignment(
            r.tenant,
            r.plan,
            r.version,
            as_utc(r.effective_from),
            as_utc(r.effective_to) if r.effective_to else None,
        )
        for r in rows
    ]


def billed_tenants(conn: Any, start: datetime, end: datetime) -> list[str]:
    """Tenants with a plan at any time in ``[start, end)``."""
    a = t.assignments.c
    stmt = (
        sa.select(a.tenant)
        .where(a.effective_from < end)
        .where(sa.or_(a.effective_to.is_(None), a.effective_to > start))
        .distinct()
    )
    return sorted(conn.execute(stmt).scalars())
