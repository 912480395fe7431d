"""Usage of one tenant in one period, read from the state store.

- emails sent: rows of the send ledger (``campaign_sends``) with ``status='sent'`` and
  ``sent_at`` in ``[period start, period end)`` (UTC); claimed, failed and ambiguous sends are
  not billed;
- domains and mailboxes: the tenant's recorded resources created before the period ended
  (a count of what exists when billing runs: reported, and checked against plan limits);
- servers: the tenant's own servers (shared servers, without a tenant, are billed to nobody).
  Only ``hostwinds`` servers cost anything: their ``monthly_cost`` is the Hostwinds price list
  price for the server's ``rid`` and billing cycle, per month, stored by the provider when the
  server was ordered (``penguinctl server list`` shows it). ``static`` and ``external`` servers
  are the customer's own machines and cost 0. A server is billed for the days of the period on
  which it existed (from the UTC day it was recorded); a server still being ordered is not;
- dedicated IPs: the IPv4 addresses of the tenant's own Hostwinds servers.

Servers deleted before billing runs are no longer in the state store and are not billed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa

from penguinctl.billing.periods import Period, as_utc
from penguinctl.campaigns.models import CampaignSend
from penguinctl.state.models import ResourceRow


@dataclass(frozen=True)
class ServerUsage:
    name: str
    provider: str
    monthly_cost_cents: int | None  # None: price unknown (not billed, warned)
    days: int  # days of the period the server existed
    ipv4: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Usage:
    tenant: str
    period: str
    emails_sent: int
    domains: int
    mailboxes: int
    servers: list[ServerUsage]
    warnings: list[str] = field(default_factory=list)

    @property
    def dedicated_ips(self) -> int:
        return sum(len(s.ipv4) for s in self.servers if s.provider == "hostwinds")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["dedicated_ips"] = self.dedicated_ips
        return data


def dollars_to_cents(value: Any) -> int | None:
    if not isinstance(value, int | float | str) or isinstance(value, bool):
        return None
    try:
        return int((Decimal(str(value)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    except ArithmeticError:
        return None


def emails_sent(conn: Any, tenant: str, period: Period) -> int:
    s = CampaignSend.__table__.c
    stmt = sa.select(sa.func.count()).where(
        s.tenant == tenant, s.status == "sent", s.sent_at >= period.start, s.sent_at < period.end
    )
    return int(conn.execute(stmt).scalar() or 0)


def _ipv4(values: Any) -> list[str]:
    out = []
    for value in values if isinstance(values, list) else []:
        try:
            if ipaddress.ip_address(str(value)).version == 4:
                out.append(str(value))
        except ValueError:
            continue
    return sorted(set(out))


def measure(conn: Any, tenant: str, period: Period) -> Usage:
    r = ResourceRow.__table__.c
    rows = conn.execute(
        sa.select(r.kind, r.name, r.provider, r.data, r.status, r.created_at).where(
            r.tenant == tenant,
            r.kind.in_(("domain", "mailbox", "server")),
            r.created_at < period.end,
        )
    ).all()
    counts = {"domain": 0, "mailbox": 0}
    servers: list[ServerUsage] = []
    warnings: list[str] = []
    for kind, name, provider, data, status, created in rows:
        if kind in counts:
            counts[kind] += 1
            continue
        data = data or {}
        kind_of = str(data.get("provider") or provider.split(":")[-1])
        if status == "pending":
            continue  # still being ordered
        first = max(as_utc(created), period.start)
        days = sum(1 for d in period.day_starts() if d.date() >= first.date())
        cost: int | None = 0
        if kind_of == "hostwinds":
            cost = dollars_to_cents(data.get("monthly_cost"))
            if cost is None:
                warnings.append(
                    f"server {name}: Hostwinds monthly cost unknown (no price for its rid); "
                    "not billed: check `penguinctl server hostwinds prices`"
                )
        servers.append(
            ServerUsage(
                name=name,
                provider=kind_of,
                monthly_cost_cents=cost,
                days=days,
                ipv4=_ipv4(data.get("ips")) if kind_of == "hostwinds" else [],
            )
        )
    return Usage(
        tenant=tenant,
        period=str(period),
        emails_sent=emails_sent(conn, tenant, period),
        domains=counts["domain"],
        mailboxes=counts["mailbox"],
        servers=sorted(servers, key=lambda s: s.name),
        warnings=warnings,
    )
