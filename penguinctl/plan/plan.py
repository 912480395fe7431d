"""The Plan: ordered changes with counts, a checksum, safety checks and a JSON view."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from penguinctl.plan.changes import Action, Change
from penguinctl.resources import PROTECTED_KINDS, ResourceKey

MAX_SAFE_DELETE_FRACTION = 0.30
MIN_EXISTING_RECORDS = 10


@dataclass
class Plan:
    changes: list[Change]
    tenants: list[str]
    # existing DNS record count per tenant, for the delete-percentage guard
    existing_records: dict[str, int] = field(default_factory=dict)
    operation: str = "apply"

    @property
    def empty(self) -> bool:
        return not self.changes

    def counts(self) -> dict[str, int]:
        c = Counter(ch.action.value for ch in self.changes)
        return {a.value: c.get(a.value, 0) for a in Action}

    @property
    def data(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "tenants": sorted(self.tenants),
            "changes": [c.data for c in self.changes],
        }

    def checksum(self) -> str:
        blob = json.dumps(self.data, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def unsafe_reasons(self) -> list[str]:
        """Why this plan needs --force (empty when it is safe)."""
        reasons: list[str] = []
        protected = [
            c.key
            for c in self.changes
            if c.action is Action.DELETE and c.key.kind in PROTECTED_KINDS
        ]
        if protected:
            names = ", ".join(k.address for k in protected[:5])
            more = f" and {len(protected) - 5} more" if len(protected) > 5 else ""
            reasons.append(f"deletes {names}{more}")
        deleted = Counter(
            c.key.tenant
            for c in self.changes
            if c.action is Action.DELETE and c.key.kind == "dnsrecord"
        )
        for tenant, n in sorted(deleted.items()):
            existing = self.existing_records.get(tenant, 0)
            if existing >= MIN_EXISTING_RECORDS and n / existing > MAX_SAFE_DELETE_FRACTION:
                reasons.append(
                    f"deletes {n} of {existing} DNS records of tenant {tenant} "
                    f"({n / existing:.0%}, over {MAX_SAFE_DELETE_FRACTION:.0%})"
                )
        return reasons

    def to_json(self) -> dict[str, Any]:
        return {**self.data, "counts": self.counts(), "checksum": self.checksum()}

    def keys(self) -> set[ResourceKey]:
        return {c.key for c in self.changes}
