"""The penguinctl command line: root app, global options and the entry point.

Command modules import only typer and the standard library at the top; anything heavy is
imported inside the command body so that `penguinctl --help` stays fast.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer

from penguinctl import __version__

GLOBAL_FLAGS = {"--yes", "-y", "--debug"}
GLOBAL_VALUED = {"--output", "-o", "--state"}
# Commands whose own option shares a global option's name: after the command word it is theirs
# (`penguinctl recover --state FILE` names a state backup; `--state URL` before it, the store).
LOCAL_AFTER = {"recover": {"--state"}}


def hoist_global_options(argv: list[str]) -> list[str]:
    """Let global options appear anywhere (`penguinctl get domains -o json`).

    They are moved in front of the first sub-command; everything after `--` is left alone.
    """
    front: list[str] = []
    rest: list[str] = []
    local: set[str] = set()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        name = arg.split("=", 1)[0]
        if not rest and arg in LOCAL_AFTER:
            local = LOCAL_AFTER[arg]
        if name in local:
            rest.append(arg)
            if "=" not in arg and i + 1 < len(argv):
                rest.append(argv[i + 1])
                i += 1
        elif arg in GLOBAL_FLAGS or (
            name in GLOBAL_VALUED and "=" in arg and name.startswith("--")
        ):
            front.append(arg)
        elif arg in GLOBAL_VALUED and i + 1 < len(argv):
            front.extend(argv[i : i + 2])
            i += 1
        else:
            rest.append(arg)
        i += 1
    return front + rest


def _version(value: bool) -> None:
    if value:
        print(f"penguinctl {__version__}")
        raise typer.Exit()


def build_command():
    """The click command tree `penguinctl` runs: the Typer app's commands, each built (and the
    CLI conventions applied) on first use (``penguinctl.cli.tree``)."""
    from functools import partial

    from penguinctl.cli.conventions import finish
    from penguinctl.cli.tree import build_command as lazy_tree

    return lazy_tree(build_app(), partial(finish, root=True), finish)


def build_app() -> typer.Typer:
    from penguinctl.cli import (
        commands_alerts,
        commands_apikeys,
        commands_apply,
        commands_backup,
        commands_billing,
        commands_campaign,
        commands_check,
        commands_completion,
        commands_dkim,
        commands_dns,
        commands_domains,
        commands_events,
        commands_get,
        commands_jobs,
        commands_leads,
        commands_recovery,
        commands_secrets,
        commands_serve,
        commands_server,
        commands_state,
        commands_status,
        commands_webhooks,
        commands_worker,
    )
    from penguinctl.cli.conventions import FORMATS, examples
    from penguinctl.cli.tree import LazyRootGroup

    app = typer.Typer(
        cls=LazyRootGroup,
        name="penguinctl",
        help="Declarative control plane for cold-email infrastructure.",
        epilog=examples(
            "penguinctl init --project              # state in ./.penguinctl",
            "penguinctl apply -f specs/ --yes",
            "penguinctl get domains -o json",
            "penguinctl status                      # what is in effect, and why",
        ),
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,  # plain help: the rich formatter costs ~170 ms of imports
        add_completion=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @app.callback()
    def root(
        ctx: typer.Context,
        output: Annotated[
            str,
            typer.Option(
                "--output",
                "-o",
                metavar="FORMAT",
                help="Output format: text, wide (no wrapping on a terminal), json, yaml, or csv "
                "for lists (invoices show: html). A command refuses a format it does not print.",
            ),
        ] = "text",
        state: Annotated[
            str | None,
            typer.Option(
                "--state",
                metavar="URL",
                help="State store URL: sqlite:///PATH or postgresql://USER@HOST/DB "
                "(env PENGUINCTL_STATE; default: state.db in the penguinctl home).",
            ),
        ] = None,
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Answer yes to prompts.")] = False,
        debug: Annotated[
            bool, typer.Option("--debug", help="Print tracebacks instead of a debug log path.")
        ] = False,
        version: Annotated[
            bool,
            typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
        ] = False,
    ) -> None:
        """Global options may be given before or after the sub-command."""
        from penguinctl.cli.context import AppContext
        from penguinctl.errors import UsageError
        from penguinctl.settings import load_settings

        if output not in FORMATS:
            raise UsageError(f"--output {output!r}: use {', '.join(FORMATS)}")
        from penguinctl import clock

        ctx.obj = AppContext(
            settings_loader=lambda: load_settings(state_url=state),
            output=output,
            yes=yes,
            debug=debug,
        )
        previous = clock.install(ctx.obj.clock)  # the one clock, for code deep inside too
        ctx.call_on_close(ctx.obj.close)
        ctx.call_on_close(lambda: clock.install(previous))

    commands_apply.register(app)
    commands_get.register(app)
    commands_status.register(app)
    commands_state.register(app)
    commands_dns.register(app)
    commands_dkim.register(app)
    commands_domains.register(app)
    commands_server.register(app)
    commands_secrets.register(app)
    commands_billing.register(app)
    commands_backup.register(app)
    commands_check.register(app)
    commands_worker.register(app)
    commands_campaign.register(app)
    commands_leads.register(app)
    commands_events.register(app)
    commands_webhooks.register(app)
    commands_alerts.register(app)
    commands_completion.register(app)
    commands_serve.register(app)
    commands_jobs.register(app)
    commands_recovery.register(app)
    commands_apikeys.register(app)
    return app


def _did_you_mean_file(exc: BaseException) -> None:
    """`penguinctl apply specs/` -> "... Did you mean -f specs/?" when the command takes -f."""
    message = getattr(exc, "message", "")
    ctx = getattr(exc, "ctx", None)
    if ctx is None or not message.startswith("Got unexpected extra argument"):
        return
    takes_file = any("-f" in getattr(p, "opts", ()) for p in ctx.command.params)
    extra = message[message.rfind("(") + 1 : message.rfind(")")].split()
    if takes_file and extra:
        exc.message = f"{message}. Did you mean -f {' -f '.join(extra)}?"


def main(argv: list[str] | None = None, command: Any = None) -> None:
    """The program: run one command and exit with its code. ``argv`` None (the console script,
    ``python -m penguinctl``) also skips the interpreter's collections at exit: after a command
    that loaded the state store and SSH (~90,000 tracked objects) they cost 0.1-0.3 s on a
    quiet machine and several times that on a busy one, for memory the process is returning
    anyway. ``gc.freeze`` leaves atexit handlers and reference-counted cleanup as they are.

    The program also runs the cyclic collector less often (every 100,000 net allocations of
    container objects instead of 700): a command allocates hundreds of thousands of objects that
    live until it ends (imports, the spec, recorded and desired state), and with the default
    threshold the collector re-scanned them over and over: 0.1 s of a 200-domain `apply`, 1.8 s
    of a 1,000-domain one. Reference counting frees everything else as before.

    Pydantic's plugin discovery (an entry-point scan of every installed distribution on the
    first model) is skipped unless ``PYDANTIC_DISABLE_PLUGINS`` is set otherwise.

    ``command``: a command tree from :func:`build_command` made before the command line was
    known (a warm child's, ``penguinctl.warm``); built here when None."""
    if argv is None:
        import gc

        gc.set_threshold(100_000, 50, 100)
        os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    try:
        _main(argv, command)
    finally:
        if argv is None:
            import gc

            gc.freeze()


def _main(argv: list[str] | None, command: Any = None) -> None:
    args = hoist_global_options(list(sys.argv[1:] if argv is None else argv))
    debug = "--debug" in args
    from penguinctl.masking import install

    install()
    if os.environ.get("_PENGUINCTL_COMPLETE"):  # a shell asks for completions (`completion`)
        from typer.completion import completion_init

        completion_init()
    try:
        if command is None:
            command = build_command()
        rv = command.main(args=args, prog_name="penguinctl", standalone_mode=False)
    except SystemExit:
        raise
    except BaseException as exc:  # the one error printer
        if isinstance(exc, typer.Exit):
            sys.exit(exc.exit_code)
        if isinstance(exc, typer.Abort):
            print("error: aborted", file=sys.stderr)
            sys.exit(1)
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # typer's (click's) usage errors
            _did_you_mean_file(exc)
            exc.show()
            sys.exit(exc.exit_code)
        from penguinctl.cli.errors import handle

        log_dir = None
        try:
            from penguinctl.settings import load_settings

            log_dir = load_settings().log_dir
        except Exception:
            pass
        from penguinctl.masking import mask

        sys.exit(handle(exc, debug=debug, log_dir=log_dir, mask=mask))
    sys.exit(rv if isinstance(rv, int) else 0)
