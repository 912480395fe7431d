"""`campaign status / stats` and `get campaigns`: what the recorded campaigns did."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from penguinctl.cli.campaign_common import NameArg, TenantOpt, find_campaign
from penguinctl.cli.conventions import ROWS, output_formats

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


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


def attach(campaign_app: typer.Typer) -> None:
    campaign_app.command("status")(status)
    campaign_app.command("stats")(stats)
