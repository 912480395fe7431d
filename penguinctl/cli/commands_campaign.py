"""`campaign launch -f FILE / pause / resume`; `status / stats` are in
``commands_campaign_report``, `ambiguous / resolve` in ``commands_campaign_ambiguous``. The group
and the lookup they share are ``campaign_common``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from penguinctl.cli.campaign_common import NameArg, TenantOpt, campaign_app, find_campaign

if TYPE_CHECKING:
    pass


def register(app: typer.Typer) -> None:
    app.add_typer(campaign_app, name="campaign")


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


# The other commands of the group, after these (the order `campaign --help` lists).
from penguinctl.cli import commands_campaign_ambiguous, commands_campaign_report  # noqa: E402

commands_campaign_report.attach(campaign_app)
commands_campaign_ambiguous.attach(campaign_app)

__all__ = ["campaign_app", "find_campaign", "register"]
