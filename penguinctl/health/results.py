"""One check's outcome. Statuses, worst last: ``ok``, ``warn``, ``fail``, ``error`` (the check
could not run: a timeout, a refused query). ``fail`` and ``error`` make ``check`` exit 5.
``critical`` marks failures that pause campaigns sending through the IP or domain."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RANK = {"ok": 0, "warn": 1, "fail": 2, "error": 3}
FAILING = frozenset({"fail", "error"})


@dataclass
class Result:
    target_kind: str  # server | domain
    target: str
    tenant: str
    check: str  # dns:SPF, fcrdns, smtp:25, cert:465, dnsbl:zen.spamhaus.org, containers, ...
    subject: str  # what was asked: an IP, host:port, a record name
    status: str
    detail: str = ""
    critical: bool = False
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def failing(self) -> bool:
        return self.status in FAILING

    def to_json(self) -> dict[str, Any]:
        return {
            "target_kind": self.target_kind,
            "target": self.target,
            "tenant": self.tenant,
            "check": self.check,
            "subject": self.subject,
            "status": self.status,
            "critical": self.critical,
            "detail": self.detail,
            "data": self.data,
        }


def overall(results: list[Result]) -> str:
    return max((r.status for r in results), key=RANK.__getitem__, default="ok")
