"""`campaign launch -f FILE / pause / resume / status / stats / ambiguous / resolve`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from penguinctl.cli.conventions import ROWS, examples, output_formats

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from penguinctl.campaigns.models import Campaign

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
    """The campaign called ``name`` (see ``penguinctl.services.campaigns.find_campaign``)."""
    from penguinctl.services.campaigns import find_campaign as find

    return find(session, name, tenant)


# -- launch -----------------------------------------------------------------------------------
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
    from penguinctl.campaigns.spec import load_campaign_documents
    from penguinctl.services import campaigns, context

    app = ctx.obj
    results = campaigns.launch(context.from_cli(app), load_campaign_documents(file), force=force)

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
    from penguinctl.services import campaigns, context

    app = ctx.obj
    data = campaigns.set_status(context.from_cli(app), name, tenant, pause=pause, reason=reason)
    before, after, changed = data["previous"], data["status"], data["changed"]

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
    """One line per campaign (``penguinctl.services.campaigns.campaign_summaries``)."""
    from penguinctl.services.campaigns import campaign_summaries as summaries

    return summaries(session, tenant)


@campaign_app.command("status")
@output_formats(*ROWS)
def status(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(metavar="CAMPAIGN", help="Only this one.")] = None,
    tenant: TenantOpt = None,
) -> None:
    """Campaigns with their state: leads by status, sends by status, ambiguous sends."""
    from penguinctl.cli.render import table
    from penguinctl.services import campaigns, context

    app = ctx.obj
    from penguinctl.cli import client_mode

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


@campaign_app.command("stats")
@output_formats(*ROWS)
def stats(ctx: typer.Context, name: NameArg, tenant: TenantOpt = None) -> None:
    """Per step and variant: sent, bounced, replied, unsubscribed and rates; an A/B test
    (two-proportion z-test on reply rates) per step with variants. `-o json` or `-o csv`."""
    from penguinctl.cli.render import table
    from penguinctl.services import campaigns, context

    app = ctx.obj
    from penguinctl.cli import client_mode

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


@campaign_app.command("ambiguous")
def ambiguous(ctx: typer.Context, name: NameArg, tenant: TenantOpt = None) -> None:
    """Sends whose outcome is unknown (no reply after the whole message was written, or a worker
    that died mid-send): never resent automatically. Check each by its Message-ID on the
    mailbox's server, then settle it with `campaign resolve`."""
    from penguinctl.cli.render import table
    from penguinctl.services import campaigns, context

    app = ctx.obj
    data = campaigns.ambiguous(context.from_cli(app, read_only=True), name, tenant)
    key, found = data["campaign"], data["ambiguous"]

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

    app.emit(data, text)


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
    from penguinctl.errors import UsageError
    from penguinctl.services import campaigns, context

    app = ctx.obj
    if verdict not in ("sent", "unsent"):
        raise UsageError("--as is required: sent or unsent", hint="--as sent | --as unsent")
    if bool(send_ids) == all_:
        raise UsageError("name the sends to settle, or pass --all (not both)")
    ids = None if all_ else sorted(set(send_ids or []))
    data = campaigns.resolve(
        context.from_cli(app),
        name,
        ids,
        verdict,
        tenant=tenant,
        confirm_resend=None if app.yes else lambda key, n: _confirm_resend(app, key, n),
    )
    key, done = data["campaign"], data["sends"]

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
