"""The provider contract.

A provider instance owns the side effects for the resources whose ``Resource.provider`` names it.
The engine plans, orders and records; a provider only reads live state and applies changes.

Subclasses must:
- set ``name`` (the instance id, e.g. ``dns:primary``) through ``__init__``;
- implement ``apply_batch(changes)``: perform every change in the list and return one
  ``ChangeResult`` per change, in the same order. Each change must be idempotent: applying a
  create whose effect already exists, or a delete whose target is gone, succeeds quietly. This is
  what lets a re-run after a crash converge.

Subclasses may:
- override ``read(keys)`` to return the live data of those resources it can see (drift detection);
  the default returns ``None`` ("cannot read live state, trust the state store");
- set ``max_parallel``: how many of its batches may run at once (the engine never runs more,
  whatever ``apply --parallel`` says); ``None`` means no limit of its own;
- set ``isolate_failures`` when a batch groups unrelated changes only for speed: a failed batch
  is then retried change by change, so one bad change fails alone;
- override ``batch_key(change)`` so changes that must be applied together (all records of one zone)
  share a batch; the engine commits a batch's rows and audit events in one transaction.

Raise ``ProviderError`` (with the resource and what to try) for failures; never put secret values
in messages.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from typing import Any

from penguinctl.plan.changes import Change, ChangeResult
from penguinctl.resources import ResourceKey


class Provider(ABC):
    max_parallel: int | None = None
    isolate_failures: bool = False

    def __init__(self, name: str) -> None:
        self.name = name

    def read(self, keys: Sequence[ResourceKey]) -> dict[ResourceKey, dict[str, Any]] | None:
        """Live data of ``keys`` that exist; missing keys are absent. None: not readable."""
        return None

    def batch_key(self, change: Change) -> Hashable:
        return change.key

    @abstractmethod
    def apply_batch(self, changes: Sequence[Change]) -> list[ChangeResult]:
        """Apply every change (idempotently) and report what to record for each."""


class RecordOnlyProvider(Provider):
    """For resources that exist only in the state store (tenants, external servers, domains)."""

    def batch_key(self, change: Change) -> Hashable:
        # No side effects: record a whole kind of a tenant in one transaction.
        return (change.key.kind, change.key.tenant)

    def apply_batch(self, changes: Sequence[Change]) -> list[ChangeResult]:
        return [ChangeResult(change=c, data=c.after) for c in changes]
