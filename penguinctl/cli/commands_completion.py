"""`completion install | show`: shell completion of commands, options and kinds, through Typer's
completion support (scripts for bash, zsh, fish and PowerShell; the shell calls `penguinctl` back
with ``_PENGUINCTL_COMPLETE`` set)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from penguinctl.cli.conventions import examples, output_formats

SHELLS = ("bash", "zsh", "fish", "powershell")
PROG = "penguinctl"
COMPLETE_VAR = "_PENGUINCTL_COMPLETE"

completion_app = typer.Typer(
    help="Shell completion for bash, zsh, fish and PowerShell.",
    no_args_is_help=True,
    rich_markup_mode=None,
    epilog=examples(
        "penguinctl completion install            # the shell you are running",
        "penguinctl completion install --shell zsh",
        "penguinctl completion show bash > /etc/bash_completion.d/penguinctl",
    ),
)


def register(app: typer.Typer) -> None:
    app.add_typer(completion_app, name="completion")


def _shell(shell: str | None) -> str:
    from penguinctl.errors import UsageError

    if shell is None:
        try:
            import shellingham

            shell = shellingham.detect_shell()[0]
        except Exception:  # no parent shell found (a pipeline, cron): fall back to $SHELL
            shell = os.path.basename(os.environ.get("SHELL", ""))
    shell = "powershell" if shell == "pwsh" else (shell or "").lower()
    if shell not in SHELLS:
        raise UsageError(
            f"no completion for shell {shell or '(unknown)'!r}",
            hint=f"pass --shell {'|'.join(SHELLS)}",
        )
    return shell


@completion_app.command("install")
@output_formats("text")
def install(
    shell: Annotated[
        str | None,
        typer.Option(
            "--shell",
            metavar="SHELL",
            help="Bash, zsh, fish or powershell (default: the shell this runs in).",
        ),
    ] = None,
) -> None:
    """Install completion for your shell: the script goes to your home directory and your shell's
    start-up file sources it (once; running this again changes nothing). Open a new shell after."""
    from typer.completion import install as install_script

    name, path = install_script(shell=_shell(shell), prog_name=PROG, complete_var=COMPLETE_VAR)
    print(f"{name} completion installed in {path}; it works in new shells.")


@completion_app.command("show")
@output_formats("text")
def show(
    shell: Annotated[
        str,
        typer.Argument(metavar="SHELL", help="Bash, zsh, fish or powershell."),
    ],
) -> None:
    """Print the completion script, to install it by hand (e.g. system-wide)."""
    from typer.completion import get_completion_script

    print(get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=_shell(shell)))
