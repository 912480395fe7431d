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
DMARC_REJECT_MIN_AGE_DAYS = 30


@dataclass
class Plan:
    changes: list[Change]
    tenants: list[str]
    # existing DNS record count per tenant, for the delete-percentage guard
    existing_records: dict[str, int] = field(default_factory=dict)
    operation: str = "apply"
    # days since each recorded domain was first applied (for the DMARC p=reject guard)
    domain_age_days: dict[ResourceKey, int] = field(default_factory=dict)
    # things the operator should know that do not change the plan (an unreadable zone)
    warnings: list[str] = field(default_factory=list)

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
        # computed once per content: apply prints it and records it (changes are frozen)
        key = (self.operation, tuple(self.tenants), tuple(map(id, self.changes)))
        cached = self.__dict__.get("_checksum")
        if cached is not None and cached[0] == key:
            return cached[1]
        blob = json.dumps(self.data, sort_keys=True, separators=(",", ":"), default=str)
        digest = hashlib.sha256(blob.encode()).hexdigest()
        self.__dict__["_checksum"] = (key, digest)
        return digest

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
        for c in self.changes:
            if c.key.kind != "domain" or c.action is Action.DELETE:
                continue
            policy = ((c.after or {}).get("dmarc") or {}).get("policy")
            was = ((c.before or {}).get("dmarc") or {}).get("policy")
            age = self.domain_age_days.get(c.key, 0)
            if policy == "reject" and was != "reject" and age < DMARC_REJECT_MIN_AGE_DAYS:
                reasons.append(
                    f"sets DMARC p=reject on {c.key.address}, first applied {age} day(s) ago "
                    f"(under {DMARC_REJECT_MIN_AGE_DAYS}; start at p=none and raise gradually)"
                )
        return reasons

    def to_json(self) -> dict[str, Any]:
        return {
            **self.data,
            "counts": self.counts(),
            "checksum": self.checksum(),
            "warnings": self.warnings,
        }

    def keys(self) -> set[ResourceKey]:
        return {c.key for c in self.changes}
