"""Change value objects: one create, update or delete of one resource."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from penguinctl.resources import KIND_ORDER, ResourceKey


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True)
class Change:
    action: Action
    key: ResourceKey
    provider: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    @property
    def data(self) -> dict[str, Any]:
        """Canonical, secret-free view used for output and the plan checksum."""
        return {
            "action": self.action.value,
            "resource": str(self.key),
            "provider": self.provider,
            "before": self.before,
            "after": self.after,
        }

    def sort_key(self) -> tuple:
        rank = KIND_ORDER.index(self.key.kind) if self.key.kind in KIND_ORDER else len(KIND_ORDER)
        if self.action is Action.DELETE:
            rank = -rank  # deletes first, dependents before what they depend on
        return (self.action is not Action.DELETE, rank, self.key)


@dataclass
class ChangeResult:
    """What a provider reports for one applied change. ``data`` is what gets recorded."""

    change: Change
    data: dict[str, Any] | None  # None after a delete
    detail: str = ""
