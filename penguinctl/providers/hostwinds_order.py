"""What the Hostwinds provider (``hostwinds.py``) reads and writes that needs no API: the
validated order (``ServerOrder``), the intent journal it records orders in, and the pure helpers
that turn an instance object into the resource's outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from penguinctl.errors import ProviderError
from penguinctl.plan.changes import Change
from penguinctl.providers.hostwinds_shapes import ip_addresses
from penguinctl.resources import ResourceKey

FIXED_FIELDS = ("location_id", "template", "rid", "billingcycle")
MONTHS = {
    "monthly": 1,
    "quarterly": 3,
    "semiannually": 6,
    "annually": 12,
    "biennially": 24,
    "triennially": 36,
}


class IntentJournal(Protocol):
    """Where the provider records an order before placing it. ``mark`` commits at once, in its
    own transaction, and survives a crash; ``get`` returns a pending intent or None."""

    def get(self, key: ResourceKey) -> dict[str, Any] | None: ...

    def mark(self, key: ResourceKey, data: dict[str, Any]) -> None: ...

    def clear(self, key: ResourceKey) -> object: ...


@dataclass(frozen=True)
class ServerOrder:
    """The validated desired state of one server (``change.after``)."""

    hostname: str
    srvrname: str
    location_id: int
    template: str
    rid: int
    billingcycle: str

    @classmethod
    def parse(cls, key: ResourceKey, data: dict[str, Any] | None) -> ServerOrder:
        data = data or {}
        block = data.get("hostwinds")
        problems = []
        if not isinstance(block, dict):
            block = {}
            problems.append("no 'hostwinds' block")
        hostname = str(data.get("hostname") or "").strip().rstrip(".").lower()
        srvrname = str(data.get("srvrname") or "").strip()
        if not hostname:
            problems.append("no hostname")
        if not srvrname:
            problems.append("no srvrname")
        for name in ("location_id", "rid"):
            if name in block and not is_int(block[name]):
                problems.append(f"hostwinds.{name} is not a whole number")
            elif name not in block:
                problems.append(f"no hostwinds.{name}")
        if not str(block.get("template") or "").strip():
            problems.append("no hostwinds.template")
        cycle = str(block.get("billingcycle") or "monthly").lower()
        if cycle not in MONTHS and cycle != "hourly":
            problems.append(f"hostwinds.billingcycle {cycle!r} is not one of {', '.join(MONTHS)}")
        if problems:
            raise ProviderError(
                f"{key}: cannot order this server: {'; '.join(problems)}",
                hint="fix the Server's hostwinds block in the spec",
            )
        return cls(
            hostname=hostname,
            srvrname=srvrname,
            location_id=int(block["location_id"]),
            template=str(block["template"]).strip(),
            rid=int(block["rid"]),
            billingcycle=cycle,
        )


# -- pure helpers -------------------------------------------------------------------------------
def refuse_fixed_changes(change: Change) -> None:
    old = (change.before or {}).get("hostwinds") or {}
    new = (change.after or {}).get("hostwinds") or {}
    for name in FIXED_FIELDS:
        if name == "rid":
            continue  # a new plan is an in-place upgrade (``HostwindsProvider._resize``)
        if name in old and norm(old[name]) != norm(new.get(name)):
            raise ProviderError(
                f"{change.key}: hostwinds.{name} cannot change from {old[name]!r} to "
                f"{new.get(name)!r} on an existing server: that needs a new server",
                hint="put the old value back; to move or resize, add a new Server, move the "
                "domains to it, then delete this one",
            )


def outputs(
    after: dict[str, Any], inst: dict[str, Any], hostname: str, cost: float | None
) -> dict[str, Any]:
    ips = instance_ips(inst)
    data = {k: v for k, v in after.items() if k != "password"}
    data.update(
        service_id=as_int(inst.get("serviceid")),
        ips=ips,
        main_ip=ips[0] if ips else None,
        status=str(inst.get("status") or "").lower(),
        rdns=hostname,
        monthly_cost=cost,
    )
    return data


def instance_ips(inst: dict[str, Any]) -> list[str]:
    """Public addresses of an instance, main IP first (the private IP left out)."""
    main = ip_addresses(inst.get("main_ip"))
    private = set(ip_addresses(inst.get("private_ip")))
    rest = [ip for ip in ip_addresses(inst.get("ips")) if ip not in main and ip not in private]
    return main[:1] + rest


def service_id_in(answer: list[dict[str, Any]]) -> int | None:
    """A service id in the add_instance answer, should Hostwinds ever send one (undocumented)."""
    for item in answer:
        sid = as_int(item.get("serviceid"))
        if sid is not None:
            return sid
    return None


def iso_created(inst: dict[str, Any]) -> str | None:
    try:
        when = datetime.strptime(str(inst.get("created_at")), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return when.replace(tzinfo=UTC).isoformat(timespec="seconds")


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def is_int(value: Any) -> bool:
    return as_int(value) is not None and str(value).strip().lstrip("-").isdecimal()


def norm(value: Any) -> str:
    return str(value).strip().lower()


def truthy(value: Any) -> bool:
    return str(value).strip().lower() not in ("", "0", "false", "none", "no")


def duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"
