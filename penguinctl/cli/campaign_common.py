"""What the `campaign` commands share: the group (``campaign_app``), the CAMPAIGN argument and
--tenant option, and looking a campaign up by NAME or TENANT/NAME."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from penguinctl.cli.conventions import examples

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


# -- lookup -----------------------------------------------------------------------------------
def find_campaign(session: Session, name: str, tenant: str | None) -> Campaign:
    """The campaign called ``name`` (``tenant/name`` or ``name`` with ``tenant``, or a name
    that only one tenant uses): ``penguinctl.services.campaigns.find_campaign``."""
    from penguinctl.services.campaigns import find_campaign as find

    return find(session, name, tenant)
