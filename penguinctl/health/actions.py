"""What a failed check does besides reporting: pause the campaigns that send through it.

A critical result (a DNSBL listing, port 25 down, an expired certificate) names an IP, a server
or a domain. The sending domains behind it are found from the recorded servers and domains; every
``active`` campaign with a sender address at one of those domains is set ``paused`` with
``paused_reason = "check: ..."`` and an audit event ``campaign.paused``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from penguinctl import clock
from penguinctl.campaigns.models import Campaign
from penguinctl.health.results import Result


def affected_domains(result: Result, servers: dict[str, dict], domains: dict[str, str]) -> set[str]:
    """Sending domains a critical ``result`` concerns. ``servers``: {name: data};
    ``domains``: {domain: server name}."""
    if result.target_kind == "domain":
        return {result.target}
    names = {result.target}
    if result.check.startswith("dnsbl:"):  # every server sending from the listed IP
        names |= {n for n, d in servers.items() if result.subject in (d.get("ips") or [])}
    return {d for d, s in domains.items() if s in names}


campaigns = Campaign.__table__  # owned by penguinctl.campaigns; paused here


def pause_campaigns(
    session, results: Sequence[Result], *, servers, domains, actor: str, tenant: str | None = None
) -> list[dict[str, Any]]:
    """Pause the active campaigns sending through what failed critically (``tenant``'s only,
    when given: a tenant's scheduled check never touches another tenant's campaigns)."""
    from penguinctl.events.outbox import emit
    from penguinctl.state.audit import record

    reasons: dict[str, str] = {}
    for r in results:
        if r.critical and r.failing:
            for d in affected_domains(r, servers, domains):
                reasons.setdefault(d, f"check: {r.check} {r.subject}: {r.detail}"[:300])
    if not reasons:
        return []
    paused = []
    stmt = sa.select(campaigns.c.id, campaigns.c.tenant, campaigns.c.name, campaigns.c.spec).where(
        campaigns.c.status == "active"
    )
    if tenant is not None:
        stmt = stmt.where(campaigns.c.tenant == tenant)
    rows = session.execute(stmt).all()
    for row in rows:
        senders = (row.spec or {}).get("senders") or []
        hit = next(
            (reasons[s.rsplit("@", 1)[-1].lower()] for s in senders
             if s.rsplit("@", 1)[-1].lower() in reasons),
            None,
        )  # fmt: skip
        if hit is None:
            continue
        session.execute(
            campaigns.update()
            .where(campaigns.c.id == row.id, campaigns.c.status == "active")
            .values(status="paused", paused_reason=hit, updated_at=clock.now())
        )
        emit(
            session,
            "campaign.paused",
            tenant=row.tenant,
            subject=f"campaign/{row.name}",
            payload={"campaign": row.name, "cause": "check", "reason": hit},
        )
        record(
            session,
            actor=actor,
            tenant=row.tenant,
            action="campaign.paused",
            resource=f"campaign/{row.name}",
            result="ok",
            details={"reason": hit},
        )
        paused.append({"tenant": row.tenant, "campaign": row.name, "reason": hit})
    return paused
