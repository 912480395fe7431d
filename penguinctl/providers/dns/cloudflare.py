"""The ``cloudflare`` DNS provider: record sets published through the Cloudflare v4 API.

- Cloudflare stores one record per value; penguinctl's records are RRsets (zone, name, type).
  ``read`` lists each zone's records once and groups them back into RRsets in exactly the shape
  of ``penguinctl.dns.records`` (TXT strings decoded and joined, MX ``"10 host."``, CNAME
  absolute, A/AAAA canonical, values sorted, the RRset's TTL), so applied records read back equal.
  Records with a TTL of 1 (Cloudflare's "automatic", forced on proxied records) read as TTL 1,
  so a proxied or "auto" record shows up as drift.
- ``batch_key`` is the zone; ``apply_batch`` lists each zone once and, per RRset it is asked to
  change, computes the fewest record operations: values already there stay, a record whose value
  (or TTL, or proxy flag) is wrong is updated in place (PUT), missing values are created, extra
  ones deleted; a delete removes every record of that RRset. Deletes run first, then updates,
  then creates. Records of RRsets not named by a change are never touched. Applying twice sends
  no writes; a create answered "identical record already exists" and a delete of a record that
  is gone succeed quietly.
- TXT content is sent as RFC 1035 quoted character-strings of at most 255 octets each
  (``"v=DKIM1; k=rsa; p=MIIB..." "...rest"``, ``"`` and ``\\`` escaped), which is what Cloudflare
  documents for TXT content; reading accepts that form and the legacy unquoted form.
- Foreign values are left alone: at the apex only the SPF value of the TXT RRset is
  penguinctl's (``changes.owned_value``); site-verification tokens next to it are never read
  as drift, rewritten or deleted.
- A, AAAA and CNAME records are always published DNS-only (``proxied: false``): mail hosts must
  resolve to the server itself.
"""

from __future__ import annotations

import contextlib
import ipaddress
import threading
from collections import defaultdict
from collections.abc import Hashable, Sequence
from typing import Any

from penguinctl.dns.records import Record, make_record, split_record_name, txt_chunks
from penguinctl.errors import ProviderError
from penguinctl.plan.changes import Action, Change, ChangeResult
from penguinctl.providers.base import Provider
from penguinctl.providers.dns.changes import owned_value, record_change
from penguinctl.providers.dns.cloudflare_client import (
    DEFAULT_BASE_URL,
    RATE_LIMIT,
    CloudflareClient,
    CloudflareError,
    CloudflareNotFound,
)
from penguinctl.resources import ResourceKey

SUPPORTED_TYPES = ("A", "AAAA", "CNAME", "MX", "TXT")
PROXIABLE = ("A", "AAAA", "CNAME")
MAX_TXT_CONTENT = 2048  # characters of one TXT record's content at Cloudflare
IDENTICAL_RECORD = 81058  # "An identical record already exists."
_Rrset = tuple[str, str]  # (relative name, TYPE)
_Op = tuple[str, dict[str, Any] | None, dict[str, Any] | None]  # (verb, live record, body)


# -- TXT content -----------------------------------------------------------------------------
def encode_txt(value: str) -> str:
    """``value`` as Cloudflare TXT content: quoted character-strings of <= 255 octets."""
    parts = (c.replace("\\", "\\\\").replace('"', '\\"') for c in txt_chunks(value))
    return " ".join(f'"{p}"' for p in parts)


def decode_txt(content: str) -> str:
    """The joined text of TXT ``content``: quoted strings (RFC 1035 escapes ``\\"``, ``\\\\``,
    ``\\DDD``) are concatenated with no separator; content not starting and ending with a quote
    is the text itself (how Cloudflare returns records entered unquoted)."""
    content = content.strip()
    if len(content) < 2 or not (content.startswith('"') and content.endswith('"')):
        return content
    out = bytearray()
    i, n, quoted = 0, len(content), False
    while i < n:
        ch = content[i]
        if ch == '"':
            quoted = not quoted
        elif ch == "\\" and i + 1 < n:
            digits = content[i + 1 : i + 4]
            if len(digits) == 3 and digits.isdecimal() and int(digits) < 256:
                out.append(int(digits))
                i += 4
                continue
            out += content[i + 1].encode("utf-8")
            i += 1
        elif quoted or ch not in " \t":
            out += ch.encode("utf-8")
        i += 1
    return out.decode("utf-8", errors="replace")


# -- value mapping ---------------------------------------------------------------------------
def live_value(rec: dict[str, Any]) -> str:
    """A Cloudflare record's value in the presentation form of ``penguinctl.dns.records``."""
    rtype = str(rec.get("type", "")).upper()
    content = str(rec.get("content", ""))
    if rtype in ("A", "AAAA"):
        try:
            return str(ipaddress.ip_address(content.strip()))
        except ValueError:
            return content
    if rtype == "MX":
        return f"{rec.get('priority') or 0} {content.strip().rstrip('.').lower()}."
    if rtype == "CNAME":
        return content.strip().rstrip(".").lower() + "."
    if rtype == "TXT":
        return decode_txt(content)
    return content


def _wanted(key: ResourceKey, rtype: str, value: str) -> tuple[str, dict[str, Any]]:
    """A desired value in canonical presentation form and the record fields that publish it."""
    try:
        if rtype in ("A", "AAAA"):
            addr = ipaddress.ip_address(value.strip())
            if (addr.version == 4) != (rtype == "A"):
                raise ValueError(f"not an IPv{4 if rtype == 'A' else 6} address")
            return str(addr), {"content": str(addr)}
        if rtype == "MX":
            prio, host = value.split()
            priority = int(prio)
            if not 0 <= priority <= 65535:
                raise ValueError("priority out of range")
            host = host.rstrip(".").lower()
            return f"{priority} {host}.", {"content": host, "priority": priority}
        if rtype == "CNAME":
            host = value.strip().rstrip(".").lower()
            if not host or " " in host:
                raise ValueError("not a host name")
            return host + ".", {"content": host}
    except ValueError as exc:
        raise ProviderError(f"{key}: {value!r} is not valid {rtype} data ({exc})") from None
    content = encode_txt(value)
    if len(content) > MAX_TXT_CONTENT:
        raise ProviderError(
            f"{key}: the TXT value is {len(content)} characters once quoted; Cloudflare accepts "
            f"at most {MAX_TXT_CONTENT}",
            hint="shorten the value (a DKIM key over 2048 bits may not fit)",
        )
    return value, {"content": content}


def _fqdn(zone: str, rel: str) -> str:
    return zone if rel == "@" else f"{rel}.{zone}"


class CloudflareProvider(Provider):
    def __init__(
        self,
        name: str,
        *,
        token: str,
        base_url: str | None = None,
        default_ttl: int = 3600,
        client: CloudflareClient | None = None,
        rate_limit: float = RATE_LIMIT,
        max_parallel: int = 4,
    ) -> None:
        super().__init__(name)
        self.default_ttl = default_ttl
        self.max_parallel = max_parallel
        self.client = client or CloudflareClient(
            token, base_url=base_url or DEFAULT_BASE_URL, rate_limit=rate_limit
        )
        self._lock = threading.Lock()
        self._zone_ids: dict[str, str] = {}
        self._zone_locks: dict[str, threading.Lock] = {}

    def __repr__(self) -> str:
        return f"CloudflareProvider({self.name!r}, base_url={self.client.base_url!r})"

    def close(self) -> None:
        self.client.close()

    @staticmethod
    def _zone_of(change: Change) -> str:
        return change.key.name.split("/", 1)[0].lower().rstrip(".")

    def batch_key(self, change: Change) -> Hashable:
        return self._zone_of(change)

    # -- Cloudflare calls with context ------------------------------------------------------------
    def _context(self, zone: str, exc: CloudflareError) -> CloudflareError:
        return exc.in_context(f"{self.name}: zone {zone}: ")

    def _zone_id(self, zone: str) -> str:
        with self._lock:
            cached = self._zone_ids.get(zone)
        if cached is not None:
            return cached
        try:
            zone_id = self.client.zone_id(zone)
        except CloudflareError as exc:
            raise self._context(zone, exc) from None
        with self._lock:
            self._zone_ids[zone] = zone_id
        return zone_id

    def _rrsets(self, zone: str, zone_id: str) -> dict[_Rrset, list[dict[str, Any]]]:
        """The zone's records grouped by (relative name, TYPE)."""
        try:
            records = self.client.records(zone_id)
        except CloudflareError as exc:
            raise self._context(zone, exc) from None
        out: dict[_Rrset, list[dict[str, Any]]] = defaultdict(list)
        for rec in records:
            fqdn = str(rec.get("name", "")).lower().rstrip(".")
            if fqdn == zone:
                rel = "@"
            elif fqdn.endswith("." + zone):
                rel = fqdn[: -len(zone) - 1]
            else:
                continue
            out[(rel, str(rec.get("type", "")).upper())].append(rec)
        return out

    # -- reading --------------------------------------------------------------------------------
    def read(self, keys: Sequence[ResourceKey]) -> dict[ResourceKey, dict[str, Any]] | None:
        by_zone: dict[str, list[tuple[ResourceKey, _Rrset]]] = defaultdict(list)
        for key in keys:
            if key.kind != "dnsrecord" or key.name.count("/") != 2:
                continue
            zone, rel, rtype = split_record_name(key.name)
            by_zone[zone.lower().rstrip(".")].append((key, (rel.lower(), rtype.upper())))
        out: dict[ResourceKey, dict[str, Any]] = {}
        for zone, items in by_zone.items():
            rrsets = self._rrsets(zone, self._zone_id(zone))
            for key, (rel, rtype) in items:
                recs = [r for r in rrsets.get((rel, rtype), []) if _owned(rel, rtype, r)]
                if recs:
                    out[key] = self._record(zone, rel, rtype, recs)
        return out

    @staticmethod
    def _record(zone: str, rel: str, rtype: str, recs: list[dict[str, Any]]) -> Record:
        ttls = [int(r.get("ttl") or 1) for r in recs]
        values = sorted({live_value(r) for r in recs})
        return make_record(zone, rel, rtype, min(ttls), values)

    # -- applying -------------------------------------------------------------------------------
    def _validate(self, change: Change) -> tuple[str, _Rrset, int, list[tuple[str, dict]]]:
        """(zone, rrset, ttl, desired values with their record fields); no I/O."""
        key = change.key
        rc = record_change(change, default_ttl=self.default_ttl)
        zone, rel, rtype = rc.zone, rc.name, rc.rtype
        if rtype not in SUPPORTED_TYPES:
            raise ProviderError(
                f"{key}: the cloudflare provider publishes {', '.join(SUPPORTED_TYPES)} records, "
                f"not {rtype}"
            )
        if change.action is Action.DELETE:
            return zone, (rel, rtype), 0, []
        ttl, values = rc.ttl, rc.values
        if ttl < 1:
            raise ProviderError(f"{key}: a record needs a TTL in seconds")
        wanted = {v: body for v, body in (_wanted(key, rtype, value) for value in values)}
        if rtype == "CNAME" and len(wanted) > 1:
            raise ProviderError(f"{key}: a CNAME has exactly one target")
        return zone, (rel, rtype), ttl, sorted(wanted.items())

    def apply_batch(self, changes: Sequence[Change]) -> list[ChangeResult]:
        by_zone: dict[str, list[tuple[Change, _Rrset, int, list[tuple[str, dict]]]]]
        by_zone = defaultdict(list)
        for change in changes:  # check everything before sending anything
            zone, rrset, ttl, wanted = self._validate(change)
            by_zone[zone].append((change, rrset, ttl, wanted))
        for zone, items in by_zone.items():
            with self._zone_lock(zone):
                self._apply_zone(zone, items)
        return [
            ChangeResult(change=c, data=None if c.action is Action.DELETE else c.after)
            for c in changes
        ]

    def _zone_lock(self, zone: str) -> threading.Lock:
        with self._lock:
            return self._zone_locks.setdefault(zone, threading.Lock())

    def _apply_zone(
        self, zone: str, items: list[tuple[Change, _Rrset, int, list[tuple[str, dict]]]]
    ) -> None:
        zone_id = self._zone_id(zone)
        live = self._rrsets(zone, zone_id)
        ops: list[_Op] = []
        for change, rrset, ttl, wanted in items:
            recs = [r for r in live.get(rrset, []) if _owned(*rrset, r)]
            if change.action is Action.DELETE:
                ops += [("delete", rec, None) for rec in recs]
            else:
                ops += self._diff(zone, rrset, ttl, wanted, recs)
        order = {"delete": 0, "update": 1, "create": 2}
        ops.sort(key=lambda op: order[op[0]])
        try:
            for verb, rec, body in ops:
                self._send(zone_id, verb, rec, body)
        except CloudflareError as exc:
            raise self._context(zone, exc) from None

    @staticmethod
    def _diff(
        zone: str,
        rrset: _Rrset,
        ttl: int,
        wanted: list[tuple[str, dict[str, Any]]],
        recs: list[dict[str, Any]],
    ) -> list[_Op]:
        """The fewest record operations turning ``recs`` into ``wanted`` values at ``ttl``."""
        rel, rtype = rrset

        def body(fields: dict[str, Any]) -> dict[str, Any]:
            out = {"type": rtype, "name": _fqdn(zone, rel), "ttl": ttl, **fields}
            if rtype in PROXIABLE:
                out["proxied"] = False
            return out

        unmatched = sorted(recs, key=lambda r: str(r.get("id", "")))
        ops: list[_Op] = []
        missing: list[dict[str, Any]] = []
        for value, fields in wanted:
            rec = next((r for r in unmatched if live_value(r) == value), None)
            if rec is None:
                missing.append(fields)
                continue
            unmatched.remove(rec)
            if rec.get("ttl") != ttl or bool(rec.get("proxied")):
                ops.append(("update", rec, body(fields)))
        for rec, fields in zip(unmatched, missing, strict=False):  # new value into an old record
            ops.append(("update", rec, body(fields)))
        ops += [("create", None, body(f)) for f in missing[len(unmatched) :]]
        ops += [("delete", rec, None) for rec in unmatched[len(missing) :]]
        return ops

    def _send(
        self, zone_id: str, verb: str, rec: dict[str, Any] | None, body: dict[str, Any] | None
    ) -> None:
        if verb == "delete":
            assert rec is not None
            with contextlib.suppress(CloudflareNotFound):  # already gone
                self.client.record_delete(zone_id, str(rec["id"]))
            return
        assert body is not None
        if verb == "update":
            assert rec is not None
            try:
                self.client.record_update(zone_id, str(rec["id"]), body)
                return
            except CloudflareNotFound:
                pass  # deleted since it was listed: create it instead
        try:
            self.client.record_create(zone_id, body)
        except CloudflareError as exc:
            if IDENTICAL_RECORD not in exc.codes:  # a retried create that had gone through
                raise


def _owned(rel: str, rtype: str, rec: dict[str, Any]) -> bool:
    return owned_value(rel, rtype, live_value(rec))
