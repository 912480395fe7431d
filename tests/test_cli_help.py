"""The CLI explains itself (issue 17, "The CLI explains itself"): a walk over every command.

Every option and argument has a description and a metavar a person reads (FILE, DOMAIN, N; never a
Python type such as <str> or <list[Path]>); usage lines show no braces; every command has a help
text and lists the global options; every command group ends with 2-4 examples, and each example is
a command line that parses. A failure names the command and the parameter.
"""

from __future__ import annotations

import re

import pytest
from clitools import cli_tree, parse_command_line, walk_commands

# A metavar as shown: upper-case words, digits and punctuation (FILE, HOST[:PORT], KIND/NAME,
# YYYY-MM, N, FILE.CSV...), never lower case (a Python type name) or braces.
METAVAR = re.compile(r"^[A-Z0-9_.:/|=\[\]\-]+(\.\.\.)?$")
EXAMPLE = re.compile(r"^Examples:\s*$", re.M)


@pytest.fixture(scope="module")
def tree():
    return cli_tree()


def _problems(tree) -> list[str]:
    problems: list[str] = []
    for path, command, ctx in walk_commands(tree):
        where = " ".join(path)
        if not (command.help or "").strip():
            problems.append(f"{where}: no help text (give the function a docstring)")
        usage = command.get_usage(ctx)
        if re.search(r"[{}<>]", usage):
            problems.append(f"{where}: usage line {usage!r} shows braces or a type")
        help_text = command.get_help(ctx)
        if len(path) > 1 and "--state URL" not in help_text:
            problems.append(f"{where}: help does not list the global options")
        for param in command.params:
            if getattr(param, "hidden", False) or param.name == "help":
                continue
            kind = param.param_type_name
            label = f"{where}: {kind} {param.opts[0] if kind == 'option' else param.name}"
            if not (getattr(param, "help", None) or "").strip():
                problems.append(f"{label} has no help text (help=...)")
            elif not re.match(r"[A-Z0-9`'\"(-]", param.help.strip()):
                problems.append(f"{label}: help should start with a capital: {param.help!r}")
            record = param.get_help_record(ctx)
            if record is None:
                continue
            shown = record[0]
            if kind == "option":
                if getattr(param, "is_flag", False) or getattr(param, "count", False):
                    continue
                last = shown.split(", ")[-1]  # "-o, --output FORMAT" -> "--output FORMAT"
                metavar = last.split(" ", 1)[1] if " " in last else ""
            else:
                metavar = shown
            if not METAVAR.match(metavar):
                suggestion = (param.name or "value").upper()
                problems.append(
                    f"{label} shows {metavar!r}: give it metavar={suggestion!r} (or another "
                    "upper-case word a person reads, e.g. FILE, DOMAIN, N)"
                )
        if hasattr(command, "commands"):
            found = re.split(EXAMPLE, command.epilog or "")
            lines = [
                ln.strip()
                for ln in (found[1] if len(found) > 1 else "").splitlines()
                if ln.strip().startswith("penguinctl")
            ]
            if not 2 <= len(lines) <= 4:
                problems.append(
                    f"{where}: command group has {len(lines)} examples; end its help with 2-4 "
                    "(Typer(epilog=examples(...)) from penguinctl.cli.conventions)"
                )
            for line in lines:
                error = parse_command_line(tree, line)
                if error:
                    problems.append(f"{where}: example {line!r} does not parse: {error}")
    return problems


def test_every_command_explains_itself(tree):
    problems = _problems(tree)
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)


def test_the_walk_catches_what_it_checks():
    """The checks above can fail: a command with an undocumented, type-named option and a group
    without examples is reported by name."""
    import typer

    from penguinctl.cli.conventions import finish

    app = typer.Typer(rich_markup_mode=None)
    sub = typer.Typer(rich_markup_mode=None, help="A group.")

    @sub.command("bad")
    def bad(limit: int = typer.Option(3, "--limit"), name: str = typer.Argument(...)) -> None:
        """Bad."""

    @sub.command("good")
    def good() -> None:
        """Good."""

    @app.callback()
    def root() -> None:
        """Root."""

    app.add_typer(sub, name="grp")
    tree = finish(typer.main.get_command(app), root=True)
    problems = "\n".join(_problems(tree))
    assert "grp bad: option --limit has no help text" in problems
    assert "grp bad: option --limit shows '<int>': give it metavar='LIMIT'" in problems
    assert "grp bad: argument name has no help text" in problems
    assert "grp: command group has 0 examples" in problems


def test_positional_arguments_read_as_words(tree):
    from clitools import run_help

    usage = run_help("get").splitlines()[0]
    assert usage == "Usage: penguinctl get [OPTIONS] KIND [NAME]"
    assert run_help("dns", "verify").splitlines()[0].endswith("[OPTIONS] [DOMAIN]...")


def test_help_lists_every_kind_get_and_describe_accept():
    from clitools import run_help

    from penguinctl.cli.commands_get import KINDS

    for command in ("get", "describe"):
        text = " ".join(run_help(command).split())
        for kind in KINDS:
            assert kind in text, (command, kind)


def test_top_level_commands_are_built_on_first_use():
    """`penguinctl --help` lists commands without building them (Typer's signature inspection
    is most of the start-up); running one builds that one only."""
    from penguinctl.cli import build_command

    root = build_command()
    ctx = root.context_class(root, info_name="penguinctl")
    text = root.get_help(ctx)
    assert "status " in text and "completion " in text
    assert root.commands.built() == []
    get = root.get_command(ctx, "get")
    assert root.commands.built() == ["get"]
    assert get.get_usage(ctx).endswith("KIND [NAME]")
    assert "--state URL" in get.get_help(get.context_class(get, info_name="get", parent=ctx))
