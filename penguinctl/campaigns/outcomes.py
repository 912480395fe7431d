"""Recording what happened to a claim, in the caller's transaction.

- ``record_sent``: the server accepted: the ledger row is ``sent`` and the lead moves on (the
  next step after its delay, moved into the window, or ``completed`` after the last step). A
  lead whose status changed meanwhile (a reply arrived) keeps it.
- ``record_outcome``: any SMTP outcome (smtp.py): sent, ambiguous (audited), failed (a 5xx
  bounces the lead; a refused recipient is suppressed), or given back -- a 4xx to the recipient
  or the message is retried later with backoff and fails after ``ledger.MAX_ATTEMPTS``; an
  unreachable server or a 4xx at connect, AUTH or MAIL FROM is the mailbox's: given back
  without counting an attempt (the worker backs the mailbox off); a refused mailbox is paused
  (audited).
- ``release_unsent``: claims never handed to the server: as if never claimed, no attempt
  counted, the mailbox's daily count given back.
- ``fail_unsent``: a claim whose message could not be composed, or that a local error stopped
  before its first byte reached the server: ``unsent`` with the reason (never ``ambiguous``),
  the lead stops (``failed``), the mailbox's daily count given back.

Lock order on PostgreSQL, as when claiming: lead rows (in id order), then mailbox rows, then
ledger rows; the other order deadlocks with a worker whose claim of the same lead waits on the
ledger row.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from penguinctl.campaigns import ledger, mailboxes
from penguinctl.campaigns.ledger import LEADS
from penguinctl.campaigns.smtp import Outcome

if TYPE_CHECKING:
    from penguinctl.campaigns.claims import Claimed
    from penguinctl.campaigns.plans import CampaignPlan

ADVANCE = sa.text(
    "UPDATE leads SET next_step = :next, next_send_at = :due, status = :status, "
    "updated_at = :now WHERE id = :id AND status = 'active' AND next_step = :step"
).bindparams(
    sa.bindparam("due", type_=sa.DateTime(timezone=True)),
    sa.bindparam("now", type_=sa.DateTime(timezone=True)),
)


def set_lead(conn: Connection, lead_id: int, now: datetime, **values: Any) -> None:
    """Change an ``active`` lead (a lead that stopped meanwhile keeps its status)."""
    conn.execute(
        sa.update(LEADS)
        .where(LEADS.c.id == lead_id, LEADS.c.status == "active")
        .values(updated_at=now, **values)
    )


def lock_leads(conn: Connection, lead_ids: list[int]) -> None:
    conn.execute(
        sa.select(LEADS.c.id)
        .where(LEADS.c.id.in_(sorted(set(lead_ids))))
        .order_by(LEADS.c.id)
        .with_for_update()
    )


def advance(
    plan: CampaignPlan, lead_id: int, step: int, timezone: str | None, sent: datetime, now: datetime
) -> dict[str, Any]:
    """Parameters of ``ADVANCE`` for a lead whose ``step`` went out at ``sent``: its next step
    after that step's delay (moved into the window), or ``completed`` after the last."""
    nxt = step + 1
    done = nxt >= plan.steps
    due = None if done else plan.schedule.after_delay(sent, plan.delays[nxt], timezone)
    return {
        "id": lead_id,
        "step": step,
        "next": nxt,
        "due": due,
        "status": "completed" if done else "active",
        "now": now,
    }


def _advance(claimed: Claimed, now: datetime) -> dict[str, Any]:
    return advance(claimed.plan, claimed.lead_id, claimed.step, claimed.lead_timezone, now, now)


def record_sent(conn: Connection, claims: list[Claimed], now: datetime) -> None:
    """``sent`` for accepted claims: two statements (executemany for several), the lead rows
    in id order before the ledger rows."""
    if not claims:
        return
    if len(claims) == 1:
        conn.execute(ADVANCE, _advance(claims[0], now))
        ledger.mark_sent(conn, claims[0].send_id, now)
        return
    claims = sorted(claims, key=lambda c: c.lead_id)
    conn.execute(ADVANCE, [_advance(c, now) for c in claims])
    conn.execute(ledger.SENT, [{"id": c.send_id, "now": now} for c in claims])


def release_unsent(
    conn: Connection, claims: list[Claimed], reason: str, now: datetime, *, pg: bool
) -> None:
    if not claims:
        return
    if pg:
        lock_leads(conn, [c.lead_id for c in claims])
    for claimed in claims:
        mailboxes.uncount(conn, claimed.plan.tenant, claimed.sender.address, claimed.claimed_at)
        ledger.release(
            conn,
            claimed.send_id,
            lead_id=claimed.lead_id,
            step=claimed.step,
            error=reason,
            now=now,
            count=False,
        )


def fail_unsent(
    conn: Connection, claimed: Claimed, reason: str, now: datetime, *, pg: bool
) -> None:
    if pg:
        lock_leads(conn, [claimed.lead_id])
    mailboxes.uncount(conn, claimed.plan.tenant, claimed.sender.address, claimed.claimed_at)
    ledger.mark_unsent(conn, claimed.send_id, reason)
    set_lead(conn, claimed.lead_id, now, status="failed")


def record_outcome(
    conn: Connection,
    claimed: Claimed,
    outcome: Outcome,
    now: datetime,
    *,
    worker: str,
    actor: str,
    pg: bool,
) -> str:
    """Returns sent, failed, unsent, ambiguous, released (4xx: retried later) or
    mailbox_paused (the server refused the mailbox; the claim was released)."""
    if outcome.kind == "error":  # nothing of the message was written
        fail_unsent(conn, claimed, outcome.describe(), now, pg=pg)
        _audit(conn, claimed, "campaign.send.unsent", outcome, actor)
        return "unsent"
    if pg:
        lock_leads(conn, [claimed.lead_id])
    if outcome.kind == "accepted":
        record_sent(conn, [claimed], now)
        return "sent"
    if outcome.kind == "unknown":
        ledger.mark_ambiguous(conn, claimed.send_id, outcome.describe())
        _audit(conn, claimed, "campaign.send.ambiguous", outcome, actor)
        ledger.emit_ambiguous(
            conn,
            tenant=claimed.plan.tenant,
            campaign=claimed.plan.name,
            send_id=claimed.send_id,
            lead_id=claimed.lead_id,
            step=claimed.step,
            mailbox=claimed.sender.address,
            reason=outcome.describe(),
        )
        return "ambiguous"
    if outcome.kind == "rejected":
        ledger.mark_failed(conn, claimed.send_id, outcome.describe())
        _bounce_now(conn, claimed, outcome, now)
        return "failed"
    # deferred or sender_error: the server does not hold the message
    if outcome.kind == "sender_error":
        release_unsent(conn, [claimed], outcome.describe(), now, pg=False)
        mailboxes.pause_mailbox(
            conn,
            claimed.plan.tenant,
            claimed.sender.address,
            f"the server refused the mailbox: {outcome.describe()}",
            now,
        )
        _audit(conn, claimed, "campaign.mailbox.pause", outcome, actor)
        return "mailbox_paused"
    if outcome.mailbox_deferred:  # the mailbox's server, not the lead: no attempt counted
        release_unsent(conn, [claimed], outcome.describe(), now, pg=False)
        return "released"
    mailboxes.uncount(conn, claimed.plan.tenant, claimed.sender.address, claimed.claimed_at)
    attempts = ledger.release(
        conn,
        claimed.send_id,
        lead_id=claimed.lead_id,
        step=claimed.step,
        error=outcome.describe(),
        now=now,
    )
    if attempts >= ledger.MAX_ATTEMPTS:
        # give up: a last claim records the failure (it is never sent)
        send_id = ledger.claim(
            conn,
            tenant=claimed.plan.tenant,
            campaign_id=claimed.plan.id,
            lead_id=claimed.lead_id,
            step=claimed.step,
            variant=None,
            mailbox=claimed.sender.address,
            recipient=claimed.recipient,
            message_id=claimed.message_id,
            worker=worker,
            now=now,
        )
        ledger.mark_failed(
            conn, send_id, f"gave up after {attempts} attempts: {outcome.describe()}"
        )
        set_lead(conn, claimed.lead_id, now, status="bounced")
        return "failed"
    retry_at = claimed.plan.schedule.next_allowed(
        now + ledger.retry_delay(attempts), claimed.lead_timezone
    )
    set_lead(conn, claimed.lead_id, now, next_send_at=retry_at)
    return "released"


def _bounce_now(conn: Connection, claimed: Claimed, outcome: Outcome, now: datetime) -> None:
    """A 5xx during the transaction is a synchronous bounce: the lead stops; a refused
    recipient (RCPT 550 / 5.1.x) is suppressed like a hard DSN."""
    set_lead(conn, claimed.lead_id, now, status="bounced")
    if outcome.stage == "rcpt":
        from penguinctl.campaigns.dsn import suppress_hard

        suppress_hard(
            conn,
            claimed.plan.tenant,
            claimed.plan.key,
            claimed.recipient,
            f"smtp {outcome.code}: {outcome.message}"[:200],
        )


def audit_unsent(conn: Connection, claimed: Claimed, error: str, actor: str) -> None:
    """Audit a send that ended ``unsent`` (its message could not be composed)."""
    _audit(conn, claimed, "campaign.send.unsent", Outcome("error", None, error, "compose"), actor)


def _audit(conn: Connection, claimed: Claimed, action: str, outcome: Outcome, actor: str) -> None:
    from sqlmodel import Session

    from penguinctl.state.audit import record

    with Session(bind=conn) as session:
        record(
            session,
            actor=actor,
            tenant=claimed.plan.tenant,
            action=action,
            resource=f"campaign/{claimed.plan.name}",
            result={"unknown": "ambiguous", "error": "unsent"}.get(outcome.kind, "paused"),
            details={
                "send_id": claimed.send_id,
                "step": claimed.step,
                "mailbox": claimed.sender.address,
                "error": outcome.describe(),
            },
        )
        session.flush()
