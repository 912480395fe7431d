"""Alert recipients: who gets a digest, of which tenant's events, how often."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from penguinctl import clock
from penguinctl.alerts.tables import AlertSubscription
from penguinctl.errors import NotFound, UsageError
from penguinctl.events import catalogue
from penguinctl.state.columns import aware

SUB = AlertSubscription.__table__
MIN_EVERY, MAX_EVERY = 1, 7 * 24 * 60


def _audit(conn: Any, actor: str, tenant: str, action: str, email: str, **details: Any) -> None:
    from penguinctl.state import audit

    audit.record_many(
        conn,
        [
            {
                "actor": actor,
                "tenant": tenant,
                "action": action,
                "resource": f"alerts/{email}",
                "result": "ok",
                "details": details,
            }
        ],
    )


def _json(row: Any) -> dict[str, Any]:
    last = aware(row.last_sent_at)
    return {
        "id": row.id,
        "email": row.email,
        "tenant": row.tenant or None,
        "every_minutes": row.every_minutes,
        "events": list(row.event_types or []) or list(catalogue.ALERT_TYPES),
        "last_sent_at": last.isoformat(timespec="seconds") if last else None,
    }


def normalize(email: str) -> str:
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise UsageError(f"{email[:100]!r} is not an email address: {exc}") from None


def add(
    engine: Any,
    email: str,
    *,
    tenant: str = "",
    every_minutes: int = 15,
    event_types: list[str] | None = None,
    actor: str,
) -> dict[str, Any]:
    """Add (or, for the same tenant and address, update) a recipient."""
    from penguinctl.events.query import event_types as check_types
    from penguinctl.events.query import require_tenant

    email = normalize(email)
    if not MIN_EVERY <= every_minutes <= MAX_EVERY:
        raise UsageError(f"--every: between {MIN_EVERY} minute and 7 days")
    types = check_types(event_types)
    if tenant:
        require_tenant(engine, tenant)
    with engine.begin() as conn:
        found = conn.execute(
            sa.select(SUB.c.id).where(SUB.c.tenant == tenant, SUB.c.email == email)
        ).scalar()
        if found is None:
            conn.execute(
                sa.insert(SUB).values(
                    tenant=tenant,
                    email=email,
                    every_minutes=every_minutes,
                    event_types=types,
                    created_at=clock.now(),
                )
            )
        else:
            conn.execute(
                sa.update(SUB)
                .where(SUB.c.id == found)
                .values(every_minutes=every_minutes, event_types=types)
            )
        _audit(conn, actor, tenant, "alerts.add", email, every_minutes=every_minutes, events=types)
        row = conn.execute(sa.select(SUB).where(SUB.c.tenant == tenant, SUB.c.email == email)).one()
    return _json(row)


def list_subscriptions(engine: Any, *, tenant: str | None = None) -> list[dict[str, Any]]:
    stmt = sa.select(SUB).order_by(SUB.c.tenant, SUB.c.email)
    if tenant is not None:
        stmt = stmt.where(SUB.c.tenant == tenant)
    with engine.connect() as conn:
        return [_json(r) for r in conn.execute(stmt)]


def remove(engine: Any, email: str, *, tenant: str = "", actor: str) -> None:
    with engine.begin() as conn:
        gone = conn.execute(
            sa.delete(SUB).where(SUB.c.tenant == tenant, SUB.c.email == normalize(email))
        ).rowcount
        if not gone:
            where = f"tenant {tenant}" if tenant else "the platform"
            raise NotFound(
                f"{email} gets no alerts for {where}", hint="`penguinctl alerts list` shows them"
            )
        _audit(conn, actor, tenant, "alerts.remove", email)


def due(row: Any, now: datetime) -> bool:
    """A recipient may be mailed: never mailed, or its window since the last mail has passed,
    and no failed attempt asks to wait."""
    last, retry = aware(row.last_sent_at), aware(row.retry_at)
    if retry is not None and retry > now:
        return False
    return last is None or (now - last).total_seconds() >= row.every_minutes * 60
