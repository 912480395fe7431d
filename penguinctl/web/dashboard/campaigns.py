"""The Campaigns pages: the list, and a campaign's funnel, A/B tests, daily charts, recipient
providers, mailbox health and ambiguous sends. Counts come from ``campaigns.stats`` (the CLI's
own numbers); nothing here recounts them differently."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from penguinctl.campaigns.models import Campaign, CampaignSend, Lead
from penguinctl.state.columns import aware

_CAMP = Campaign.__table__
CHART_TTL = 60.0  # sends/replies per day: recounted at most once a minute per campaign
PROVIDER_TTL = 600.0  # recipients by provider: every ten minutes
_SENDS = CampaignSend.__table__
_LEADS = Lead.__table__
DAYS = 30


def listing(engine: sa.Engine, scope: str | None) -> list[dict[str, Any]]:
    stmt = sa.select(
        _CAMP.c.id,
        _CAMP.c.tenant,
        _CAMP.c.name,
        _CAMP.c.status,
        _CAMP.c.paused_reason,
        _CAMP.c.updated_at,
    )
    if scope is not None:
        stmt = stmt.where(_CAMP.c.tenant == scope)
    sent = (
        sa.select(_SENDS.c.campaign_id, sa.func.count().label("n"))
        .where(_SENDS.c.status == "sent")
        .group_by(_SENDS.c.campaign_id)
    )
    leads = sa.select(_LEADS.c.campaign_id, _LEADS.c.status, sa.func.count().label("n")).group_by(
        _LEADS.c.campaign_id, _LEADS.c.status
    )
    if scope is not None:
        sent = sent.where(_SENDS.c.tenant == scope)
        leads = leads.where(
            _LEADS.c.campaign_id.in_(sa.select(_CAMP.c.id).where(_CAMP.c.tenant == scope))
        )
    with engine.connect() as conn:
        rows = conn.execute(stmt.order_by(_CAMP.c.tenant, _CAMP.c.name)).all()
        sent_by = dict(conn.execute(sent).all())
        lead_by: dict[int, dict[str, int]] = {}
        for cid, status, n in conn.execute(leads):
            lead_by.setdefault(cid, {})[status] = n
    out = []
    for r in rows:
        counts = lead_by.get(r.id, {})
        out.append(
            {
                "id": r.id,
                "tenant": r.tenant,
                "name": r.name,
                "status": r.status,
                "paused_reason": r.paused_reason,
                "updated_at": aware(r.updated_at),
                "sent": sent_by.get(r.id, 0),
                "leads": sum(counts.values()),
                "replied": counts.get("replied", 0),
                "bounced": counts.get("bounced", 0),
            }
        )
    return out


def find(engine: sa.Engine, scope: str | None, tenant: str, name: str) -> Campaign | None:
    from sqlmodel import Session, select

    if scope is not None and tenant != scope:
        return None
    with Session(engine) as s:
        found = s.exec(select(Campaign).where(Campaign.tenant == tenant, Campaign.name == name))
        campaign = found.first()
        if campaign is not None:
            s.expunge(campaign)
        return campaign


class TtlCache:
    """A few recent answers per (engine, campaign, what), for the expensive scans of a big
    campaign's ledger (a campaign page viewed again within the TTL does not rescan 100,000
    rows). Monotonic time; bounded; thread-safe."""

    def __init__(self, size: int = 256) -> None:
        import threading
        from collections import OrderedDict

        self._items: OrderedDict[tuple, tuple[float, Any]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: tuple, ttl: float, compute: Any) -> Any:
        import time

        now = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
        value = compute()
        with self._lock:
            self._items[key] = (now + ttl, value)
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


CACHE = TtlCache()


def _day(column: Any, dialect: str) -> Any:
    if dialect == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM-DD")
    return sa.func.substr(sa.cast(column, sa.String), 1, 10)


def _domain_of(column: Any, dialect: str) -> Any:
    if dialect == "postgresql":
        return sa.func.lower(sa.func.split_part(column, "@", 2))
    return sa.func.lower(sa.func.substr(column, sa.func.instr(column, "@") + 1))


def detail(engine: sa.Engine, campaign: Campaign, now: datetime) -> dict[str, Any]:
    from sqlmodel import Session

    from penguinctl.campaigns import ambiguous
    from penguinctl.campaigns.inbound import EVENTS
    from penguinctl.campaigns.stats import campaign_stats
    from penguinctl.web.dashboard import providers

    dialect = engine.dialect.name
    since = (now - timedelta(days=DAYS - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    with Session(engine) as s:
        stats = campaign_stats(s, campaign)
    key = (str(engine.url), campaign.id, str(campaign.created_at))  # never another store's

    def per_day() -> tuple[dict[str, int], dict[str, int]]:
        with engine.connect() as conn:
            day = _day(_SENDS.c.sent_at, dialect)
            sends = conn.execute(
                sa.select(day, sa.func.count())
                .where(
                    _SENDS.c.campaign_id == campaign.id,
                    _SENDS.c.status == "sent",
                    _SENDS.c.sent_at >= since,
                )
                .group_by(day)
            ).all()
            rday = _day(EVENTS.c.received_at, dialect)
            replies = conn.execute(
                sa.select(rday, sa.func.count())
                .where(
                    EVENTS.c.campaign_id == campaign.id,
                    EVENTS.c.kind == "reply",
                    EVENTS.c.received_at >= since,
                )
                .group_by(rday)
            ).all()
        return dict(sends), dict(replies)

    def by_domain() -> dict[str, int]:
        dom = _domain_of(_SENDS.c.recipient, dialect)
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(dom, sa.func.count())
                .where(
                    _SENDS.c.campaign_id == campaign.id,
                    _SENDS.c.status == "sent",
                    _SENDS.c.recipient.is_not(None),
                )
                .group_by(dom)
            ).all()
        return {k or "": int(v) for k, v in rows}

    sends_per_day, replies_per_day = CACHE.get((*key, "days", since), CHART_TTL, per_day)
    domains = CACHE.get((*key, "domains"), PROVIDER_TTL, by_domain)
    with engine.connect() as conn:
        pending = ambiguous.list_ambiguous(conn, campaign.id)
        boxes = mailbox_health(conn, campaign, now)
    days = [(since + timedelta(days=i)).date().isoformat() for i in range(DAYS)]
    return {
        "campaign": campaign,
        "stats": stats,
        "totals": stats.totals,
        "days": days,
        "sends_per_day": [(d, int(sends_per_day.get(d, 0))) for d in days],
        "replies_per_day": [(d, int(replies_per_day.get(d, 0))) for d in days],
        "providers": providers.breakdown(domains),
        "ambiguous": pending[:200],
        "ambiguous_total": len(pending),
        "mailboxes": boxes,
    }


def mailbox_health(conn: Any, campaign: Campaign, now: datetime) -> list[dict[str, Any]]:
    from penguinctl.campaigns.ledger import MAILBOXES
    from penguinctl.campaigns.spec import spec_of
    from penguinctl.campaigns.warmup import ramp_cap, ramp_day, ramp_from_spec

    spec = spec_of(campaign)
    ramp = ramp_from_spec(spec.warmup)
    senders = list(spec.senders)
    rows = {
        r.address: r
        for r in conn.execute(
            sa.select(MAILBOXES).where(
                MAILBOXES.c.tenant == campaign.tenant, MAILBOXES.c.address.in_(senders)
            )
        )
    }
    per_day = getattr(spec.limits, "per_mailbox_daily", None)
    today = now.date().isoformat()
    out = []
    for address in senders:
        r = rows.get(address)
        started = aware(r.warmup_started_at) if r is not None else None
        cap = ramp_cap(ramp, started, now)
        caps = [c for c in (per_day, cap) if c]
        out.append(
            {
                "address": address,
                "status": r.status if r is not None else "not used yet",
                "paused_reason": r.paused_reason if r is not None else None,
                "today": (r.day_count if r is not None and r.day == today else 0),
                "cap": min(caps) if caps else None,
                "warmup": (
                    f"day {ramp_day(started, now) + 1} of {ramp.days}"
                    if ramp is not None and cap is not None
                    else "done"
                    if ramp
                    else "off"
                ),
                "last_claim_at": aware(r.last_claim_at) if r is not None else None,
            }
        )
    return out
