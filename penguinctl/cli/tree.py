"""The click command tree of the Typer app, each top-level command built on first use.

Typer turns every command function into a click command by inspecting its signature and
evaluating its annotations: ~0.5 ms per command, most of `penguinctl --help`'s time once there
are a hundred commands. Here the root group is built alone; a top-level command (`get`) or
group (`dns`, with all its sub-commands) is built, and the CLI conventions applied to it, the
first time the group looks it up. `penguinctl --help` lists the commands from their help texts
without building any; `penguinctl get ...` builds `get` only; the help walk, completion and
`--help` of a group build what they show.

Commands are registered on the Typer app as usual (``app.command()``, ``app.add_typer()``); a
group added with ``add_typer`` takes its name from ``add_typer`` and its help from its own
``typer.Typer(help=...)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup


def _value(x: Any) -> Any:
    """A Typer setting, or None when it was left at its default (a ``DefaultPlaceholder``)."""
    return None if type(x).__name__ == "DefaultPlaceholder" else x


class LazyCommands(MutableMapping):
    """``name -> click command``, each built (and finished) on first access."""

    def __init__(self, finish: Callable[[Any], Any]) -> None:
        self._factories: dict[str, Callable[[], Any]] = {}
        self._stubs: dict[str, TyperCommand] = {}
        self._built: dict[str, Any] = {}
        self._finish = finish

    def add(self, name: str, factory: Callable[[], Any], help_text: str, hidden: bool) -> None:
        self._factories[name] = factory
        self._stubs[name] = TyperCommand(name, help=help_text, hidden=hidden)

    def built(self) -> list[str]:
        """The names built so far."""
        return list(self._built)

    def stub(self, name: str) -> Any:
        """A command holding only the name and help text (for the root's command list)."""
        return self._built.get(name) or self._stubs[name]

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            if name not in self._factories:
                raise KeyError(name)
            command = self._factories[name]()
            command.name = name
            self._built[name] = self._finish(command)
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._built[name] = command
        self._factories.setdefault(name, lambda: command)
        self._stubs.setdefault(name, TyperCommand(name, help=command.help))

    def __delitem__(self, name: str) -> None:
        for d in (self._built, self._factories, self._stubs):
            d.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._factories)

    def __len__(self) -> int:
        return len(self._factories)


class LazyRootGroup(TyperGroup):
    """The root group: lists its commands from their help texts, builds them when used."""

    commands: Any

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands.keys())  # names only: nothing is built

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = []
        names = [n for n in self.list_commands(ctx) if not self.commands.stub(n).hidden]
        if not names:
            return
        limit = formatter.width - 6 - max(len(n) for n in names)
        for name in names:
            rows.append((name, self.commands.stub(name).get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def build_command(app: typer.Typer, finish_root: Callable[[Any], Any], finish: Callable) -> Any:
    """The root click group of ``app`` (made with ``cls=LazyRootGroup``)."""
    import typer.main

    groups, commands = app.registered_groups, app.registered_commands
    app.registered_groups, app.registered_commands = [], []
    try:
        root = typer.main.get_command(app)  # the root options and callback only
    finally:
        app.registered_groups, app.registered_commands = groups, commands
    if not isinstance(root, LazyRootGroup):
        raise TypeError("build the root Typer app with cls=LazyRootGroup")
    lazy = LazyCommands(finish)
    for info in commands:
        name = info.name or typer.main.get_command_name(info.callback.__name__)
        doc = _value(info.help) or inspect.getdoc(info.callback) or ""
        lazy.add(name, _single_command(app, info), doc, bool(_value(info.hidden)))
    for info in groups:
        sub = info.typer_instance
        name = _value(info.name) or _value(sub.info.name)
        if not name:
            raise TypeError(f"add_typer({sub!r}) needs a name= (commands are grouped by name)")
        doc = _value(info.help) or _value(sub.info.help) or ""
        lazy.add(name, _group(app, info, name), doc, bool(_value(info.hidden)))
    root.commands = lazy
    return finish_root(root)


def _holder(app: typer.Typer) -> typer.Typer:
    """An empty Typer app with the root's settings, to build one command or group through
    Typer's public ``get_command`` (so every Typer option of it is honoured)."""
    return typer.Typer(
        rich_markup_mode=app.rich_markup_mode,
        pretty_exceptions_enable=app.pretty_exceptions_enable,
        add_completion=False,
    )


def _single_command(app: typer.Typer, info: Any) -> Callable[[], Any]:
    def build() -> Any:
        import typer.main

        holder = _holder(app)
        holder.registered_commands.append(info)
        return typer.main.get_command(holder)  # one command: Typer returns it bare

    return build


def _group(app: typer.Typer, info: Any, name: str) -> Callable[[], Any]:
    def build() -> Any:
        import typer.main

        holder = _holder(app)
        holder.registered_groups.append(info)
        return typer.main.get_command(holder).commands[name]

    return build
