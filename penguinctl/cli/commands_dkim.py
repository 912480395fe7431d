"""`dkim status` and `dkim rotate DOMAIN... / --all-due`."""

from __future__ import annotations

import typer

dkim_app = typer.Typer(
    help="DKIM key ages, phases and rotation.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def register(app: typer.Typer) -> None:
    app.add_typer(dkim_app, name="dkim")
