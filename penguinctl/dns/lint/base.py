"""What every record check shares: ``LintProblem`` (level, code, message), ``RecordSyntaxError``,
the ``tag=value`` list syntax of DMARC and DKIM records, and message helpers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

Level = Literal["error", "warning"]
LookupFn = Callable[[str], Sequence[str]]


# -- problems ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LintProblem:
    """One finding about a record: ``level`` is ``error`` or ``warning``; ``code`` a stable slug."""

    level: Level
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.message} [{self.code}]"


class RecordSyntaxError(ValueError):
    """What the ``parse_*`` functions raise: the record is not valid. ``problems`` holds every
    error found (``code`` and the message are those of the first)."""

    def __init__(self, problems: Sequence[LintProblem]) -> None:
        self.problems = tuple(problems)
        self.code = self.problems[0].code if self.problems else "syntax"
        super().__init__(self.problems[0].message if self.problems else "invalid record")


def lint_error(code: str, message: str) -> LintProblem:
    return LintProblem("error", code, message)


def lint_warning(code: str, message: str) -> LintProblem:
    return LintProblem("warning", code, message)


def clip(text: str, limit: int = 48) -> str:
    """``text`` quoted for a one-line message (control characters escaped, long text cut)."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def short_key(key: str) -> str:
    return key if len(key) <= 16 else key[:12] + "..." + key[-4:]


def dedupe(problems: Sequence[LintProblem]) -> list[LintProblem]:
    return list(dict.fromkeys(problems))


# -- tag=value lists (DMARC, DKIM) ---------------------------------------------------------------
_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def tag_list(text: str, prefix: str) -> tuple[list[tuple[str, str]], list[LintProblem]]:
    """``name=value`` pairs separated by ``;`` (a trailing ``;`` is allowed); names and values
    stripped of surrounding whitespace."""
    tags: list[tuple[str, str]] = []
    problems: list[LintProblem] = []
    if not text.strip():
        return tags, problems
    parts = text.split(";")
    if len(parts) > 1 and not parts[-1].strip():
        parts.pop()
    for part in parts:
        if not part.strip():
            problems.append(
                lint_warning(f"{prefix}-empty-tag", "an empty tag (';;') in the record")
            )
            continue
        name, eq, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if not eq or not _TAG_NAME.fullmatch(name):
            msg = f"{clip(part.strip())} is not a tag=value pair"
            problems.append(lint_error(f"{prefix}-bad-tag", msg))
            continue
        tags.append((name, value))
    return tags, problems
