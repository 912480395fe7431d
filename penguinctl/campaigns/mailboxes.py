"""Sending mailboxes: their daily counts, caps, gaps and pauses (``campaign_mailboxes``).

A mailbox may take a send when it is ``active``, under its daily cap -- min(campaign
``per_mailbox_daily``, the mailbox's ``daily_limit``, the warmup ramp's cap for its age;
``DEFAULT_DAILY`` when nothing caps it) -- and ``min_gap`` has passed since its last claim.

Claiming (scheduler.py) picks mailboxes in memory from the rows it read (``choose``), then
counts what it claimed with one conditional UPDATE per mailbox (``count``) that re-checks
status, cap and gap in the database: a row that changed meanwhile makes the whole claim
transaction start over with fresh rows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from penguinctl.campaigns.ledger import MAILBOXES
from penguinctl.campaigns.plans import CampaignPlan
from penguinctl.campaigns.senders import Sender
from penguinctl.campaigns.warmup import ramp_cap
from penguinctl.state.columns import aware

DEFAULT_DAILY = 50  # the facts file's wizard default when nothing else caps a mailbox
EPOCH = datetime.min.replace(tzinfo=UTC)
_FAR = datetime(9999, 1, 1, tzinfo=UTC)


def ensure_mailboxes(conn: Connection, plans: list[CampaignPlan], now: datetime) -> None:
    """A ``campaign_mailboxes`` row per sender (warmup counted from the mailbox's creation)."""
    wanted = {(s.tenant, s.address): s for p in plans for s in p.senders}
    if not wanted:
        return
    have = {
        (r.tenant, r.address)
        for r in conn.execute(
            sa.select(MAILBOXES.c.tenant, MAILBOXES.c.address).where(
                MAILBOXES.c.address.in_([a for _, a in wanted])
            )
        )
    }
    for key, sender in wanted.items():
        if key in have:
            continue
        try:
            with conn.begin_nested():
                conn.execute(
                    sa.insert(MAILBOXES).values(
                        tenant=key[0],
                        address=key[1],
                        status="active",
                        day_count=0,
                        warmup_started_at=sender.created_at or now,
                        updated_at=now,
                    )
                )
        except sa.exc.IntegrityError:
            pass  # another worker inserted it


def read_states(
    conn: Connection, plan: CampaignPlan, *, lock: bool = False
) -> dict[str, dict[str, Any]]:
    """The plan's mailbox rows by address (``lock``: FOR UPDATE, in id order)."""
    stmt = sa.select(MAILBOXES).where(
        MAILBOXES.c.tenant == plan.tenant,
        MAILBOXES.c.address.in_([s.address for s in plan.senders]),
    )
    if lock:
        stmt = stmt.order_by(MAILBOXES.c.id).with_for_update()
    return {r.address: dict(r._mapping) for r in conn.execute(stmt).all()}


def cap_for(plan: CampaignPlan, sender: Sender, state: dict[str, Any], now: datetime) -> int:
    caps = [c for c in (plan.per_mailbox_daily, sender.daily_limit) if c]
    ramp = ramp_cap(plan.ramp, aware(state["warmup_started_at"]), now)
    if ramp is not None:
        caps.append(ramp)
    return min(caps) if caps else DEFAULT_DAILY


def availability(
    plan: CampaignPlan,
    sender: Sender,
    state: dict[str, Any] | None,
    now: datetime,
    backoff: datetime | None = None,
) -> datetime | None:
    """None when the mailbox may send now, else the earliest instant it may."""
    if state is None or state["status"] != "active":
        return datetime.max.replace(tzinfo=UTC)
    if backoff is not None and backoff > now:
        return backoff
    today = now.date().isoformat()
    count = state["day_count"] if state["day"] == today else 0
    if count >= cap_for(plan, sender, state, now):
        return datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    last = aware(state["last_claim_at"])
    if last is not None and plan.min_gap and now - last < plan.min_gap:
        return last + plan.min_gap
    return None


def choose(
    plan: CampaignPlan,
    states: dict[str, dict[str, Any]],
    now: datetime,
    preferred: str | None,
    backoff: dict[str, datetime],
) -> tuple[Sender | None, datetime | None]:
    """(sender, None): a mailbox that may send now, its state counted in memory (the caller
    counts it in the database with ``count``); (None, earliest instant one may) otherwise.

    A follow-up stays on ``preferred`` (the mailbox of the lead's first step) while that is
    active; first steps go to the least recently used mailbox (ties, e.g. a frozen test clock,
    round-robin)."""
    senders = plan.senders
    if preferred is not None:
        pinned = [s for s in senders if s.address == preferred]
        state = states.get(preferred)
        if pinned and state is not None and state["status"] == "active":
            senders = pinned
    shift = plan.rotation % len(senders) if senders else 0
    plan.rotation += 1
    rotated = senders[shift:] + senders[:shift]

    def last_used(s: Sender) -> datetime:
        state = states.get(s.address)
        return (aware(state["last_claim_at"]) if state else None) or EPOCH

    earliest: datetime | None = None
    for sender in sorted(rotated, key=last_used):
        state = states.get(sender.address)
        until = availability(plan, sender, state, now, backoff.get(sender.address))
        if until is not None:
            earliest = until if earliest is None else min(earliest, until)
            continue
        assert state is not None
        today = now.date().isoformat()
        count = state["day_count"] + 1 if state["day"] == today else 1
        state.update(day=today, day_count=count, last_claim_at=now)
        return sender, None
    return None, earliest


_COUNT = sa.text(
    "UPDATE campaign_mailboxes SET day_count = CASE WHEN day = :today THEN day_count + :k "
    "ELSE :k END, day = :today, last_claim_at = :now, updated_at = :now "
    "WHERE id = :id AND status = 'active' "
    "AND CASE WHEN day = :today THEN day_count ELSE 0 END + :k <= :cap "
    "AND (last_claim_at IS NULL OR last_claim_at <= :gap_ok)"
).bindparams(
    sa.bindparam("now", type_=sa.DateTime(timezone=True)),
    sa.bindparam("gap_ok", type_=sa.DateTime(timezone=True)),
)


def count(
    conn: Connection,
    plan: CampaignPlan,
    sender: Sender,
    state: dict[str, Any],
    claims: int,
    now: datetime,
) -> bool:
    """Count ``claims`` sends on the mailbox at ``now``, atomically re-checking status, cap and
    gap against the row as the database has it (``state`` is the row as read before the
    claims were chosen). False when the row no longer allows them."""
    res = conn.execute(
        _COUNT,
        {
            "id": state["id"],
            "today": now.date().isoformat(),
            "k": claims,
            "cap": cap_for(plan, sender, state, now),
            "now": now,
            # no gap, no condition: a worker's "now" may trail another's last claim
            "gap_ok": now - plan.min_gap if plan.min_gap else _FAR,
        },
    )
    return res.rowcount == 1


def uncount(conn: Connection, tenant: str, address: str, claimed_at: datetime) -> None:
    """Give back one send counted on ``claimed_at``'s day (a claim released unsent)."""
    conn.execute(
        sa.update(MAILBOXES)
        .where(
            MAILBOXES.c.tenant == tenant,
            MAILBOXES.c.address == address,
            MAILBOXES.c.day == claimed_at.date().isoformat(),
            MAILBOXES.c.day_count > 0,
        )
        .values(day_count=MAILBOXES.c.day_count - 1)
    )


def pause_mailbox(conn: Connection, tenant: str, address: str, reason: str, now: datetime) -> None:
    conn.execute(
        sa.update(MAILBOXES)
        .where(
            MAILBOXES.c.tenant == tenant,
            MAILBOXES.c.address == address,
            MAILBOXES.c.status == "active",
        )
        .values(status="paused", paused_reason=reason[:300], updated_at=now)
    )


def resume_mailbox(conn: Connection, tenant: str, address: str, now: datetime) -> bool:
    """Resume a paused mailbox; its warmup ramp continues from the day it had reached."""
    row = conn.execute(
        sa.select(MAILBOXES).where(MAILBOXES.c.tenant == tenant, MAILBOXES.c.address == address)
    ).first()
    if row is None or row.status != "paused":
        return False
    paused_for = now - (aware(row.updated_at) or now)
    started = aware(row.warmup_started_at) or now
    conn.execute(
        sa.update(MAILBOXES)
        .where(MAILBOXES.c.id == row.id)
        .values(
            status="active",
            paused_reason=None,
            updated_at=now,
            warmup_started_at=started + paused_for,
        )
    )
    return True
