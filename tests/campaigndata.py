"""Helpers for the campaign-data tests (C1): a stored campaign from a spec dict, and sends."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

STEPS = [
    {
        "subject": "{Hi|Hello} {{ first_name | default('there') }}",
        "body": "About {{ company | default('your team') }}",
        "variants": [{"name": "B", "weight": 50, "subject": "Idea"}],
    },
    {"delay": "2d", "body": "Bump"},
]


def stored_campaign(session, tenant: str = "acme", name: str = "q4", **spec: Any):
    from penguinctl.campaigns.models import Campaign
    from penguinctl.campaigns.spec import CampaignSpec, spec_hash

    doc = {
        "senders": ["john@acme-mail.example"],
        "unsubscribe": {"url": "https://t.example/u/{token}"},
        "steps": STEPS,
        **spec,
    }
    stored = CampaignSpec.model_validate(doc).model_dump(mode="json")
    campaign = Campaign(tenant=tenant, name=name, spec=stored, spec_hash=spec_hash(stored))
    session.add(campaign)
    session.flush()
    return campaign


def add_lead(session, campaign, email: str, **kw: Any):
    from penguinctl.campaigns.models import Lead

    lead = Lead(campaign_id=campaign.id, email=email, fields=kw.pop("fields", {}), **kw)
    session.add(lead)
    session.flush()
    return lead


def add_send(session, campaign, lead, step: int, variant: str = "A", status: str = "sent"):
    from penguinctl.campaigns.models import CampaignSend

    now = datetime.now(UTC)
    send = CampaignSend(
        tenant=campaign.tenant,
        campaign_id=campaign.id,
        lead_id=lead.id,
        step=step,
        variant=variant,
        mailbox="john@acme-mail.example",
        recipient=lead.email,
        message_id=f"<pc.{lead.id}.{step}@acme-mail.example>",
        status=status,
        claimed_at=now,
        sent_at=now if status == "sent" else None,
    )
    session.add(send)
    session.flush()
    return send
