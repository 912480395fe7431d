"""Ambiguous sends, settled by the operator.

A send is ``ambiguous`` when its message was handed to the server but no answer came back (a
worker killed mid-send, a connection lost after the last byte): the server may or may not have
it, so the worker never resends it, and the lead waits at that step. Only the operator can
tell, from the mailbox's server (its log or queue, searched by the Message-ID listed here) or
from the recipient, which it was:

- ``sent``: the ledger row becomes ``sent`` (``sent_at`` = when it was claimed) and the lead
  moves on as if the worker had seen the server accept it: its next step after the step's delay,
  counted from that time, or ``completed``. A lead that stopped meanwhile (replied, bounced,
  unsubscribed) keeps its status.
- ``unsent``: the row is deleted, as if the step had never been claimed, and the mailbox's count
  for that day is given back: the next worker run sends the step again. Only for messages known
  not to have gone out; otherwise the recipient gets it twice.

Each settled send is audited (``campaign.send.resolved``) with its Message-ID and who decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from penguinctl.campaigns import mailboxes, outcomes
from penguinctl.campaigns.ledger import LEADS, SENDS
from penguinctl.campaigns.plans import CAMPAIGNS, load_plan
from penguinctl.errors import UsageError
from penguinctl.state.columns import aware

VERDICTS = ("sent", "unsent")


@dataclass(frozen=True)
class AmbiguousSend:
    send_id: int
    lead_id: int | None  # None once the lead was forgotten
    recipient: str | None
    step: int
    variant: str | None
    mailbox: str
    message_id: str
    claimed_at: datetime
    worker: str | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "send_id": self.send_id,
            "lead_id": self.lead_id,
            "recipient": self.recipient,
            "step": self.step + 1,
            "variant": self.variant,
            "mailbox": self.mailbox,
            "message_id": self.message_id,
            "claimed_at": self.claimed_at.isoformat(),
            "worker": self.worker,
            "error": self.error,
        }


def list_ambiguous(
    conn: Connection, campaign_id: int, send_ids: list[int] | None = None
) -> list[AmbiguousSend]:
    """The campaign's ambiguous sends (only ``send_ids`` if given), oldest first."""
    stmt = sa.select(SENDS).where(SENDS.c.campaign_id == campaign_id, SENDS.c.status == "ambiguous")
    if send_ids is not None:
        stmt = stmt.where(SENDS.c.id.in_(send_ids))
    return [
        AmbiguousSend(
            send_id=r.id,
            lead_id=r.lead_id,
            recipient=r.recipient,
            step=r.step,
            variant=r.variant,
            mailbox=r.mailbox,
            message_id=r.message_id,
            claimed_at=aware(r.claimed_at),
            worker=r.worker,
            error=r.error,
        )
        for r in conn.execute(stmt.order_by(SENDS.c.claimed_at, SENDS.c.id))
    ]


def resolve(
    conn: Connection,
    campaign_id: int,
    send_ids: list[int] | None,
    verdict: str,
    now: datetime,
    *,
    pg: bool,
) -> list[AmbiguousSend]:
    """Settle the campaign's ambiguous sends (``send_ids``, or all of them when None) as
    ``verdict``, in the caller's transaction; returns the sends settled. A listed id that is
    not an ambiguous send of this campaign is refused before anything changes."""
    if verdict not in VERDICTS:
        raise UsageError(f"{verdict!r}: settle a send as sent or unsent")
    found = list_ambiguous(conn, campaign_id, send_ids)
    if send_ids is not None:
        missing = sorted(set(send_ids) - {a.send_id for a in found})
        if missing:
            raise UsageError(
                f"send(s) {', '.join(map(str, missing))}: not an ambiguous send of this campaign",
                hint="`penguinctl campaign ambiguous CAMPAIGN` lists them",
            )
    if not found:
        return []
    lead_ids = [a.lead_id for a in found if a.lead_id is not None]
    if pg and lead_ids:  # the workers' lock order: lead rows first, then ledger rows
        outcomes.lock_leads(conn, lead_ids)
    plan = load_plan(conn, campaign_id) if verdict == "sent" else None
    zones = dict(
        conn.execute(sa.select(LEADS.c.id, LEADS.c.timezone).where(LEADS.c.id.in_(lead_ids))).all()
    )
    tenant = conn.execute(
        sa.select(CAMPAIGNS.c.tenant).where(CAMPAIGNS.c.id == campaign_id)
    ).scalar_one()
    for a in found:
        match = (SENDS.c.id == a.send_id, SENDS.c.status == "ambiguous")
        if plan is not None:
            conn.execute(
                sa.update(SENDS)
                .where(*match)
                .values(status="sent", sent_at=a.claimed_at, error=None)
            )
            if a.lead_id is not None:
                params = outcomes.advance(
                    plan, a.lead_id, a.step, zones.get(a.lead_id), a.claimed_at, now
                )
                conn.execute(outcomes.ADVANCE, params)
        else:
            conn.execute(sa.delete(SENDS).where(*match))
            mailboxes.uncount(conn, tenant, a.mailbox, a.claimed_at)
    return found
