"""`campaign ambiguous / resolve`: sends whose outcome is unknown, settled by the operator."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from penguinctl.cli.campaign_common import NameArg, TenantOpt


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
    auto: Annotated[
        bool,
        typer.Option(
            "--auto",
            help="Ask the sending MTA (MailU's Postfix log over SSH; an external server's Sent "
            "folder over IMAP) and settle what it answers; the rest stay ambiguous, with why.",
        ),
    ] = False,
    grace: Annotated[
        float,
        typer.Option(
            "--grace",
            metavar="SECONDS",
            help="--auto: how long the MTA log must run past a claim before a send missing "
            "from it counts as unsent.",
            min=0,
        ),
    ] = 30.0,
    tenant: TenantOpt = None,
) -> None:
    """Settle ambiguous sends by what you found on the mailbox's server, or ask the server
    (--auto). `--as unsent` resends them: asks unless --yes."""
    from penguinctl.errors import UsageError
    from penguinctl.services import campaigns, context

    app = ctx.obj
    if auto:
        from penguinctl.cli.campaign_common import find_campaign
        from penguinctl.cli.campaign_settle import resolve_auto

        if verdict or send_ids or all_:
            raise UsageError("--auto decides by itself: no --as, --all or SEND_ID with it")
        return resolve_auto(app, find_campaign, name, tenant, grace)
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


def attach(campaign_app: typer.Typer) -> None:
    campaign_app.command("ambiguous")(ambiguous)
    campaign_app.command("resolve")(resolve)
