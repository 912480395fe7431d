"""A person's data across campaigns: export everything held, or forget it.

``export_person`` gathers every lead row (all campaigns and tenants), every ledger row sent to
them, every suppression entry of their address and the inbound events (replies, bounces) linked
to their leads.

``forget_person`` erases the personal fields and keeps only what is needed never to mail them
again:
- leads are anonymised, not deleted: ``email`` becomes ``forgotten:<id>`` (not an address),
  names, company, time zone and custom fields are cleared, status ``forgotten``. Keeping the row
  keeps ``campaign_sends.lead_id`` pointing at it, so the ledger's UNIQUE(lead_id, step) still
  guarantees that no step is ever sent twice to that lead;
- ledger rows keep step, mailbox, status and Message-ID (no personal data) but lose
  ``recipient``; inbound events lose their ``detail`` text (a DSN reason may quote the address);
- suppression entries of the address lose ``email`` (the hash stays), and a global suppression
  by hash (reason ``forgotten``) is added: a later import skips the address without storing it.
Both operations are audited by address hash, never by address.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from penguinctl.campaigns.models import Campaign, CampaignSend, Lead, Suppression
from penguinctl.campaigns.suppression import add_hash, email_hash, normalise_email
from penguinctl.campaigns.tables import InboundEvent
from penguinctl.state.models import utcnow

FORGOTTEN_REASON = "forgotten"
PERSONAL_LEAD_FIELDS = ("first_name", "last_name", "company", "timezone")


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _of_address(address: str) -> Any:
    """``leads.email = address`` read through uq_leads_campaign_email (campaign, address):
    there is no index on the address alone (migration 0013)."""
    leads = Lead.__table__
    every = sa.select(Campaign.__table__.c.id).scalar_subquery()
    return sa.and_(leads.c.campaign_id.in_(every), leads.c.email == address)


def _lead_ids(session: Session, address: str) -> list[int]:
    leads = Lead.__table__
    return list(session.execute(sa.select(leads.c.id).where(_of_address(address))).scalars())


def export_person(session: Session, email: str) -> dict[str, Any]:
    """Everything held about the person at ``email``."""
    address = normalise_email(email)
    hashed = email_hash(address)
    leads, sends, campaigns = Lead.__table__, CampaignSend.__table__, Campaign.__table__
    rows = session.execute(
        sa.select(leads, campaigns.c.tenant, campaigns.c.name.label("campaign"))
        .join(campaigns, campaigns.c.id == leads.c.campaign_id)
        .where(_of_address(address))
        .order_by(leads.c.id)
    ).all()
    ids = [r.id for r in rows]
    lead_data = [
        {
            "tenant": r.tenant,
            "campaign": r.campaign,
            "lead_id": r.id,
            "email": r.email,
            **{name: getattr(r, name) for name in PERSONAL_LEAD_FIELDS},
            "fields": r.fields,
            "status": r.status,
            "next_step": r.next_step,
            "next_send_at": _iso(r.next_send_at),
            "created_at": _iso(r.created_at),
            "updated_at": _iso(r.updated_at),
        }
        for r in rows
    ]
    condition = sends.c.recipient == address
    if ids:
        condition = sa.or_(condition, sends.c.lead_id.in_(ids))
    send_rows = session.execute(
        sa.select(sends, campaigns.c.name.label("campaign"))
        .join(campaigns, campaigns.c.id == sends.c.campaign_id)
        .where(condition)
        .order_by(sends.c.id)
    ).all()
    send_data = [
        {
            "tenant": r.tenant,
            "campaign": r.campaign,
            "lead_id": r.lead_id,
            "step": r.step + 1,
            "variant": r.variant,
            "mailbox": r.mailbox,
            "recipient": r.recipient,
            "message_id": r.message_id,
            "status": r.status,
            "claimed_at": _iso(r.claimed_at),
            "sent_at": _iso(r.sent_at),
        }
        for r in send_rows
    ]
    supp = Suppression.__table__
    suppressions = [
        {
            "scope": r.scope,
            "scope_ref": r.scope_ref,
            "reason": r.reason,
            "email": r.email,
            "created_at": _iso(r.created_at),
        }
        for r in session.execute(
            sa.select(supp).where(supp.c.email_hash == hashed).order_by(supp.c.id)
        )
    ]
    events: list[dict[str, Any]] = []
    inbound = InboundEvent.__table__
    if ids:
        for r in session.execute(
            sa.select(inbound).where(inbound.c.lead_id.in_(ids)).order_by(inbound.c.id)
        ):
            events.append({k: _iso(v) for k, v in r._mapping.items()})
    return {
        "email": address,
        "email_sha256": hashed,
        "leads": lead_data,
        "sends": send_data,
        "suppressions": suppressions,
        "inbound_events": events,
    }


@dataclass
class ForgetResult:
    email_sha256: str
    leads: int = 0
    sends: int = 0
    suppressions: int = 0
    inbound_events: int = 0
    suppressed: bool = False  # the global "forgotten" entry was new

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def forget_person(session: Session, email: str) -> ForgetResult:
    """Erase the person at ``email`` (see the module doc). The caller audits and commits."""
    address = normalise_email(email)
    hashed = email_hash(address)
    result = ForgetResult(hashed)
    leads, sends, supp = Lead.__table__, CampaignSend.__table__, Suppression.__table__
    ids = _lead_ids(session, address)
    now = utcnow()
    for lead_id in ids:
        session.execute(
            sa.update(leads)
            .where(leads.c.id == lead_id)
            .values(
                email=f"forgotten:{lead_id}",
                first_name=None,
                last_name=None,
                company=None,
                timezone=None,
                fields={},
                status="forgotten",
                next_send_at=None,
                updated_at=now,
            )
        )
    result.leads = len(ids)
    condition = sends.c.recipient == address
    if ids:
        condition = sa.or_(condition, sends.c.lead_id.in_(ids))
    result.sends = session.execute(
        sa.update(sends).where(condition).values(recipient=None)
    ).rowcount
    result.suppressions = session.execute(
        sa.update(supp)
        .where(supp.c.email_hash == hashed, supp.c.email.is_not(None))
        .values(email=None)
    ).rowcount
    inbound = InboundEvent.__table__
    if ids:
        result.inbound_events = session.execute(
            sa.update(inbound).where(inbound.c.lead_id.in_(ids)).values(detail=None)
        ).rowcount
    result.suppressed = add_hash(session, hashed, "global", "", FORGOTTEN_REASON)
    session.expire_all()
    return result


def audit_resource(email: str) -> str:
    """How the audit log names a person: by a prefix of the address hash, never the address."""
    return f"person/{email_hash(email)[:16]}"
