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
