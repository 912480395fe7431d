"""`recovery-key create / show` (the operator's key every secrets escrow is sealed to) and
`recover` (state store and secrets back on a fresh machine)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from penguinctl.cli.conventions import examples

recovery_key_app = typer.Typer(
    help="The recovery key: secrets escrows are sealed to it; `recover` needs it.",
    no_args_is_help=True,
    rich_markup_mode=None,
    epilog=examples(
        "penguinctl recovery-key create --out recovery-key.txt",
        "penguinctl recovery-key create --passphrase",
        "penguinctl recovery-key show",
    ),
)

PASSPHRASE_ENV = "PENGUINCTL_RECOVERY_PASSPHRASE"


def register(app: typer.Typer) -> None:
    app.add_typer(recovery_key_app, name="recovery-key")
    app.command("recover")(recover)


def _passphrase(app, *, confirm: bool) -> str:
    from penguinctl.errors import UsageError

    value = app.env.get(PASSPHRASE_ENV) if hasattr(app, "env") else os.environ.get(PASSPHRASE_ENV)
    if value:
        return value
    if app.machine or app.yes:
        raise UsageError(f"no passphrase: set {PASSPHRASE_ENV} (non-interactive run)")
    return typer.prompt(
        "Recovery passphrase", hide_input=True, confirmation_prompt=confirm, err=True
    )


@recovery_key_app.command("create")
def create(
    ctx: typer.Context,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="FILE",
            help="Write the private key here (0600; never over a file). Keep it offline.",
        ),
    ] = None,
    passphrase: Annotated[
        bool,
        typer.Option(
            "--passphrase",
            help=f"Seal the private key with a passphrase instead (prompted, or {PASSPHRASE_ENV}).",
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing recovery key.")
    ] = False,
) -> int:
    """Create the recovery key (age X25519). Its public half stays in the secrets backend and
    seals every secrets escrow; the private half (a file, or a passphrase) opens them."""
    from penguinctl.recovery import keys

    app = ctx.obj
    phrase = _passphrase(app, confirm=True) if passphrase else None
    key, shown = keys.create(app.secrets(), out=out, passphrase=phrase, replace=force)
    result = {"recipient": key.recipient, "mode": key.mode, "file": str(out) if out else None}
    if shown is not None:
        result["private_key"] = shown  # shown once: the operator asked for no file

    def text(c) -> None:
        c.print(f"Recovery key created; public key {key.recipient}.")
        if out:
            c.print(f"Private key written to {out}: copy it somewhere safe, off this machine.")
        elif phrase:
            c.print("The private key is sealed with your passphrase; remember the passphrase.")
        else:
            c.print(f"Private key (shown once, store it offline):\n{shown}")
        c.print("From now on `penguinctl backup state` also writes a secrets escrow.")

    app.emit(result, text)
    return 0


@recovery_key_app.command("show")
def show(ctx: typer.Context) -> int:
    """The recovery key's public half and mode (never the private half)."""
    from penguinctl.errors import NotFound
    from penguinctl.recovery import keys

    app = ctx.obj
    key = keys.load(app.secrets())
    if key is None:
        raise NotFound(
            "no recovery key", hint="penguinctl recovery-key create --out recovery-key.txt"
        )
    result = {"recipient": key.recipient, "mode": key.mode}
    app.emit(result, lambda c: c.print(f"{key.recipient} ({key.mode})"))
    return 0


def recover(
    ctx: typer.Context,
    state: Annotated[
        Path,
        typer.Option(
            "--state", "--state-file", metavar="FILE", help="A state backup (`backup state`)."
        ),
    ],
    secrets: Annotated[
        Path, typer.Option("--secrets", metavar="FILE", help="Its secrets escrow (.escrow).")
    ],
    recovery_key: Annotated[
        Path | None,
        typer.Option("--recovery-key", metavar="FILE", help="The recovery key file."),
    ] = None,
    passphrase: Annotated[
        bool,
        typer.Option("--passphrase", help=f"Open with the passphrase ({PASSPHRASE_ENV} or asked)."),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite a non-empty secrets backend or state.")
    ] = False,
) -> int:
    """Restore the state store and every secret on a fresh machine (a new PENGUINCTL_HOME):
    afterwards `plan` shows no changes and every secret reads back. Then `server rebuild` for
    each server that was lost."""
    from penguinctl.recovery.recover import recover as run

    app = ctx.obj
    phrase = _passphrase(app, confirm=False) if passphrase else None
    result = run(app, state, secrets, key_file=recovery_key, passphrase=phrase, force=force)

    def text(c) -> None:
        c.print(
            f"Recovered {result['secrets']} secrets ({result['escrow_backend']} escrow of "
            f"{result['written_at']}) and the state store ({result['resources']} resources)."
        )
        for w in result["warnings"]:
            c.print(f"[yellow]{w}[/]")
        c.print(
            "Next: penguinctl plan -f SPEC (expect no changes); "
            "penguinctl server rebuild SERVER for a lost server."
        )

    app.emit(result, text)
    return 0
