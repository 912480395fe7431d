"""`campaign status / stats` and `get campaigns`: what the recorded campaigns did."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from penguinctl.cli.campaign_common import NameArg, TenantOpt
from penguinctl.cli.conventions import ROWS, output_formats

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


# -- status / stats ---------------------------------------------------------------------------
def campaign_summaries(session: Session, tenant: str | None = None) -> list[dict[str, Any]]:
    """One line per campaign (``penguinctl.services.campaigns.campaign_summaries``)."""
    from penguinctl.services.campaigns import campaign_summaries as summaries

    return summaries(session, tenant)


@output_formats(*ROWS)
def status(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(metavar="CAMPAIGN", help="Only this one.")] = None,
    tenant: TenantOpt = None,
) -> None:
    """Campaigns with their state: leads by status, sends by status, ambiguous sends."""
    from penguinctl.cli import client_mode
    from penguinctl.cli.render import table
    from penguinctl.services import campaigns, context

    app = ctx.obj
    api = client_mode.client(app)
    if api is not None:
        if name is not None:
            items = [api.get(f"/campaigns/{name}", tenant=tenant)]
        else:
            items = list(api.items("/campaigns", tenant=tenant))
    else:
        items = campaigns.status(context.from_cli(app, read_only=True), name, tenant)

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
    from penguinctl.cli import client_mode
    from penguinctl.cli.render import table
    from penguinctl.services import campaigns, context

    app = ctx.obj
    api = client_mode.client(app)
    if api is not None:
        result = client_mode.RemoteStats(api.get(f"/campaigns/{name}/stats", tenant=tenant))
    else:
        result = campaigns.stats(context.from_cli(app, read_only=True), name, tenant)
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
