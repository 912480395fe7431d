"""The credential-rotation contract behind ``penguinctl secrets rotate``.

A ``Rotation`` subclass owns one kind of credential (``ssh``, ``mailbox``, ``dkim``, ...):

- ``candidates()`` lists every target it manages, due or not, as ``DueItem`` rows (kind, target,
  tenant, secrets path, time of the last rotation, rotation period);
- ``rotate(item)`` rotates one target. It must be idempotent and resumable after a crash at any
  step (re-running it finishes what was started, never rotates twice), audit every step through
  ``ctx.audit`` (names, paths and versions, never a value) and return a one-line summary. It
  raises a ``PenguinError`` (one line, no value) when the target could not be rotated; the caller
  records the failure and goes on with the next target.

Subclasses are found through ``penguinctl.secret_rotation.registry``. They get everything they
need from the ``RotationContext``: the state store, the configured secrets backend, the actor,
the environment and a clock (aware UTC; injectable, so tests never sleep).

The time of the last rotation is best written into the secret itself as the ``rotated_at`` field
(ISO 8601, UTC); ``last_rotated`` reads it, falling back on the backend's metadata (``updated_at``
of the latest version).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from penguinctl import clock

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from penguinctl.providers.secrets.base import SecretsBackend

ROTATED_AT = "rotated_at"  # the secret field holding the time of its last rotation


def parse_time(text: str | None) -> datetime | None:
    """An aware UTC datetime from ISO 8601 / RFC 3339 text (Vault's nanoseconds included);
    None for empty or unparseable text."""
    if not text:
        return None
    text = text.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    head, dot, rest = text.partition(".")
    if dot:  # more than microseconds (Vault writes nanoseconds): cut to six digits
        digits = len(rest) - len(rest.lstrip("0123456789"))
        rest = rest[: min(digits, 6)] + rest[digits:]
        text = f"{head}.{rest}"
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def last_rotated(secrets: SecretsBackend, path: str) -> datetime | None:
    """When the secret at ``path`` was last rotated: its ``rotated_at`` field, else the time its
    latest version was written; None when it does not exist (never rotated)."""
    fields = secrets.get(path)
    if fields is None:
        return None
    stamp = fields.get(ROTATED_AT)
    if stamp is not None:
        found = parse_time(stamp.reveal())
        if found is not None:
            return found
    meta = secrets.meta(path)
    return parse_time(meta.updated_at) if meta is not None else None


def now_utc() -> datetime:
    return clock.now()


@dataclass(frozen=True)
class RotationContext:
    engine: Engine  # the state store (SQLAlchemy engine, migrated)
    secrets: SecretsBackend  # the configured backend
    actor: str
    env: Mapping[str, str]
    now: Callable[[], datetime] = now_utc  # aware UTC; injectable clock for tests

    def audit(
        self,
        *,
        tenant: str,
        action: str,
        resource: str,
        result: str = "ok",
        details: dict[str, Any] | None = None,
        rotated: tuple[str, str, str] | None = None,
    ) -> None:
        """Append one audit event in its own transaction (never a secret value in ``details``);
        ``rotated`` = (kind, target, path) also emits ``secret.rotated`` in it (the step that
        puts the new credential in use)."""
        from penguinctl.state import audit
        from penguinctl.state.db import session_scope

        with session_scope(self.engine) as session:
            if rotated is not None:
                from penguinctl.events.outbox import emit

                kind, target, path = rotated
                emit(
                    session,
                    "secret.rotated",
                    tenant=tenant,
                    subject=resource,
                    payload={"kind": kind, "target": target, "path": path},
                )
            audit.record(
                session,
                actor=self.actor,
                tenant=tenant,
                action=action,
                resource=resource,
                result=result,
                details=details or {},
            )


@dataclass(frozen=True)
class DueItem:
    kind: str  # "ssh" | "mailbox" | "dkim" | ...
    target: str  # server name, mailbox address, domain
    tenant: str
    path: str  # secrets path, e.g. servers/mx1/ssh
    last_rotated: datetime | None
    period: timedelta

    @property
    def due_at(self) -> datetime | None:
        """``last_rotated + period``; None when never rotated (due now)."""
        if self.last_rotated is None:
            return None
        return self.last_rotated + self.period

    def is_due(self, now: datetime) -> bool:
        due = self.due_at
        return due is None or due <= now

    def to_json(self, now: datetime) -> dict[str, Any]:
        due = self.due_at
        return {
            "kind": self.kind,
            "target": self.target,
            "tenant": self.tenant,
            "path": self.path,
            "last_rotated": self.last_rotated.isoformat() if self.last_rotated else None,
            "period_days": round(self.period.total_seconds() / 86400, 3),
            "due_at": due.isoformat() if due else None,
            "due": self.is_due(now),
        }


class Rotation(ABC):
    """One kind of credential rotation. See the module docstring for the contract."""

    kind: ClassVar[str]
    default_period: ClassVar[timedelta]

    def __init__(self, ctx: RotationContext) -> None:
        self.ctx = ctx

    @abstractmethod
    def candidates(self) -> list[DueItem]:
        """Every target this rotation manages, due or not."""

    @abstractmethod
    def rotate(self, item: DueItem) -> str:
        """Rotate one target; idempotent and resumable after a crash at any step; audit every
        step through ctx.audit (never a value); return a one-line summary."""


__all__ = [
    "ROTATED_AT",
    "DueItem",
    "Rotation",
    "RotationContext",
    "last_rotated",
    "now_utc",
    "parse_time",
]
