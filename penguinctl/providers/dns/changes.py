"""Checking a DNS record change before any provider does I/O: shared by every DNS provider."""

from __future__ import annotations

from dataclasses import dataclass, field

from penguinctl.dns.records import split_record_name
from penguinctl.errors import ProviderError
from penguinctl.plan.changes import Action, Change
from penguinctl.resources import COMPUTED


@dataclass(frozen=True)
class RecordChange:
    """A validated record change; ``ttl`` is 0 and ``values`` empty for a delete."""

    zone: str
    name: str
    rtype: str
    ttl: int = 0
    values: list[str] = field(default_factory=list)


def record_change(change: Change, *, default_ttl: int | None = None) -> RecordChange:
    """Parse and check ``change`` (a ``dnsrecord`` resource); raise ``ProviderError`` if bad."""
    key = change.key
    try:
        zone, name, rtype = split_record_name(key.name)
    except ValueError:
        raise ProviderError(f"{key}: not a DNS record name (expected zone/name/type)") from None
    zone, name, rtype = zone.lower().rstrip("."), name.lower(), rtype.upper()
    if change.action is Action.DELETE:
        return RecordChange(zone, name, rtype)
    after = change.after
    if not isinstance(after, dict):
        raise ProviderError(f"{key}: {change.action.value} without record data")
    values = after.get("values")
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise ProviderError(f"{key}: a record needs a non-empty list of string values")
    if COMPUTED in values:
        raise ProviderError(
            f"{key}: a value is not known yet ({COMPUTED}); this is a bug in penguinctl: the "
            "record was applied before the resource it depends on",
            hint="re-run apply; report the bug if it happens again",
        )
    same = (
        str(after.get("zone", zone)).lower().rstrip(".") == zone
        and str(after.get("name", name)).lower() == name
        and str(after.get("type", rtype)).upper() == rtype
    )
    if not same:
        raise ProviderError(f"{key}: record data does not match the resource name")
    ttl = after.get("ttl", default_ttl)
    if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl < 0:
        raise ProviderError(f"{key}: a record needs a TTL in seconds")
    return RecordChange(zone, name, rtype, ttl, list(values))


def owned_value(name: str, rtype: str, value: str) -> bool:
    """Whether a live value of RRset (``name``, ``rtype``) belongs to penguinctl.

    Client zones are often co-managed: the apex TXT RRset also holds site-verification tokens
    and the like. At the apex penguinctl owns only the SPF value (``v=spf1 ...``); it never
    reads, rewrites or deletes the other TXT values there. Every other RRset it publishes
    (``_dmarc``, ``<selector>._domainkey``, MX, the mail host's A, ...) is wholly its own.
    """
    if rtype.upper() == "TXT" and name in ("@", ""):
        return value.strip().lower().startswith("v=spf1")
    return True
