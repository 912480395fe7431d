"""Campaign statistics: counts per step and variant, rates, and an A/B test per step.

Counting rules
- ``sent``: ledger rows with status ``sent`` (``failed``/``ambiguous``/``unsent``/``claimed``
  are counted separately, never as sent; ``unsent``: the message could not be composed).
- ``bounced``, ``replied``, ``unsubscribed``: leads in that status, attributed to the last step
  (and its variant) sent to them before the outcome: that message is the one they answered,
  bounced or unsubscribed from.
- Rates: ``bounce_rate = bounced / sent``; ``reply_rate`` and ``unsubscribe_rate`` are per
  delivered message (``sent - bounced``), as in campaigns.md section 6.
- A/B: for each step with two or more variants sent, a two-sided two-proportion z-test of the
  reply rates of the two best variants; ``confidence = 1 - p``; a ``winner`` is named at 95% or
  more. Without tracking, replies are the metric (opens are not measured).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from penguinctl.campaigns.models import Campaign, CampaignSend, Lead

OUTCOMES = ("bounced", "replied", "unsubscribed")
CONFIDENCE = 0.95


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


@dataclass
class VariantStats:
    step: int  # 1-based, as people count steps
    variant: str
    sent: int = 0
    bounced: int = 0
    replied: int = 0
    unsubscribed: int = 0
    failed: int = 0
    ambiguous: int = 0
    unsent: int = 0  # never handed to a server: the message could not be composed
    in_flight: int = 0  # claimed, outcome not recorded yet

    @property
    def delivered(self) -> int:
        return max(0, self.sent - self.bounced)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            delivered=self.delivered,
            bounce_rate=_rate(self.bounced, self.sent),
            reply_rate=_rate(self.replied, self.delivered),
            unsubscribe_rate=_rate(self.unsubscribed, self.delivered),
        )
        return data


@dataclass(frozen=True)
class ProportionTest:
    """Two-sided two-proportion z-test (pooled standard error)."""

    z: float
    p_value: float
    confidence: float


def normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def two_proportion_test(x1: int, n1: int, x2: int, n2: int) -> ProportionTest:
    """Test whether x1/n1 and x2/n2 differ. With no data or no variance: z 0, confidence 0."""
    if n1 <= 0 or n2 <= 0:
        return ProportionTest(0.0, 1.0, 0.0)
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return ProportionTest(0.0, 1.0, 0.0)
    z = (x1 / n1 - x2 / n2) / se
    p_value = min(1.0, max(0.0, 2.0 * (1.0 - normal_cdf(abs(z)))))
    return ProportionTest(round(z, 6), round(p_value, 6), round(1.0 - p_value, 6))


@dataclass
class AbResult:
    step: int
    metric: str
    best: str
    runner_up: str
    best_rate: float | None
    runner_up_rate: float | None
    z: float
    p_value: float
    confidence: float
    winner: str | None  # best, when confidence >= 95%
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CampaignStats:
    campaign: str
    status: str
    leads: dict[str, int] = field(default_factory=dict)
    sends: dict[str, int] = field(default_factory=dict)
    rows: list[VariantStats] = field(default_factory=list)
    ab_tests: list[AbResult] = field(default_factory=list)

    @property
    def totals(self) -> VariantStats:
        total = VariantStats(0, "*")
        for row in self.rows:
            for name in (
                "sent",
                "bounced",
                "replied",
                "unsubscribed",
                "failed",
                "ambiguous",
                "unsent",
            ):
                setattr(total, name, getattr(total, name) + getattr(row, name))
            total.in_flight += row.in_flight
        return total

    def as_dict(self) -> dict[str, Any]:
        totals = self.totals.as_dict()
        for key in ("step", "variant"):
            totals.pop(key)
        return {
            "campaign": self.campaign,
            "status": self.status,
            "leads": self.leads,
            "sends": self.sends,
            "totals": totals,
            "steps": [row.as_dict() for row in self.rows],
            "ab_tests": [test.as_dict() for test in self.ab_tests],
        }

    def csv_rows(self) -> list[dict[str, Any]]:
        return [row.as_dict() for row in self.rows]


def campaign_stats(session: Session, campaign: Campaign) -> CampaignStats:
    """Counts and tests for ``campaign`` (see the module doc)."""
    from penguinctl.campaigns.spec import spec_of

    sends = CampaignSend.__table__
    leads = Lead.__table__
    result = CampaignStats(campaign.key, campaign.status)
    spec = spec_of(campaign)
    rows: dict[tuple[int, str], VariantStats] = {}
    for index, step in enumerate(spec.steps):
        for name, _ in step.weighted():
            rows[(index, name)] = VariantStats(index + 1, name)

    def row(step: int, variant: str | None) -> VariantStats:
        key = (step, variant or "A")
        if key not in rows:
            rows[key] = VariantStats(step + 1, variant or "A")
        return rows[key]

    status_field = {
        "sent": "sent",
        "failed": "failed",
        "ambiguous": "ambiguous",
        "unsent": "unsent",
    }
    query = (
        sa.select(sends.c.step, sends.c.variant, sends.c.status, sa.func.count())
        .where(sends.c.campaign_id == campaign.id)
        .group_by(sends.c.step, sends.c.variant, sends.c.status)
    )
    for step, variant, status, count in session.execute(query):
        result.sends[status] = result.sends.get(status, 0) + count
        target = row(step, variant)
        name = status_field.get(status, "in_flight")
        setattr(target, name, getattr(target, name) + count)

    query = (
        sa.select(leads.c.status, sa.func.count())
        .where(leads.c.campaign_id == campaign.id)
        .group_by(leads.c.status)
    )
    result.leads = {status: count for status, count in session.execute(query)}

    last = sends.alias("last")
    latest = (
        sa.select(sa.func.max(last.c.step))
        .where(last.c.lead_id == leads.c.id, last.c.status == "sent")
        .scalar_subquery()
    )
    query = (
        sa.select(sends.c.step, sends.c.variant, leads.c.status, sa.func.count())
        .select_from(leads.join(sends, sends.c.lead_id == leads.c.id))
        .where(
            leads.c.campaign_id == campaign.id,
            leads.c.status.in_(OUTCOMES),
            sends.c.status == "sent",
            sends.c.step == latest,
        )
        .group_by(sends.c.step, sends.c.variant, leads.c.status)
    )
    for step, variant, status, count in session.execute(query):
        target = row(step, variant)
        setattr(target, status, getattr(target, status) + count)

    result.rows = [rows[key] for key in sorted(rows)]
    result.ab_tests = _ab_tests(result.rows)
    return result


def _ab_tests(rows: list[VariantStats]) -> list[AbResult]:
    by_step: dict[int, list[VariantStats]] = {}
    for row in rows:
        by_step.setdefault(row.step, []).append(row)
    tests: list[AbResult] = []
    for step, variants in sorted(by_step.items()):
        sent = [v for v in variants if v.delivered > 0]
        if len(sent) < 2:
            continue
        ranked = sorted(sent, key=lambda v: (-(v.replied / v.delivered), v.variant))
        best, second = ranked[0], ranked[1]
        test = two_proportion_test(best.replied, best.delivered, second.replied, second.delivered)
        small = min(best.delivered, second.delivered) < 100
        tests.append(
            AbResult(
                step=step,
                metric="reply_rate",
                best=best.variant,
                runner_up=second.variant,
                best_rate=_rate(best.replied, best.delivered),
                runner_up_rate=_rate(second.replied, second.delivered),
                z=test.z,
                p_value=test.p_value,
                confidence=test.confidence,
                winner=best.variant if test.confidence >= CONFIDENCE else None,
                note="fewer than 100 delivered in a variant: keep sending" if small else None,
            )
        )
    return tests
