"""Campaigns: launch (store or update a Campaign spec), pause, resume, status, stats, the
ambiguous sends and their resolution. ``penguinctl campaign ...`` and the API call these."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from penguinctl.services.context import ServiceContext

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from penguinctl.campaigns.models import Campaign
    from penguinctl.campaigns.spec import CampaignDoc


def find_campaign(
    session: Session, name: str, tenant: str | None, *, only: str | None = None
) -> Campaign:
    """The campaign called ``name`` (``tenant/name`` or ``name`` with ``tenant``, or a name
    that only one tenant uses). ``only``: the caller's tenant (a tenant key): another tenant's
    campaign is not found, like a missing one."""
    from sqlmodel import select

    from penguinctl.campaigns.models import Campaign
    from penguinctl.errors import NotFound, UsageError

    if "/" in name and tenant is None:
        tenant, name = name.split("/", 1)
    if only is not None:
        if tenant not in (None, only):
            raise NotFound(f"no campaign {name!r}")
        tenant = only
    query = select(Campaign).where(Campaign.name == name)
    if tenant is not None:
        query = query.where(Campaign.tenant == tenant)
    found = list(session.exec(query))
    if not found:
        where = f" of tenant {tenant}" if tenant else ""
        raise NotFound(
            f"no campaign {name!r}{where}", hint="see `penguinctl campaign status` for the list"
        )
    if len(found) > 1:
        tenants = ", ".join(sorted(c.tenant for c in found))
        raise UsageError(
            f"campaign {name!r} exists for several tenants ({tenants})",
            hint="pass --tenant or TENANT/NAME",
        )
    return found[0]


def check_senders(session: Session, doc: CampaignDoc) -> list[Any]:
    from penguinctl.errors import SpecIssue
    from penguinctl.state import repo

    recorded = {
        row.name.lower() for row in repo.list_resources(session, kind="mailbox", tenant=doc.tenant)
    }
    issues = []
    for index, sender in enumerate(doc.spec.senders):
        if sender.lower() not in recorded:
            known = ", ".join(sorted(recorded)[:5]) or "none recorded"
            issues.append(
                SpecIssue(
                    doc.location_of("spec", "senders", index),
                    f"campaign {doc.name}: spec.senders[{index}]: {sender} is not a recorded "
                    f"mailbox of tenant {doc.tenant} (recorded: {known}); add it to a Domain "
                    "spec and `penguinctl apply` first",
                )
            )
    return issues


def breaking_changes(session: Session, campaign: Campaign, doc: CampaignDoc) -> list[str]:
    """Changes to a stored campaign that would break sends already made or under way."""
    import sqlalchemy as sa

    from penguinctl.campaigns.models import CampaignSend

    sends = CampaignSend.__table__
    used = session.execute(
        sa.select(sends.c.step, sends.c.variant, sa.func.count())
        .where(sends.c.campaign_id == campaign.id)
        .group_by(sends.c.step, sends.c.variant)
    ).all()
    steps = doc.spec.steps
    reasons: list[str] = []
    removed_steps = sorted({step for step, _, _ in used if step >= len(steps)})
    if removed_steps:
        shown = ", ".join(str(s + 1) for s in removed_steps)
        reasons.append(f"step(s) {shown} would be removed but already have sends")
    for step, variant, count in used:
        if step < len(steps) and variant and variant != "A":
            names = {v.name for v in steps[step].variants}
            if variant not in names:
                reasons.append(
                    f"variant {variant} of step {step + 1} would be removed but has {count} sends"
                )
    return sorted(set(reasons))


def launch_one(
    session: Session, ctx: ServiceContext, doc: CampaignDoc, *, force: bool
) -> dict[str, Any]:
    import sqlalchemy as sa
    from sqlmodel import select

    from penguinctl.billing.dunning import refuse_if_suspended
    from penguinctl.campaigns.models import Campaign, Lead
    from penguinctl.errors import UnsafePlan
    from penguinctl.state.audit import record
    from penguinctl.state.models import utcnow

    refuse_if_suspended(session.connection(), doc.tenant, f"launch campaign {doc.name}")
    campaign = session.exec(
        select(Campaign).where(Campaign.tenant == doc.tenant, Campaign.name == doc.name)
    ).first()
    stored, digest = doc.stored, doc.spec_hash
    details: dict[str, Any] = {
        "spec_hash": digest,
        "steps": len(doc.spec.steps),
        "senders": list(doc.spec.senders),
    }
    if campaign is None:
        campaign = Campaign(
            tenant=doc.tenant, name=doc.name, status="active", spec=stored, spec_hash=digest
        )
        session.add(campaign)
        session.flush()
        action = "created"
    elif campaign.spec_hash == digest:
        action = "unchanged"
    else:
        reasons = breaking_changes(session, campaign, doc)
        if reasons and not force:
            raise UnsafePlan(
                [f"campaign {campaign.key}: {r}" for r in reasons],
                hint="keep those steps and variants, or re-run with --force (their sends stay "
                "in the ledger; leads past the last step complete)",
            )
        old_steps = len(campaign.spec.get("steps", []))
        campaign.spec = stored
        campaign.spec_hash = digest
        campaign.updated_at = utcnow()
        leads = Lead.__table__
        if len(doc.spec.steps) > old_steps:
            # steps appended: leads that had finished the old sequence continue
            session.execute(
                sa.update(leads)
                .where(
                    leads.c.campaign_id == campaign.id,
                    leads.c.status == "completed",
                    leads.c.next_step < len(doc.spec.steps),
                )
                .values(status="active", updated_at=utcnow())
            )
            if campaign.status == "completed":
                campaign.status = "active"
        session.add(campaign)
        action = "updated"
        details["forced"] = bool(reasons)
        details["previous_steps"] = old_steps
    if action != "unchanged":
        record(
            session,
            actor=ctx.actor,
            tenant=doc.tenant,
            action=f"campaign.{'launch' if action == 'created' else 'update'}",
            resource=f"campaign/{doc.name}",
            result="ok",
            details=details,
        )
    leads_count = session.execute(
        sa.select(sa.func.count())
        .select_from(Lead.__table__)
        .where(Lead.__table__.c.campaign_id == campaign.id)
    ).scalar_one()
    return {
        "campaign": campaign.key,
        "tenant": doc.tenant,
        "name": doc.name,
        "action": action,
        "status": campaign.status,
        "spec_hash": digest,
        "steps": len(doc.spec.steps),
        "leads": leads_count,
    }


def launch(ctx: ServiceContext, docs: Sequence[CampaignDoc], *, force: bool = False) -> list[dict]:
    """Store (or update) each Campaign document; senders must be recorded mailboxes."""
    from penguinctl.campaigns.message import UNSUBSCRIBE_SECRET_PATH, unsubscribe_secret
    from penguinctl.errors import Forbidden, SpecError
    from penguinctl.state.audit import record
    from penguinctl.state.db import session_scope

    if ctx.tenant is not None:
        foreign = sorted({d.name for d in docs if d.tenant != ctx.tenant})
        if foreign:
            raise Forbidden(
                f"a key of tenant {ctx.tenant} launches that tenant's campaigns only: "
                + ", ".join(foreign[:5])
            )
    results = []
    with session_scope(ctx.db) as session:
        issues = [issue for doc in docs for issue in check_senders(session, doc)]
        if issues:
            raise SpecError(issues)
        backend = ctx.secrets()
        had_key = backend.exists(UNSUBSCRIBE_SECRET_PATH)
        unsubscribe_secret(backend)  # created before any worker needs it
        if not had_key:
            record(
                session,
                actor=ctx.actor,
                tenant="",
                action="secret.create",
                resource=UNSUBSCRIBE_SECRET_PATH,
                result="ok",
                details={"purpose": "unsubscribe token signing key"},
            )
        for doc in docs:
            results.append(launch_one(session, ctx, doc, force=force))
    return results


def set_status(
    ctx: ServiceContext, name: str, tenant: str | None, *, pause: bool, reason: str | None
) -> dict[str, Any]:
    """Pause or resume; the answer says what it was and whether anything changed."""
    from penguinctl.state.audit import record
    from penguinctl.state.db import session_scope
    from penguinctl.state.models import utcnow

    with session_scope(ctx.db) as session:
        campaign = find_campaign(session, name, tenant, only=ctx.tenant)
        if not pause and campaign.status == "paused":
            from penguinctl.billing.dunning import refuse_if_suspended

            refuse_if_suspended(
                session.connection(), campaign.tenant, f"resume campaign {campaign.name}"
            )
        before = campaign.status
        if campaign.status == "completed":
            after = "completed"
        elif pause:
            after = "paused"
            campaign.paused_reason = reason or f"paused by {ctx.actor}"
        else:
            after = "active"
            campaign.paused_reason = None
        changed = after != before or (pause and reason is not None)
        if changed:
            campaign.status = after
            campaign.updated_at = utcnow()
            session.add(campaign)
            record(
                session,
                actor=ctx.actor,
                tenant=campaign.tenant,
                action="campaign.pause" if pause else "campaign.resume",
                resource=f"campaign/{campaign.name}",
                result="ok",
                details={"from": before, "to": after, "reason": campaign.paused_reason},
            )
            if after == "paused":
                from penguinctl.events.outbox import emit

                emit(
                    session,
                    "campaign.paused",
                    tenant=campaign.tenant,
                    subject=f"campaign/{campaign.name}",
                    payload={
                        "campaign": campaign.name,
                        "cause": "operator",
                        "reason": campaign.paused_reason or "",
                    },
                )
        return {
            "campaign": campaign.key,
            "status": after,
            "previous": before,
            "paused_reason": campaign.paused_reason,
            "changed": changed,
        }


def campaign_summaries(session: Session, tenant: str | None = None) -> list[dict[str, Any]]:
    """One line per campaign: status, lead and send counts (used by `get campaigns`)."""
    import sqlalchemy as sa
    from sqlmodel import select

    from penguinctl.campaigns.models import Campaign, CampaignSend, Lead

    query = select(Campaign).order_by(Campaign.tenant, Campaign.name)
    if tenant is not None:
        query = query.where(Campaign.tenant == tenant)
    campaigns = list(session.exec(query))
    leads, sends = Lead.__table__, CampaignSend.__table__
    lead_counts: dict[int, dict[str, int]] = {}
    for cid, status, count in session.execute(
        sa.select(leads.c.campaign_id, leads.c.status, sa.func.count()).group_by(
            leads.c.campaign_id, leads.c.status
        )
    ):
        lead_counts.setdefault(cid, {})[status] = count
    send_counts: dict[int, dict[str, int]] = {}
    for cid, status, count in session.execute(
        sa.select(sends.c.campaign_id, sends.c.status, sa.func.count()).group_by(
            sends.c.campaign_id, sends.c.status
        )
    ):
        send_counts.setdefault(cid, {})[status] = count
    due = dict(
        session.execute(
            sa.select(leads.c.campaign_id, sa.func.min(leads.c.next_send_at))
            .where(leads.c.status == "active")
            .group_by(leads.c.campaign_id)
        ).all()
    )
    out = []
    for c in campaigns:
        lc, sc = lead_counts.get(c.id, {}), send_counts.get(c.id, {})
        next_due = due.get(c.id)
        out.append(
            {
                "tenant": c.tenant,
                "name": c.name,
                "status": c.status,
                "paused_reason": c.paused_reason,
                "steps": len(c.spec.get("steps", [])),
                "leads": sum(lc.values()),
                "active": lc.get("active", 0),
                "leads_by_status": lc,
                "sent": sc.get("sent", 0),
                "sends_by_status": sc,
                "ambiguous": sc.get("ambiguous", 0),
                "next_due": next_due.isoformat() if next_due is not None else None,
                "updated_at": c.updated_at.isoformat(timespec="seconds"),
            }
        )
    return out


def status(ctx: ServiceContext, name: str | None = None, tenant: str | None = None) -> list[dict]:
    """Campaign summaries (``name``: that one only)."""
    from penguinctl.state.db import session_scope

    with session_scope(ctx.db) as session:
        if name is not None:
            campaign = find_campaign(session, name, tenant, only=ctx.tenant)
            return [
                i
                for i in campaign_summaries(session, campaign.tenant)
                if i["name"] == campaign.name
            ]
        if ctx.tenant is not None:
            tenant = ctx.tenant if tenant in (None, ctx.tenant) else "!none"
        return campaign_summaries(session, tenant)


def stats(ctx: ServiceContext, name: str, tenant: str | None = None) -> Any:
    """The campaign's ``CampaignStats`` (``.as_dict()``, ``.csv_rows()``)."""
    from penguinctl.campaigns.stats import campaign_stats
    from penguinctl.state.db import session_scope

    with session_scope(ctx.db) as session:
        return campaign_stats(session, find_campaign(session, name, tenant, only=ctx.tenant))


def ambiguous(ctx: ServiceContext, name: str, tenant: str | None = None) -> dict[str, Any]:
    from penguinctl.campaigns.ambiguous import list_ambiguous
    from penguinctl.state.db import session_scope

    with session_scope(ctx.db) as session:
        campaign = find_campaign(session, name, tenant, only=ctx.tenant)
        found = [a.to_json() for a in list_ambiguous(session.connection(), campaign.id)]
        return {"campaign": campaign.key, "ambiguous": found}


def resolve(
    ctx: ServiceContext,
    name: str,
    ids: Sequence[int] | None,
    verdict: str,
    *,
    tenant: str | None = None,
    confirm_resend: Callable[[str, int], bool] | None = None,
) -> dict[str, Any]:
    """Settle ambiguous sends (``ids``; None: all) as ``sent`` or ``unsent``; resending
    (``unsent``) asks ``confirm_resend(campaign, count)`` when given."""
    from penguinctl.campaigns import ambiguous as amb
    from penguinctl.errors import UsageError
    from penguinctl.state.audit import record_many
    from penguinctl.state.db import session_scope
    from penguinctl.state.models import utcnow

    if verdict not in ("sent", "unsent"):
        raise UsageError("--as is required: sent or unsent", hint="--as sent | --as unsent")
    with session_scope(ctx.db) as session:
        campaign = find_campaign(session, name, tenant, only=ctx.tenant)
        key, tenant_name, cname = campaign.key, campaign.tenant, campaign.name
        if verdict == "unsent" and confirm_resend is not None:
            count = len(amb.list_ambiguous(session.connection(), campaign.id, ids))
            if count and not confirm_resend(key, count):
                raise UsageError("not confirmed; nothing was changed", hint="add --yes")
        pg = session.get_bind().dialect.name == "postgresql"
        done = amb.resolve(session.connection(), campaign.id, ids, verdict, utcnow(), pg=pg)
        record_many(
            session,
            [
                {
                    "actor": ctx.actor,
                    "tenant": tenant_name,
                    "action": "campaign.send.resolved",
                    "resource": f"campaign/{cname}",
                    "result": verdict,
                    "details": {
                        "send_id": a.send_id,
                        "lead_id": a.lead_id,
                        "step": a.step,
                        "mailbox": a.mailbox,
                        "message_id": a.message_id,
                    },
                }
                for a in done
            ],
        )
    return {"campaign": key, "resolved_as": verdict, "sends": [a.send_id for a in done]}
