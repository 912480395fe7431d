"""A command group with a default sub-command: ``penguinctl check mx1`` runs ``check run mx1``
while ``penguinctl check history`` reaches its sibling (the click-default-group pattern)."""

from __future__ import annotations

from typing import Any

from typer.core import TyperGroup


class DefaultGroup(TyperGroup):
    """Anything that is not a sub-command name (or help) goes to ``default_command``."""

    default_command = "run"

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)
