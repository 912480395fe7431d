"""Error tree and exit codes.

Every error a user can cause or fix is a ``PenguinError``. Its message is one line saying what
failed, where (``file:line:col``, resource, host) and, in ``hint``, what to try next. The CLI maps
each class to a stable exit code (product contract, section 2) and prints it in one line; a
traceback appears only with ``--debug``.

Messages must never contain secret values: callers pass references and names, never values.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Self


class ExitCode(IntEnum):
    OK = 0
    UNEXPECTED = 1
    USAGE = 2
    SPEC_INVALID = 3
    UNSAFE_PLAN = 4
    PROVIDER = 5
    PARTIAL_APPLY = 6
    LOCK_OR_CHECKSUM = 7
    INTERRUPTED = 130


# With --detailed-exitcode, plan returns 0 for no changes and 2 for pending changes (Terraform).
PLAN_CHANGES_PENDING = 2


class PenguinError(Exception):
    """Base of all known errors. ``hint`` is the 'what to try' part of the message."""

    exit_code: ExitCode = ExitCode.UNEXPECTED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"

    def in_context(self, prefix: str) -> Self:
        """The same error (same class and fields) with ``prefix`` before its message, e.g. the
        provider and zone a client error happened in."""
        other = type(self).__new__(type(self))
        other.__dict__.update(self.__dict__)
        other.message = prefix + self.message
        other.args = (other.message,)
        return other


class UsageError(PenguinError):
    exit_code = ExitCode.USAGE


class ConfigError(PenguinError):
    """Bad configuration outside the spec (environment, settings, keystore key)."""

    exit_code = ExitCode.USAGE


@dataclass(frozen=True, order=True)
class Location:
    """Where something was written: ``file:line:col`` (1-based line and column)."""

    file: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if not self.line:
            return self.file
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class SpecIssue:
    location: Location
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class SpecError(PenguinError):
    """The spec is invalid. Carries *every* issue found, each with its location."""

    exit_code = ExitCode.SPEC_INVALID

    def __init__(self, issues: list[SpecIssue]) -> None:
        self.issues = sorted(issues, key=lambda i: (i.location, i.message))
        count = len(self.issues)
        first = str(self.issues[0]) if self.issues else "invalid spec"
        more = f" (and {count - 1} more)" if count > 1 else ""
        super().__init__(f"{first}{more}", hint="fix the spec and run `penguinctl validate` again")


class UnsafePlan(PenguinError):
    exit_code = ExitCode.UNSAFE_PLAN

    def __init__(self, reasons: list[str], *, hint: str | None = None) -> None:
        self.reasons = reasons
        super().__init__(
            "unsafe plan: " + "; ".join(reasons),
            hint=hint or "review the plan, then re-run with --force if it is intended",
        )


class ProviderError(PenguinError):
    """A provider or remote system failed (before any change was made, unless wrapped)."""

    exit_code = ExitCode.PROVIDER


class CheckFailed(PenguinError):
    """A live check found problems (``dns verify``, ``check``): remote state is not as expected."""

    exit_code = ExitCode.PROVIDER


class SecretError(PenguinError):
    exit_code = ExitCode.PROVIDER


class PartialApply(PenguinError):
    exit_code = ExitCode.PARTIAL_APPLY


class LockHeld(PenguinError):
    exit_code = ExitCode.LOCK_OR_CHECKSUM


class ChecksumMismatch(PenguinError):
    exit_code = ExitCode.LOCK_OR_CHECKSUM


class StateError(PenguinError):
    """The state store is unreachable, unmigrated or inconsistent."""

    exit_code = ExitCode.UNEXPECTED


class StateConfigError(StateError):
    """The state store URL is wrong (unparsable, unsupported, unreachable): a configuration
    mistake, so the usage exit code and no debug log."""

    exit_code = ExitCode.USAGE


class NoState(StateConfigError):
    """A read-only command found no state store (it never creates one)."""


class NotFound(PenguinError):
    exit_code = ExitCode.USAGE


class Unauthenticated(PenguinError):
    """An API request without a valid key (missing, unknown, wrong secret, expired, revoked)."""

    exit_code = ExitCode.USAGE


class Forbidden(PenguinError):
    """An API key whose role may not do the action (the permission matrix)."""

    exit_code = ExitCode.USAGE


class RateLimited(PenguinError):
    exit_code = ExitCode.PROVIDER

    def __init__(self, message: str, *, retry_after: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after
