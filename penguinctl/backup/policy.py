"""The BackupPolicy that applies to a server.

Looked up, in order: the spec files given with ``-f`` (the Server's ``backup`` names a
BackupPolicy document); a recorded ``backuppolicy`` resource named by the server's recorded
``backup`` field; else the defaults (retention 7 daily / 4 weekly / 6 monthly, repository on the
server's own disk, no schedule).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Policy:
    name: str | None
    schedule: str | None
    daily: int
    weekly: int
    monthly: int
    repository: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "schedule": self.schedule,
            "retention": {"daily": self.daily, "weekly": self.weekly, "monthly": self.monthly},
            "repository": self.repository,
        }


DEFAULT = Policy(None, None, 7, 4, 6, None)


def _from_data(name: str | None, data: dict[str, Any]) -> Policy:
    ret = data.get("retention") or {}
    return Policy(
        name,
        data.get("schedule"),
        int(ret.get("daily", DEFAULT.daily)),
        int(ret.get("weekly", DEFAULT.weekly)),
        int(ret.get("monthly", DEFAULT.monthly)),
        data.get("repository"),
    )


def policy_for(
    server: str, server_data: dict[str, Any], *, specs: Any = None, recorded: dict[str, Any]
) -> Policy:
    """``specs``: a loaded ``SpecSet`` or None; ``recorded``: {policy name: data} of recorded
    ``backuppolicy`` resources."""
    if specs is not None and server in specs.servers:
        name = specs.servers[server].spec.backup
        if name and name in specs.backup_policies:
            spec = specs.backup_policies[name].spec
            return _from_data(name, spec.model_dump(mode="json"))
    name = server_data.get("backup")
    if name and name in recorded:
        return _from_data(name, recorded[name])
    return DEFAULT
