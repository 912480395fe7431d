"""Per-subject due times a job keeps for itself (``job_due``): an idle run reads only the rows
due now instead of every domain. Index rows are (job, tenant, subject, due_at); the row with
subject ``""`` records when the tenant's index was built (the recorded spec it reflects)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from penguinctl.control.tables import DueItem, SpecDocument

_Q = DueItem.__table__
_D = SpecDocument.__table__
FAR = datetime(9999, 1, 1).astimezone()


def set_due(engine: Any, job: str, tenant: str, items: Iterable[tuple[str, datetime | None]]):
    """Upsert subjects' due times (None: nothing will be due, the row is removed)."""
    items = list(items)
    if not items:
        return
    with engine.begin() as conn:
        conn.execute(
            sa.delete(_Q).where(
                _Q.c.job == job, _Q.c.tenant == tenant, _Q.c.subject.in_([s for s, _ in items])
            )
        )
        rows = [
            {"job": job, "tenant": tenant, "subject": s, "due_at": when}
            for s, when in items
            if when is not None
        ]
        if rows:
            conn.execute(sa.insert(_Q), rows)


def due_subjects(engine: Any, job: str, tenant: str, now: datetime) -> list[str]:
    with engine.connect() as conn:
        return [
            r.subject
            for r in conn.execute(
                sa.select(_Q.c.subject)
                .where(
                    _Q.c.job == job, _Q.c.tenant == tenant, _Q.c.subject != "", _Q.c.due_at <= now
                )
                .order_by(_Q.c.due_at)
            )
        ]


def _spec_stamp(conn: Any, tenant: str) -> datetime | None:
    from penguinctl.state.columns import aware

    value = conn.execute(
        sa.select(sa.func.max(_D.c.recorded_at)).where(_D.c.tenant.in_([tenant, ""]))
    ).scalar()
    return aware(value) if value is not None else None


def ensure_index(engine: Any, job: str, tenant: str, now: datetime) -> bool:
    """(Re)build the tenant's DKIM index when its recorded spec changed since it was built:
    every domain due at once (the next run computes their real next step). True if rebuilt."""
    from penguinctl.state.columns import aware

    with engine.connect() as conn:
        stamp = _spec_stamp(conn, tenant)
        built = conn.execute(
            sa.select(_Q.c.due_at).where(_Q.c.job == job, _Q.c.tenant == tenant, _Q.c.subject == "")
        ).scalar()
        if built is not None and stamp is not None and aware(built) >= stamp:
            return False
        from penguinctl.state.models import ResourceRow

        r = ResourceRow.__table__
        domains = [
            row.name
            for row in conn.execute(
                sa.select(r.c.name).where(
                    r.c.tenant == tenant, r.c.kind == "domain", r.c.status != "pending"
                )
            )
        ]
    with engine.begin() as conn:
        conn.execute(sa.delete(_Q).where(_Q.c.job == job, _Q.c.tenant == tenant))
        rows = [{"job": job, "tenant": tenant, "subject": d, "due_at": now} for d in domains]
        rows.append({"job": job, "tenant": tenant, "subject": "", "due_at": stamp or now})
        conn.execute(sa.insert(_Q), rows)
    return True
