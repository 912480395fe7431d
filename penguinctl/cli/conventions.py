"""The CLI's conventions, applied once to the whole command tree after it is built.

- Every sub-command's help ends with the global options (they work everywhere).
- Positional arguments read as ``KIND``/``[NAME]``/``DOMAIN...`` (upper case, never braced, no
  Python type) in usage lines and help.
- ``-o/--output``: a command prints ``text``, ``wide``, ``json`` and ``yaml`` unless it says
  otherwise with :func:`output_formats` (``csv`` for row-shaped results, ``html``, or ``text``
  only); any other format is a usage error before the command runs.
- Command groups end their help with :func:`examples` (tests/test_cli_help.py checks all of this).

Only the standard library is imported here at module level: command modules import it at their
top and `penguinctl --help` must stay fast.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

FORMATS = ("text", "wide", "json", "yaml", "csv", "html")
DEFAULT_FORMATS = ("text", "wide", "json", "yaml")
ROWS = (*DEFAULT_FORMATS, "csv")  # results that are a list of rows
_ATTR = "__penguinctl_output_formats__"

GLOBAL_OPTIONS = (
    "Global options (before or after the command): -o, --output "
    "text|wide|json|yaml|csv; --state URL; -y, --yes; --debug. See penguinctl --help."
)


def output_formats(*formats: str) -> Callable[[F], F]:
    """Declare the ``-o`` formats a command prints (default: text, wide, json, yaml)."""
    unknown = set(formats) - set(FORMATS)
    if unknown or not formats:
        raise ValueError(f"output formats {sorted(unknown)}: use {', '.join(FORMATS)}")

    def mark(fn: F) -> F:
        setattr(fn, _ATTR, tuple(formats))
        return fn

    return mark


def formats_of(callback: Callable[..., Any] | None) -> tuple[str, ...]:
    return getattr(callback, _ATTR, DEFAULT_FORMATS) if callback is not None else DEFAULT_FORMATS


def examples(*lines: str) -> str:
    """An epilog of example command lines (click keeps ``\\b`` paragraphs as written)."""
    return "Examples:\n\n\b\n" + "\n".join(f"  {line}" for line in lines)


def finish(command: Any, *, root: bool = False) -> Any:
    """Apply the conventions to ``command`` (a click command or group built by typer) and every
    command below it. ``root``: the top of the tree (no global-options epilog of its own). A
    group whose commands are built lazily (``penguinctl.cli.tree``) finishes each when built."""
    argument_class = _plain_argument_class()
    stack = [(command, root)]
    while stack:
        cmd, is_root = stack.pop()
        if not is_root:
            cmd.epilog = f"{cmd.epilog}\n\n{GLOBAL_OPTIONS}" if cmd.epilog else GLOBAL_OPTIONS
        for param in cmd.params:
            if getattr(param, "param_type_name", "") == "argument" and type(param) is not (
                argument_class
            ):
                param.__class__ = argument_class  # a subclass that only changes how it reads
        subcommands = getattr(cmd, "commands", None)
        if subcommands is not None:
            if not hasattr(subcommands, "stub"):  # built lazily: finished when built
                stack.extend((sub, False) for sub in subcommands.values())
        elif cmd.callback is not None:
            cmd.callback = _checked(cmd.callback)
    return command


def _checked(callback: Callable[..., Any]) -> Callable[..., Any]:
    """``callback``, refusing an ``-o`` format the command does not print before it runs."""
    allowed = formats_of(callback)

    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        ctx = _current_context()
        output = getattr(ctx.find_root().obj, "output", "text")
        if output not in allowed:
            from penguinctl.errors import UsageError

            choices = ", ".join(allowed[:-1]) + f" or {allowed[-1]}" if len(allowed) > 1 else ""
            raise UsageError(
                f"-o {output}: `{ctx.command_path}` does not print {output}",
                hint=f"use -o {choices or allowed[0]}",
            )
        return callback(*args, **kwargs)

    return run


def _current_context() -> Any:
    try:  # typer >= 0.22 vendors click
        from typer._click.globals import get_current_context
    except ImportError:  # pragma: no cover - older typer depends on click
        from click import get_current_context
    return get_current_context()


@functools.cache
def _plain_argument_class() -> type:
    from typer.core import TyperArgument

    class PlainArgument(TyperArgument):
        """A positional argument shown as ``NAME`` (required), ``[NAME]`` (optional) and
        ``NAME...`` (repeatable): upper case, without braces or a Python type."""

        @property
        def display_name_raw(self) -> str:
            return self.metavar or (self.name or "").upper()

        def _usage_display_name(self) -> str:
            name = self.display_name_raw
            if not self.required:
                name = f"[{name}]"
            return name + ("..." if self.nargs != 1 else "")

        def _rich_display_name(self) -> str:
            return self.display_name_raw + ("..." if self.nargs != 1 else "")

        def display_type_rich(self, ctx: Any) -> str | None:
            return None

    return PlainArgument
