"""`campaign launch -f FILE / pause / resume`; `status / stats` are in
``commands_campaign_report``, `ambiguous / resolve` in ``commands_campaign_ambiguous``. The group
and the lookup they share are ``campaign_common``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from penguinctl.cli.campaign_common import NameArg, TenantOpt, campaign_app, find_campaign

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from penguinctl.campaigns.models import Campaign
    from penguinctl.campaigns.spec import CampaignDoc


def register(app: typer.Typer) -> None:
    app.add_typer(campaign_app, name="campaign")


# -- launch -----------------------------------------------------------------------------------
def _check_senders(session: Session, doc: CampaignDoc) -> list[Any]:
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


def _breaking_changes(session: Session, campaign: Campaign, doc: CampaignDoc) -> list[str]:
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


def _launch_one(session: Session, app: Any, doc: CampaignDoc, *, force: bool) -> dict[str, Any]:
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
        reasons = _breaking_changes(session, campaign, doc)
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
            actor=app.actor(),
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


@campaign_app.command("launch")
def launch(
    ctx: typer.Context,
    file: Annotated[Path, typer.Option("--file", "-f", metavar="FILE", help="Campaign spec.")],
    force: Annotated[
        bool,
        typer.Option("--force", help="Allow changes that remove steps or variants with sends."),
    ] = False,
) -> None:
    """Validate a Campaign spec and store it (status active); re-launching updates it.

    Validation is as strict as `penguinctl validate` (every problem as FILE:LINE:COL, exit 3),
    plus: every sender must be a recorded mailbox of the campaign's tenant. Re-launching the
    same name updates the spec; removing a step or variant that already has sends is refused
    (exit 4) unless --force. Import leads next with `penguinctl leads import`.
    """
    from penguinctl.campaigns.message import UNSUBSCRIBE_SECRET_PATH, unsubscribe_secret
    from penguinctl.campaigns.spec import load_campaign_documents
    from penguinctl.errors import SpecError
    from penguinctl.state.audit import record
    from penguinctl.state.db import session_scope

    app = ctx.obj
    docs = load_campaign_documents(file)
    results = []
    with session_scope(app.db) as session:
        issues = [issue for doc in docs for issue in _check_senders(session, doc)]
        if issues:
            raise SpecError(issues)
        backend = app.secrets()
        had_key = backend.exists(UNSUBSCRIBE_SECRET_PATH)
        unsubscribe_secret(backend)  # created before any worker needs it
        if not had_key:
            record(
                session,
                actor=app.actor(),
                tenant="",
                action="secret.create",
                resource=UNSUBSCRIBE_SECRET_PATH,
                result="ok",
                details={"purpose": "unsubscribe token signing key"},
            )
        for doc in docs:
            results.append(_launch_one(session, app, doc, force=force))

    def text(console) -> None:
        for r in results:
            console.print(
                f"campaign {r['campaign']}: {r['action']} ({r['steps']} steps, status "
                f"{r['status']}, {r['leads']} leads)"
            )
        if any(r["leads"] == 0 for r in results):
            console.print("Next: penguinctl leads import CAMPAIGN FILE.csv")

    app.emit(results if len(results) > 1 else results[0], text)


# -- pause / resume ---------------------------------------------------------------------------
def _set_status(ctx: typer.Context, name: str, tenant: str | None, pause: bool, reason: str | None):
    from penguinctl.state.audit import record
    from penguinctl.state.db import session_scope
    from penguinctl.state.models import utcnow

    app = ctx.obj
    with session_scope(app.db) as session:
        campaign = find_campaign(session, name, tenant)
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
            campaign.paused_reason = reason or f"paused by {app.actor()}"
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
                actor=app.actor(),
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
        data = {
            "campaign": campaign.key,
            "status": after,
            "previous": before,
            "paused_reason": campaign.paused_reason,
            "changed": changed,
        }

    def text(console) -> None:
        if before == "completed":
            console.print(f"campaign {data['campaign']} is completed; nothing to do")
        elif not changed:
            console.print(f"campaign {data['campaign']} is already {after}")
        else:
            console.print(f"campaign {data['campaign']}: {before} -> {after}")

    app.emit(data, text)


@campaign_app.command("pause")
def pause(
    ctx: typer.Context,
    name: NameArg,
    tenant: TenantOpt = None,
    reason: Annotated[
        str | None, typer.Option("--reason", metavar="TEXT", help="Why (shown in status).")
    ] = None,
) -> None:
    """Stop sending a campaign (sends already claimed finish; nothing new starts)."""
    _set_status(ctx, name, tenant, True, reason)


@campaign_app.command("resume")
def resume(ctx: typer.Context, name: NameArg, tenant: TenantOpt = None) -> None:
    """Resume a paused campaign (also one paused automatically for bounces)."""
    _set_status(ctx, name, tenant, False, None)


# The other commands of the group, after these (the order `campaign --help` lists).
from penguinctl.cli import commands_campaign_ambiguous, commands_campaign_report  # noqa: E402

commands_campaign_report.attach(campaign_app)
commands_campaign_ambiguous.attach(campaign_app)

__all__ = ["campaign_app", "find_campaign", "register"]
