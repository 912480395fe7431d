"""Reading events back (``events list``), and the checks shared by what subscribes to them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from penguinctl.events import catalogue
from penguinctl.events.tables import Event
from penguinctl.state.columns import aware

EV = Event.__table__


def to_json(row: Any) -> dict[str, Any]:
    """An event as its webhook body carries it (plus ``seq``)."""
    return {
        "seq": row.seq,
        "id": row.id,
        "type": row.type,
        "timestamp": aware(row.occurred_at).isoformat(),
        "tenant": row.tenant or None,
        "subject": row.subject,
        "data": row.payload,
    }


def list_events(
    engine: Any,
    *,
    tenant: str | None = None,
    types: list[str] | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Newest first. ``tenant=""`` is the platform's events only; ``types`` are names or
    ``prefix.*`` patterns."""
    stmt = sa.select(EV).order_by(EV.c.seq.desc()).limit(limit)
    if tenant is not None:
        stmt = stmt.where(EV.c.tenant == tenant)
    if since is not None:
        stmt = stmt.where(EV.c.occurred_at >= since)
    if types:
        exact = [t for t in types if not t.endswith(".*")]
        prefixes = [t[:-1] for t in types if t.endswith(".*")]
        stmt = stmt.where(
            sa.or_(EV.c.type.in_(exact), *(EV.c.type.startswith(p) for p in prefixes))
        )
    with engine.connect() as conn:
        return [to_json(r) for r in conn.execute(stmt)]


def get_event(engine: Any, event_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(EV).where(EV.c.id == event_id)).first()
    return to_json(row) if row is not None else None


def known_tenant(conn: Any, tenant: str) -> bool:
    """Whether ``tenant`` is recorded (a Tenant spec was applied)."""
    from penguinctl.state.models import ResourceRow

    r = ResourceRow.__table__.c
    stmt = sa.select(r.id).where(r.kind == "tenant", r.tenant == tenant).limit(1)
    return conn.execute(stmt).first() is not None


def require_tenant(engine: Any, tenant: str) -> None:
    from penguinctl.errors import NotFound

    with engine.connect() as conn:
        if not known_tenant(conn, tenant):
            raise NotFound(
                f"tenant {tenant!r} is not recorded",
                hint="apply its Tenant spec first (`penguinctl get tenants` lists them)",
            )


def event_types(patterns: list[str] | None) -> list[str]:
    """``patterns`` checked against the catalogue (UsageError naming the first unknown)."""
    from penguinctl.errors import UsageError

    try:
        return catalogue.check_patterns(list(patterns or []))
    except ValueError as exc:
        raise UsageError(str(exc), hint="`penguinctl events types` lists them") from None


def parse_since(text: str | None, now: datetime) -> datetime | None:
    """``--since``: a duration back from now (``90m``, ``24h``, ``7d``) or an ISO 8601 instant."""
    if text is None:
        return None
    from penguinctl import clock
    from penguinctl.errors import UsageError
    from penguinctl.spec.durations import Duration

    try:
        return now - Duration(text)
    except ValueError:
        pass
    try:
        return clock.parse_instant(text.strip(), where="--since")
    except ValueError:
        raise UsageError(
            f"--since {text[:40]!r}: use a duration (30m, 24h, 7d) or an ISO 8601 time"
        ) from None
