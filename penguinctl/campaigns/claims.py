"""What passes between the scheduler, the worker and outcomes.py: a claimed send (``Claimed``,
committed before anything is sent) and the answer that nothing may be sent yet (``Blocked``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from penguinctl.campaigns.models import LeadRef
    from penguinctl.campaigns.plans import CampaignPlan
    from penguinctl.campaigns.senders import Sender


@dataclass
class Claimed:
    send_id: int
    plan: CampaignPlan
    lead_id: int
    recipient: str
    lead_timezone: str | None
    step: int
    sender: Sender
    message_id: str
    variant: str
    payload: bytes
    claimed_at: datetime
    lead: LeadRef
    previous_ids: list[str]


@dataclass
class Blocked:
    until: datetime | None  # None: nothing due at all
