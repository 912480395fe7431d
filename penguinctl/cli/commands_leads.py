"""`leads import|export|forget` and `suppress add|import|check`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from penguinctl.cli.conventions import examples, output_formats

leads_app = typer.Typer(
    help="Campaign leads: import a CSV; export or forget a person.",
    no_args_is_help=True,
    rich_markup_mode=None,
    epilog=examples(
        "penguinctl leads import q4-outreach leads.csv -t acme",
        "penguinctl leads export jane@client.example",
        "penguinctl leads forget jane@client.example",
    ),
)
suppress_app = typer.Typer(
    help="Suppression list (global, per tenant or per campaign; stored hashed).",
    no_args_is_help=True,
    rich_markup_mode=None,
    epilog=examples(
        "penguinctl suppress add jane@client.example -t acme",
        "penguinctl suppress import bounces.csv --reason 'hard bounce'",
        "penguinctl suppress check jane@client.example",
    ),
)

TenantOpt = Annotated[
    str | None,
    typer.Option("--tenant", "-t", metavar="TENANT", help="Tenant scope (default: global)."),
]
CampaignOpt = Annotated[
    str | None,
    typer.Option("--campaign", "-c", metavar="CAMPAIGN", help="Campaign scope (needs --tenant)."),
]
ReasonOpt = Annotated[
    str, typer.Option("--reason", metavar="TEXT", help="Why (kept with the entry).")
]


def register(app: typer.Typer) -> None:
    app.add_typer(leads_app, name="leads")
    app.add_typer(suppress_app, name="suppress")


def _issue_lines(issues: list[Any], limit: int = 50) -> list[str]:
    lines = [str(i) for i in issues[:limit]]
    if len(issues) > limit:
        lines.append(f"... and {len(issues) - limit} more (use -o json for all)")
    return lines


# -- leads ------------------------------------------------------------------------------------
@leads_app.command("import")
def import_leads(
    ctx: typer.Context,
    campaign_name: Annotated[str, typer.Argument(metavar="CAMPAIGN", help="NAME or TENANT/NAME.")],
    csv_file: Annotated[Path, typer.Argument(metavar="CSV", help="One row per lead.")],
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", metavar="TENANT", help="The campaign's tenant.")
    ] = None,
) -> None:
    """Import leads into a campaign: validate, merge duplicates, keep custom fields.

    \b
    Columns (header line; names case-insensitive, "First Name" = first_name):
      email                 required; validated (syntax, no DNS lookups)
      first_name, last_name, company
      timezone              optional IANA name (Europe/Paris)
      anything else         a custom field: {{ column_name }} in templates
    A row whose address is already a lead is merged (non-blank cells win). A row missing a
    variable the templates use without a default is rejected. Suppressed addresses are stored
    with status suppressed; forgotten people are skipped. Every bad row is reported as
    FILE:LINE:COL; the good rows are imported (exit 6 when some rows were rejected, 3 when
    nothing could be imported). Large files are streamed in batches.
    """
    from penguinctl.errors import PartialApply, SpecError
    from penguinctl.services import context, leads

    app = ctx.obj
    with _progress(app, csv_file) as advance:
        result = leads.import_csv(
            context.from_cli(app),
            campaign_name,
            csv_file,
            tenant=tenant,
            shown=str(csv_file),
            progress=advance,
        )
    imported = result.created + result.merged + result.suppressed
    data = result.as_dict()

    def text(console) -> None:
        console.print(
            f"campaign {data['campaign']}: {data['rows']} rows, {data['created']} new leads, "
            f"{data['merged']} merged, {data['suppressed']} suppressed, "
            f"{data['skipped_forgotten']} skipped (forgotten), {data['rejected']} rejected"
        )

    if result.issues and not app.machine:
        for line in _issue_lines(result.issues):
            app.err.print(line, markup=False, highlight=False)
    app.emit(data, text)
    if result.issues:
        if not imported or not result.complete:
            raise SpecError(result.issues)
        raise PartialApply(
            f"{result.rejected} row(s) of {csv_file} rejected; the other rows were imported",
            hint="fix the rows listed above and import the file again (imports merge)",
        )


class _progress:
    """A Rich progress bar on stderr while reading a big file (text output on a terminal)."""

    def __init__(self, app: Any, path: Path) -> None:
        self.app = app
        self.path = path
        self.bar: Any = None

    def __enter__(self):
        try:
            size = self.path.stat().st_size
        except OSError:
            size = 0
        if self.app.machine or not self.app.err.is_terminal or size < 1_000_000:
            return None
        from rich.progress import BarColumn, Progress, TimeElapsedColumn

        self.bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            "[progress.percentage]{task.percentage:>3.0f}%",
            TimeElapsedColumn(),
            console=self.app.err,
            transient=True,
        )
        self.bar.__enter__()
        task = self.bar.add_task(f"importing {self.path.name}", total=size)
        return lambda chars: self.bar.update(task, completed=chars)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


@leads_app.command("export")
def export(
    ctx: typer.Context, email: Annotated[str, typer.Argument(help="The person's address.")]
) -> None:
    """Everything held about a person: leads in every campaign, messages sent, suppressions
    and inbound events (a data subject access request). Printed as YAML/JSON."""
    from penguinctl.cli.render import dump
    from penguinctl.services import context, leads

    app = ctx.obj
    data = leads.export(context.from_cli(app), email)
    app.emit(data, lambda console: print(dump(data, "yaml")))


@leads_app.command("forget")
def forget(
    ctx: typer.Context, email: Annotated[str, typer.Argument(help="The person's address.")]
) -> None:
    """Erase a person: leads anonymised in every campaign, the address removed from the send
    history and suppression list; only a hashed global suppression remains, so they are never
    mailed again. Asks unless --yes."""
    from penguinctl.errors import UsageError
    from penguinctl.services import context, leads

    app = ctx.obj
    if not app.yes:
        if not app.err.is_terminal:
            raise UsageError("leads forget changes data irreversibly", hint="pass --yes")
        if not typer.confirm(f"Erase everything held about {email}?", err=True):
            raise typer.Exit(1)
    data = leads.forget(context.from_cli(app), email)

    def text(console) -> None:
        console.print(
            f"forgotten: {data['leads']} lead(s) anonymised, {data['sends']} send(s) and "
            f"{data['suppressions']} suppression(s) cleared; globally suppressed by hash"
        )

    app.emit(data, text)


# -- suppress ---------------------------------------------------------------------------------
@suppress_app.command("add")
def suppress_add(
    ctx: typer.Context,
    emails: Annotated[list[str], typer.Argument(metavar="EMAIL", help="Addresses.")],
    tenant: TenantOpt = None,
    campaign: CampaignOpt = None,
    reason: ReasonOpt = "manual",
) -> None:
    """Suppress addresses: globally, for --tenant, or for --tenant's --campaign."""
    from penguinctl.services import context, leads

    app = ctx.obj
    data = leads.suppress_add(
        context.from_cli(app), emails, tenant=tenant, campaign=campaign, reason=reason
    )
    scope, ref = data["scope"], data["scope_ref"]
    app.emit(
        data,
        lambda c: c.print(
            f"suppressed ({scope}{' ' + ref if ref else ''}): {data['added']} added, "
            f"{data['existing']} already there"
        ),
    )


@suppress_app.command("import")
def suppress_import(
    ctx: typer.Context,
    csv_file: Annotated[
        Path, typer.Argument(metavar="FILE", help="CSV (email[,reason]) or a list.")
    ],
    tenant: TenantOpt = None,
    campaign: CampaignOpt = None,
    reason: ReasonOpt = "import",
) -> None:
    """Suppress every address of a CSV with an `email` column (optional `reason`), or of a
    plain list (one address per line). Bad rows are reported with their line."""
    from penguinctl.campaigns import suppression
    from penguinctl.errors import PartialApply, SpecError
    from penguinctl.state.audit import record
    from penguinctl.state.db import session_scope

    app = ctx.obj
    scope, ref = suppression.scope_of(tenant, campaign)
    with session_scope(app.db) as session:
        result = suppression.import_file(
            session, csv_file, scope, ref, default_reason=reason, shown=str(csv_file)
        )
        if result.added:
            record(
                session,
                actor=app.actor(),
                tenant=tenant or "",
                action="suppress.import",
                resource=f"suppression/{scope}/{ref}" if ref else "suppression/global",
                result="ok" if not result.issues else "partial",
                details={
                    "file": str(csv_file),
                    "added": result.added,
                    "errors": len(result.issues),
                },
            )
    data = result.as_dict()
    if result.issues and not app.machine:
        for line in _issue_lines(result.issues):
            app.err.print(line, markup=False, highlight=False)
    app.emit(
        data,
        lambda c: c.print(
            f"{csv_file}: {data['added']} added, {data['existing']} already suppressed, "
            f"{len(data['errors'])} bad rows"
        ),
    )
    if result.issues:
        if result.added or result.existing:
            raise PartialApply(f"{len(result.issues)} row(s) of {csv_file} were not imported")
        raise SpecError(result.issues)


@suppress_app.command("check")
def suppress_check(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The address.")],
    tenant: TenantOpt = None,
    campaign: CampaignOpt = None,
) -> None:
    """Is an address suppressed? Every matching entry (all scopes, or those that apply to
    --tenant and --campaign)."""
    from datetime import datetime

    from penguinctl.services import context, leads

    app = ctx.obj
    data = leads.suppress_check(
        context.from_cli(app, read_only=True), email, tenant=tenant, campaign=campaign
    )
    entries = data["entries"]

    def text(console) -> None:
        if not entries:
            console.print(f"{email} is not suppressed")
            return
        for e in entries:
            where = f"{e['scope']} {e['scope_ref']}".strip()
            since = datetime.fromisoformat(e["created_at"])
            console.print(f"{email} suppressed ({where}): {e['reason']}, since {since:%Y-%m-%d}")

    app.emit(data, text)


@suppress_app.command("serve")
@output_formats("text")
def suppress_serve(
    ctx: typer.Context,
    listen: Annotated[
        str,
        typer.Option(
            "--listen",
            metavar="HOST:PORT",
            help="HOST:PORT to serve on (behind the HTTPS reverse proxy of the campaigns' "
            "unsubscribe.url).",
        ),
    ] = "127.0.0.1:8080",
) -> int:
    """Serve the campaigns' unsubscribe links (an alias of `penguinctl serve --no-scheduler`:
    the same HTTP app, with its limits). One-click POST (RFC 8058) unsubscribes and suppresses
    the address for the tenant; GET shows a page with a button. Runs until SIGTERM / Ctrl-C."""
    from penguinctl.cli.commands_serve import run_serve

    return run_serve(ctx.obj, listen, with_worker=False, scheduler=False, wake=1.0)
