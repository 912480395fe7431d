"""Turning commands into the one string SSH carries, and the result of running one.

SSH sends a single command string that the remote login shell (``$SHELL -c``, assumed POSIX)
parses. A ``list[str]`` is joined with ``shlex.quote``, so each element arrives as exactly one
argument, byte for byte: **only lists are safe for user input.** A ``str`` is shell text and is
sent as is (pipes, ``&&``, globbing all work); never build one from untrusted values.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

Command = Sequence[str] | str


def build_command(command: Command, *, sudo: bool = False) -> str:
    """The wire form of ``command``. With ``sudo`` it runs through ``sudo -n --`` (never prompts:
    a password-protected sudo fails instead of hanging); shell text is then wrapped in
    ``sh -c`` so the whole text, not only its first word, runs as root.

    Raises ``ValueError`` for an empty command or an argument holding a NUL byte (it cannot be
    carried)."""
    if isinstance(command, str):
        if not command.strip():
            raise ValueError("empty command")
        if "\x00" in command:
            raise ValueError("a command cannot contain a NUL byte")
        return f"sudo -n -- sh -c {shlex.quote(command)}" if sudo else command
    argv = list(command)
    if not argv:
        raise ValueError("empty command")
    if any("\x00" in arg for arg in argv):
        raise ValueError("a command argument cannot contain a NUL byte")
    text = shlex.join(argv)
    return f"sudo -n -- {text}" if sudo else text


def program_name(command: Command) -> str:
    """What may be logged about a command: its program only (arguments may carry secrets)."""
    if isinstance(command, str):
        words = command.split(maxsplit=1)
        return words[0] if words else ""
    return command[0] if command else ""


@dataclass(frozen=True)
class Result:
    """What a remote command did. ``stdout``/``stderr`` are decoded as UTF-8 (invalid bytes
    replaced); ``duration`` is wall-clock seconds from sending the command to its exit."""

    rc: int
    stdout: str
    stderr: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.rc == 0
