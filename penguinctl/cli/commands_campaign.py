"""`campaign launch -f FILE / pause / resume / status / stats / ambiguous / resolve`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from penguinctl.cli.conventions import ROWS, examples, output_formats

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from penguinctl.campaigns.models import Campaign
    from penguinctl.campaigns.spec import CampaignDoc

campaign_app = typer.Typer(
    help="Campaigns: launch from a spec, pause, resume, status, stats, ambiguous sends.",
    no_args_is_help=True,
    rich_markup_mode=None,
    epilog=examples(
        "penguinctl campaign launch -f campaign.yaml",
        "penguinctl campaign status",
        "penguinctl campaign pause q4-outreach --reason 'copy review'",
        "penguinctl campaign stats q4-outreach -o csv",
    ),
)

TenantOpt = Annotated[
    str | None,
    typer.Option(
        "--tenant", "-t", metavar="TENANT", help="The campaign's tenant (when ambiguous)."
    ),
]
NameArg = Annotated[str, typer.Argument(metavar="CAMPAIGN", help="NAME or TENANT/NAME.")]


def register(app: typer.Typer) -> None:
    app.add_typer(campaign_app, name="campaign")


# -- lookup -----------------------------------------------------------------------------------
def find_campaign(session: Session, name: str, tenant: str | None) -> Campaign:
    """The campaign called ``name`` (``tenant/name`` or ``name`` with ``tenant``, or a name
    that only one tenant uses)."""
    from sqlmodel import select

    from penguinctl.campaigns.models import Campaign
    from penguinctl.errors import NotFound, UsageError

    if "/" in name and tenant is None:
        tenant, name = name.split("/", 1)
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


# -- status / stats ---------------------------------------------------------------------------
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


@campaign_app.command("status")
@output_formats(*ROWS)
def status(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(metavar="CAMPAIGN", help="Only this one.")] = None,
    tenant: TenantOpt = None,
) -> None:
    """Campaigns with their state: leads by status, sends by status, ambiguous sends."""
    from penguinctl.cli.render import table
    from penguinctl.state.db import session_scope

    app = ctx.obj
    with session_scope(app.read_db) as session:
        if name is not None:
            campaign = find_campaign(session, name, tenant)
            items = [
                i
                for i in campaign_summaries(session, campaign.tenant)
                if i["name"] == campaign.name
            ]
        else:
            items = campaign_summaries(session, tenant)

    def text(console) -> None:
        if not items:
            console.print("No campaigns recorded.")
            return
        cols = ["tenant", "name", "status", "steps", "leads", "active", "sent", "ambiguous"]
        table(console, cols, [[str(i[c]) for c in cols] for i in items])
        for i in items:
            if i["paused_reason"]:
                console.print(f"{i['tenant']}/{i['name']} paused: {i['paused_reason']}")
            if i["ambiguous"]:
                console.print(
                    f"{i['tenant']}/{i['name']}: {i['ambiguous']} send(s) ambiguous (no reply "
                    "from the server); never resent automatically: `campaign ambiguous` lists "
                    "them, `campaign resolve` settles them"
                )
            if name is not None:
                console.print(f"leads: {i['leads_by_status']}  sends: {i['sends_by_status']}")

    app.emit(items if name is None else items[0], text)


@campaign_app.command("stats")
@output_formats(*ROWS)
def stats(ctx: typer.Context, name: NameArg, tenant: TenantOpt = None) -> None:
    """Per step and variant: sent, bounced, replied, unsubscribed and rates; an A/B test
    (two-proportion z-test on reply rates) per step with variants. `-o json` or `-o csv`."""
    from penguinctl.campaigns.stats import campaign_stats
    from penguinctl.cli.render import table
    from penguinctl.state.db import session_scope

    app = ctx.obj
    with session_scope(app.read_db) as session:
        result = campaign_stats(session, find_campaign(session, name, tenant))
    if app.output == "csv":
        import csv
        import sys

        rows = result.csv_rows()
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else ["step"])
        writer.writeheader()
        writer.writerows(rows)
        return
    data = result.as_dict()

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value * 100:.1f}%"

    def text(console) -> None:
        console.print(f"campaign {data['campaign']} ({data['status']}); leads: {data['leads']}")
        cols = ["step", "variant", "sent", "bounced", "replied", "unsub", "bounce%", "reply%"]
        rows = [
            [
                str(r["step"]),
                r["variant"],
                str(r["sent"]),
                str(r["bounced"]),
                str(r["replied"]),
                str(r["unsubscribed"]),
                pct(r["bounce_rate"]),
                pct(r["reply_rate"]),
            ]
            for r in data["steps"]
        ]
        table(console, cols, rows)
        for t in data["ab_tests"]:
            verdict = f"winner {t['winner']}" if t["winner"] else "no winner yet"
            note = f"; {t['note']}" if t["note"] else ""
            console.print(
                f"step {t['step']}: {t['best']} vs {t['runner_up']} reply rate "
                f"{pct(t['best_rate'])} vs {pct(t['runner_up_rate'])}, z={t['z']:.2f}, "
                f"confidence {t['confidence'] * 100:.1f}% ({verdict}{note})"
            )

    app.emit(data, text)


@campaign_app.command("ambiguous")
def ambiguous(ctx: typer.Context, name: NameArg, tenant: TenantOpt = None) -> None:
    """Sends whose outcome is unknown (no reply after the whole message was written, or a worker
    that died mid-send): never resent automatically. Check each by its Message-ID on the
    mailbox's server, then settle it with `campaign resolve`."""
    from penguinctl.campaigns.ambiguous import list_ambiguous
    from penguinctl.cli.render import table
    from penguinctl.state.db import session_scope

    app = ctx.obj
    with session_scope(app.read_db) as session:
        campaign = find_campaign(session, name, tenant)
        key = campaign.key
        found = [a.to_json() for a in list_ambiguous(session.connection(), campaign.id)]

    def text(console) -> None:
        if not found:
            console.print(f"campaign {key}: no ambiguous sends")
            return
        cols = ["send_id", "recipient", "step", "mailbox", "message_id"]
        table(
            console, cols, [[str(a[c] if a[c] is not None else "-") for c in cols] for a in found]
        )
        console.print(
            f"{len(found)} ambiguous send(s): `penguinctl campaign resolve {key} SEND_ID... "
            "--as sent|unsent` once you know"
        )

    app.emit({"campaign": key, "ambiguous": found}, text)


@campaign_app.command("resolve")
def resolve(
    ctx: typer.Context,
    name: NameArg,
    send_ids: Annotated[
        list[int] | None,
        typer.Argument(metavar="SEND_ID", help="Ambiguous sends (`campaign ambiguous`)."),
    ] = None,
    verdict: Annotated[
        str,
        typer.Option(
            "--as",
            metavar="VERDICT",
            help="Sent: the server took it (the lead moves on); unsent: it never went out (the "
            "next worker run sends it again).",
        ),
    ] = "",
    all_: Annotated[
        bool, typer.Option("--all", help="Every ambiguous send of the campaign.")
    ] = False,
    tenant: TenantOpt = None,
) -> None:
    """Settle ambiguous sends by what you found on the mailbox's server. `--as unsent` resends
    them: asks unless --yes."""
    from penguinctl.campaigns import ambiguous as amb
    from penguinctl.errors import UsageError
    from penguinctl.state.audit import record_many
    from penguinctl.state.db import session_scope
    from penguinctl.state.models import utcnow

    app = ctx.obj
    if verdict not in ("sent", "unsent"):
        raise UsageError("--as is required: sent or unsent", hint="--as sent | --as unsent")
    if bool(send_ids) == all_:
        raise UsageError("name the sends to settle, or pass --all (not both)")
    ids = None if all_ else sorted(set(send_ids or []))
    with session_scope(app.db) as session:
        campaign = find_campaign(session, name, tenant)
        key, tenant_name, cname = campaign.key, campaign.tenant, campaign.name
        if verdict == "unsent" and not app.yes:
            count = len(amb.list_ambiguous(session.connection(), campaign.id, ids))
            if count and not _confirm_resend(app, key, count):
                raise UsageError("not confirmed; nothing was changed", hint="add --yes")
        pg = session.get_bind().dialect.name == "postgresql"
        done = amb.resolve(session.connection(), campaign.id, ids, verdict, utcnow(), pg=pg)
        actor = app.actor()
        record_many(
            session,
            [
                {
                    "actor": actor,
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
    data = {"campaign": key, "resolved_as": verdict, "sends": [a.send_id for a in done]}

    def text(console) -> None:
        if not done:
            console.print(f"campaign {key}: no ambiguous sends to settle")
            return
        then = "the leads move on" if verdict == "sent" else "the next worker run sends them"
        console.print(f"campaign {key}: {len(done)} send(s) settled as {verdict}; {then}")

    app.emit(data, text)


def _confirm_resend(app: Any, key: str, count: int) -> bool:
    import sys

    from penguinctl.errors import UsageError

    if app.machine or not sys.stdin.isatty():
        raise UsageError(
            f"settling {count} send(s) of {key} as unsent needs confirmation", hint="add --yes"
        )
    return typer.confirm(
        f"{count} message(s) of {key} will be sent again; if any did go out, its recipient gets "
        "it twice. Go on?",
        default=False,
        err=True,
    )


def get_campaigns(app: Any, name: str | None, tenant: str | None) -> None:
    """`penguinctl get campaigns [NAME]`: the recorded campaigns, one line each."""
    from penguinctl.cli.render import table
    from penguinctl.state.db import session_scope

    with session_scope(app.read_db) as session:
        items = [
            {k: i[k] for k in ("tenant", "name", "status", "steps", "leads", "sent", "ambiguous")}
            for i in campaign_summaries(session, tenant)
            if name is None or i["name"] == name
        ]

    def text(console) -> None:
        if not items:
            console.print("No campaigns recorded.")
            return
        cols = list(items[0])
        table(console, cols, [[str(i[c]) for c in cols] for i in items])

    app.emit(items, text)
