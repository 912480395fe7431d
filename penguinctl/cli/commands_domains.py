"""`domains import FILE.csv`: bulk onboarding of client domains."""

from __future__ import annotations

import typer

domains_app = typer.Typer(
    help="Bulk domain onboarding.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def register(app: typer.Typer) -> None:
    app.add_typer(domains_app, name="domains")
