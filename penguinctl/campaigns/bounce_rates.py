"""Bounce-rate pauses: after reading the inboxes, a mailbox or a campaign whose bounces (hard
DSNs recorded by inbound.py plus SMTP-time 5xx rejections in the ledger) exceed its threshold
of what it sent, over at least ``min_sample`` messages, is paused with the reason (and the
mailbox's warmup ramp with it), audited as ``campaign.autopause``."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from penguinctl.campaigns.ledger import MAILBOXES, SENDS
from penguinctl.campaigns.tables import InboundEvent

if TYPE_CHECKING:
    from penguinctl.campaigns.plans import CampaignPlan

EVENTS = InboundEvent.__table__


def _rate(conn: Connection, where_send: Any, where_event: Any) -> tuple[int, int]:
    sent = conn.execute(
        sa.select(sa.func.count())
        .select_from(SENDS)
        .where(where_send, SENDS.c.status.in_(("sent", "failed")))
    ).scalar_one()
    failed = conn.execute(
        sa.select(sa.func.count()).select_from(SENDS).where(where_send, SENDS.c.status == "failed")
    ).scalar_one()
    hard = conn.execute(
        sa.select(sa.func.count())
        .select_from(EVENTS)
        .where(where_event, EVENTS.c.kind == "hard_bounce")
    ).scalar_one()
    return failed + hard, sent


def check_bounce_rates(
    engine: Engine,
    plans: list[CampaignPlan],
    *,
    min_sample: int,
    now: datetime,
    actor: str = "worker",
) -> list[str]:
    """Pause mailboxes and campaigns over their threshold; returns what was paused."""
    from penguinctl.campaigns.mailboxes import pause_mailbox
    from penguinctl.campaigns.plans import pause_campaign

    paused: list[str] = []
    with engine.begin() as conn:
        thresholds: dict[tuple[str, str], float] = {}
        for plan in plans:
            for s in plan.senders:
                key = (plan.tenant, s.address)
                thresholds[key] = min(thresholds.get(key, 1.0), plan.bounce_threshold)
        for (tenant, address), limit in sorted(thresholds.items()):
            bounced, sent = _rate(
                conn,
                sa.and_(SENDS.c.tenant == tenant, SENDS.c.mailbox == address),
                sa.and_(EVENTS.c.tenant == tenant, EVENTS.c.mailbox == address),
            )
            if sent >= min_sample and bounced / sent > limit:
                reason = f"bounce rate {bounced / sent:.1%} ({bounced} of {sent}) over {limit:.1%}"
                state = conn.execute(
                    sa.select(MAILBOXES.c.status).where(
                        MAILBOXES.c.tenant == tenant, MAILBOXES.c.address == address
                    )
                ).scalar()
                if state == "active":
                    pause_mailbox(conn, tenant, address, reason, now)
                    paused.append(f"mailbox {address}: {reason}")
                    _audit(conn, actor, tenant, f"mailbox/{address}", reason)
        for plan in plans:
            bounced, sent = _rate(
                conn, SENDS.c.campaign_id == plan.id, EVENTS.c.campaign_id == plan.id
            )
            if sent >= min_sample and bounced / sent > plan.bounce_threshold:
                reason = (
                    f"bounce rate {bounced / sent:.1%} ({bounced} of {sent}) over "
                    f"{plan.bounce_threshold:.1%}"
                )
                if pause_campaign(conn, plan.id, reason, now, cause="bounces"):
                    paused.append(f"campaign {plan.key}: {reason}")
                    _audit(conn, actor, plan.tenant, f"campaign/{plan.name}", reason)
    return paused


def _audit(conn: Connection, actor: str, tenant: str, resource: str, reason: str) -> None:
    from sqlmodel import Session

    from penguinctl.state.audit import record

    with Session(bind=conn) as session:
        record(
            session,
            actor=actor,
            tenant=tenant,
            action="campaign.autopause",
            resource=resource,
            result="paused",
            details={"reason": reason},
        )
        session.flush()
