"""`server rebuild NAME`: replace a lost server from its verified backups (see
``penguinctl.recovery.rebuild``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def _probes(items: list[str] | None) -> dict[str, tuple[str | None, int]]:
    from penguinctl.errors import UsageError

    out: dict[str, tuple[str | None, int]] = {}
    for item in items or []:
        name, sep, where = item.partition("=")
        host, _, port = where.rpartition(":")
        if not sep or name not in ("smtp", "imap") or not port.isdecimal():
            raise UsageError(f"--probe {item!r}: use smtp=[HOST:]PORT or imap=[HOST:]PORT")
        out[name] = (host or None, int(port))
    return out


def _specs(files: list[Path] | None):
    if not files:
        return None
    from penguinctl.spec import load_specs

    return load_specs(files)


def rebuild(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="SERVER", help="The server to replace.")],
    onto: Annotated[
        str | None,
        typer.Option("--onto", metavar="HOST[:PORT]", help="The static host that replaces it."),
    ] = None,
    ssh_user: Annotated[
        str | None, typer.Option("--ssh-user", metavar="USER", help="Login on the new host.")
    ] = None,
    snapshot: Annotated[
        str | None,
        typer.Option("--snapshot", metavar="ID", help="Restore this verified snapshot."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Terminate the old server when it is a VPS.")
    ] = False,
    probe: Annotated[
        list[str] | None,
        typer.Option(
            "--probe",
            metavar="CHECK=[HOST:]PORT",
            help="Where the mail checks connect (smtp=25, imap=993 on the new host by default).",
        ),
    ] = None,
    imap_plain: Annotated[
        bool, typer.Option("--imap-plain", help="IMAP check without TLS (test servers only).")
    ] = False,
    files: Annotated[
        list[Path] | None,
        typer.Option(
            "--file",
            "-f",
            metavar="FILE",
            help="The tenant's spec: a Hostwinds replacement is ordered with its plan.",
        ),
    ] = None,
    allow_rebuild: Annotated[
        bool,
        typer.Option(
            "--allow-rebuild",
            help="Allow a replacement with another Hostwinds plan than the lost server's.",
        ),
    ] = False,
) -> int:
    """Replace a lost server: take the new host, bootstrap it, install MailU, restore the
    newest verified backup, move DNS and the recorded address, check that mail flows, then
    retire the old server. Resumable: re-run the same command after any failure or crash."""
    from penguinctl.errors import UsageError
    from penguinctl.recovery.rebuild import Options, Rebuild

    app = ctx.obj
    if not app.yes and (
        app.machine
        or not typer.confirm(
            f"Replace server {name} (DNS moves to the new host)?", default=False, err=True
        )
    ):
        raise UsageError("rebuild not confirmed", hint="pass --yes")
    options = Options(
        onto=onto,
        ssh_user=ssh_user,
        snapshot=snapshot,
        force=force,
        probes=_probes(probe),
        imap_tls=not imap_plain,
        specs=_specs(files),
        allow_rebuild=allow_rebuild,
    )

    def say(text: str) -> None:
        if not app.machine:
            app.err.print(text, markup=False, highlight=False)

    result = Rebuild(app, name, options, say).run()

    def text(c) -> None:
        c.print(
            f"Server {name} rebuilt onto {result['replacement'].get('address')} "
            f"from snapshot {(result['snapshot'] or '')[:8]}."
        )
        c.print(f"Recovery time: {result['recovery_seconds']:.1f} s (start to verified mail).")
        note = result["steps"].get("cutover", {}).get("spec_change")
        if note:
            c.print(f"[yellow]Now {note}[/] (the recorded spec already has it).")

    app.emit(result, text)
    return 0
