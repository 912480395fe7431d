"""The active campaigns as the worker sees them, loaded once per polling cycle.

``CampaignPlan`` holds a campaign's spec, schedule, senders and limits, plus what the worker
learns while sending (problems, the mailbox states cached between claims, the due leads not yet
tried). Campaign-level transitions (paused, completed) live here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from penguinctl.campaigns.ledger import LEADS
from penguinctl.campaigns.models import Campaign, CampaignRef
from penguinctl.campaigns.senders import Sender, load_senders
from penguinctl.campaigns.warmup import Ramp, ramp_from_spec
from penguinctl.campaigns.window import Schedule

CAMPAIGNS = Campaign.__table__


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _delta(value: Any) -> timedelta:
    if value is None:
        return timedelta(0)
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    from penguinctl.spec.durations import Duration

    return Duration(str(value))


@dataclass
class CampaignPlan:
    id: int
    tenant: str
    name: str
    spec: Any  # CampaignSpec
    campaign: CampaignRef
    schedule: Schedule
    delays: list[timedelta]
    per_mailbox_daily: int | None
    min_gap: timedelta
    ramp: Ramp | None
    senders: list[Sender]
    stop_on: frozenset[str]
    bounce_threshold: float
    problems: dict[str, str] = field(default_factory=dict)
    compose_failures: int = 0  # messages in a row that could not be composed (transmit.py)
    blocked_until: datetime | None = None  # no mailbox can send before then (this cycle)
    rotation: int = 0
    states: dict[str, dict[str, Any]] | None = None  # mailbox rows, cached between claims
    candidates: list[Any] = field(default_factory=list)  # due leads not tried yet (SQLite)
    suppressed: set[str] = field(default_factory=set)  # of the current candidates
    previous: dict[int, list[Any]] = field(default_factory=dict)  # their earlier sends

    @property
    def key(self) -> str:
        return f"{self.tenant}/{self.name}"

    @property
    def steps(self) -> int:
        return len(self.delays)


def load_plans(conn: Connection, names: list[str] | None = None) -> list[CampaignPlan]:
    """The active campaigns (optionally only those named ``NAME`` or ``TENANT/NAME``), except
    those of tenants suspended for an unpaid invoice (suspension pauses them; this also holds
    if one was made active again behind billing's back)."""
    from penguinctl.billing.dunning import suspended_tenants

    rows = conn.execute(sa.select(CAMPAIGNS).where(CAMPAIGNS.c.status == "active")).all()
    suspended = set(suspended_tenants(conn, {row.tenant for row in rows}))
    return [
        plan_of(conn, row)
        for row in rows
        if row.tenant not in suspended
        and (not names or row.name in names or f"{row.tenant}/{row.name}" in names)
    ]


def load_plan(conn: Connection, campaign_id: int) -> CampaignPlan:
    """One campaign's plan, whatever its status."""
    return plan_of(
        conn, conn.execute(sa.select(CAMPAIGNS).where(CAMPAIGNS.c.id == campaign_id)).one()
    )


def plan_of(conn: Connection, row: Any) -> CampaignPlan:
    from penguinctl.campaigns.spec import spec_of

    campaign = Campaign(**{k: getattr(row, k) for k in row._fields})
    spec = spec_of(campaign)
    limits = _get(spec, "limits")
    addresses = [str(a).lower() for a in (_get(spec, "senders") or [])]
    senders, problems = load_senders(conn, row.tenant, addresses)
    return CampaignPlan(
        id=row.id,
        tenant=row.tenant,
        name=row.name,
        spec=spec,
        campaign=CampaignRef(row.id, row.tenant, row.name),
        schedule=Schedule.from_spec(_get(spec, "schedule")),
        delays=[_delta(_get(s, "delay")) for s in _get(spec, "steps") or []],
        per_mailbox_daily=_get(limits, "per_mailbox_daily"),
        min_gap=_delta(_get(limits, "min_gap")),
        ramp=ramp_from_spec(_get(spec, "warmup")),
        senders=[senders[a] for a in addresses if a in senders],
        stop_on=frozenset(str(s) for s in _get(spec, "stop_on") or ()),
        bounce_threshold=float(spec.bounce_pause_fraction),
        problems=problems,
    )


def pause_campaign(
    conn: Connection, campaign_id: int, reason: str, now: datetime, *, cause: str
) -> bool:
    """Pause an active campaign (``cause``: bounces, compose, ...) and emit
    ``campaign.paused`` in the same transaction; False when it was not active."""
    from penguinctl.events.outbox import emit

    res = conn.execute(
        sa.update(CAMPAIGNS)
        .where(CAMPAIGNS.c.id == campaign_id, CAMPAIGNS.c.status == "active")
        .values(status="paused", paused_reason=reason[:300], updated_at=now)
    )
    if res.rowcount != 1:
        return False
    tenant, name = conn.execute(
        sa.select(CAMPAIGNS.c.tenant, CAMPAIGNS.c.name).where(CAMPAIGNS.c.id == campaign_id)
    ).one()
    emit(
        conn,
        "campaign.paused",
        tenant=tenant,
        subject=f"campaign/{name}",
        payload={"campaign": name, "cause": cause, "reason": reason[:300]},
    )
    return True


def complete_finished(conn: Connection, plans: list[CampaignPlan], now: datetime) -> list[str]:
    """Campaigns with leads but none active any more are ``completed`` (and say so with a
    ``campaign.completed`` event in the same transaction)."""
    from penguinctl.events.outbox import emit

    done: list[str] = []
    for plan in plans:
        active = sa.exists().where(LEADS.c.campaign_id == plan.id, LEADS.c.status == "active")
        anyl = sa.exists().where(LEADS.c.campaign_id == plan.id)
        res = conn.execute(
            sa.update(CAMPAIGNS)
            .where(CAMPAIGNS.c.id == plan.id, CAMPAIGNS.c.status == "active", anyl, ~active)
            .values(status="completed", updated_at=now)
        )
        if res.rowcount:
            emit(
                conn,
                "campaign.completed",
                tenant=plan.tenant,
                subject=f"campaign/{plan.name}",
                payload={"campaign": plan.name},
            )
            done.append(plan.key)
    return done
