"""The ``zonefile`` DNS provider: one RFC 1035 zone file per domain, ``<directory>/<domain>.zone``.

- ``batch_key`` is the zone, so every record change of a zone is applied in one write.
- ``apply_batch`` reads the existing file (if any), replaces the RRsets created or updated,
  removes the deleted ones, keeps every other record already in the file (hand-added ones), and
  writes the whole zone atomically with a new serial, but only when the content (records, apex
  NS, SOA fields other than the serial) changed: a batch that changes nothing does not touch the
  file, which is what makes a re-run after a crash converge quietly. A zone left with no records
  after deletes is removed.
- ``read`` returns the live data of record keys from their zone files (drift detection). Parsed
  zones are cached per provider instance, keyed on (inode, mtime_ns, size), so a plan and the
  apply that follows parse each file once.

Temporary files of writes interrupted by a killed process are swept on the first apply.
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from penguinctl import clock
from penguinctl.dns.records import Record, make_record, split_record_name
from penguinctl.dns.zonefile import (
    ZoneData,
    ZoneParseError,
    default_nameservers,
    next_serial,
    read_zone,
    render_zone,
    stale_temp_files,
    write_atomic,
)
from penguinctl.errors import ProviderError
from penguinctl.plan.changes import Action, Change, ChangeResult
from penguinctl.private_files import SHARED_DIR, fsync_directory, make_dirs
from penguinctl.providers.base import Provider
from penguinctl.providers.dns.changes import record_change
from penguinctl.resources import ResourceKey

ZONE_SUFFIX = ".zone"
_Sig = tuple[int, int, int]


def _utc_today() -> date:
    return clock.now().date()


def _copy(rec: Record) -> Record:
    return {**rec, "values": list(rec["values"])}


class ZonefileProvider(Provider):
    def __init__(
        self,
        name: str,
        directory: Path,
        *,
        nameservers: list[str] | None,
        hostmaster: str | None,
        default_ttl: int = 3600,
        today: Callable[[], date] | None = None,
    ) -> None:
        super().__init__(name)
        self.directory = Path(directory)
        self._dir = str(self.directory)
        self.nameservers = list(nameservers) if nameservers else default_nameservers()
        self.hostmaster = hostmaster
        self.default_ttl = default_ttl
        self._today = today or _utc_today
        self._lock = threading.Lock()
        self._zone_locks: dict[str, threading.Lock] = {}
        self._cache: dict[str, tuple[_Sig, ZoneData]] = {}  # zone -> (file signature, data)
        self._swept = False

    # -- paths and locks ----------------------------------------------------------------------
    def zone_path(self, zone: str) -> Path:
        return Path(self._file(zone))

    def _file(self, zone: str) -> str:
        if not zone or "/" in zone or "\\" in zone or zone.startswith(".") or "\0" in zone:
            raise ProviderError(f"{self.name}: {zone!r} is not a usable zone name")
        return os.path.join(self._dir, zone + ZONE_SUFFIX)

    def _zone_lock(self, zone: str) -> threading.Lock:
        with self._lock:
            return self._zone_locks.setdefault(zone, threading.Lock())

    @staticmethod
    def _zone_of(change: Change) -> str:
        return change.key.name.split("/", 1)[0].lower()

    def batch_key(self, change: Change) -> Hashable:
        return ("zone", self._zone_of(change))

    # -- reading ------------------------------------------------------------------------------
    def _load(self, zone: str) -> ZoneData | None:
        """The parsed zone file of ``zone`` or None when there is none (cached)."""
        path = self._file(zone)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._io_error("read", Path(path), exc) from None
        sig = (st.st_ino, st.st_mtime_ns, st.st_size)
        with self._lock:
            hit = self._cache.get(zone)
        if hit is not None and hit[0] == sig:
            return hit[1]
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except FileNotFoundError:
            return None
        except UnicodeDecodeError:
            raise ProviderError(
                f"zone file {path} is not UTF-8 text",
                hint="fix the file or move it away so penguinctl writes a new one, then re-run",
            ) from None
        except OSError as exc:
            raise self._io_error("read", Path(path), exc) from None
        try:
            data = read_zone(text, zone)
        except ZoneParseError as exc:
            raise ProviderError(
                f"zone file {path} cannot be parsed as zone {zone}: {exc}",
                hint=f"fix it by hand (check with `named-checkzone {zone} {path}`) or move it "
                "away so penguinctl writes a new one, then re-run",
            ) from None
        with self._lock:
            self._cache[zone] = (sig, data)
        return data

    def read(self, keys: Sequence[ResourceKey]) -> dict[ResourceKey, dict[str, Any]] | None:
        by_zone: dict[str, list[tuple[ResourceKey, str, str]]] = defaultdict(list)
        for key in keys:
            if key.kind != "dnsrecord":
                continue
            try:
                zone, name, rtype = split_record_name(key.name)
            except ValueError:
                continue
            by_zone[zone.lower()].append((key, name.lower(), rtype.upper()))
        out: dict[ResourceKey, dict[str, Any]] = {}
        for zone, items in by_zone.items():
            data = self._load(zone)
            if data is None:
                continue
            for key, name, rtype in items:
                rec = data.records.get((name, rtype))
                if rec is not None:
                    out[key] = _copy(rec)
        return out

    # -- applying -----------------------------------------------------------------------------
    def _validate(self, change: Change) -> tuple[str, str, str]:
        rc = record_change(change)
        return rc.zone, rc.name, rc.rtype

    def apply_batch(self, changes: Sequence[Change]) -> list[ChangeResult]:
        by_zone: dict[str, list[tuple[Change, tuple[str, str]]]] = defaultdict(list)
        for change in changes:  # check everything before touching any file
            zone, name, rtype = self._validate(change)
            by_zone[zone].append((change, (name, rtype)))
        self._sweep_once()
        for zone, items in by_zone.items():
            with self._zone_lock(zone):
                self._apply_zone(zone, items)
        return [
            ChangeResult(change=c, data=None if c.action is Action.DELETE else c.after)
            for c in changes
        ]

    def _apply_zone(self, zone: str, items: list[tuple[Change, tuple[str, str]]]) -> None:
        path = self.zone_path(zone)
        old = self._load(zone)
        records: dict[tuple[str, str], Record] = dict(old.records) if old else {}
        for change, key in items:
            if change.action is Action.DELETE:
                records.pop(key, None)
            else:
                after = change.after or {}
                records[key] = make_record(zone, key[0], key[1], after["ttl"], after["values"])
        if not records:
            if old is not None:
                self._remove(zone, path)
            return
        today = self._today()
        serial = old.serial if old is not None else None
        text = self._render(zone, records, next_serial(None, today) if serial is None else serial)
        new = self._check(zone, text)  # canonical form, to compare with what the file holds
        if old is not None and serial is not None:
            if (new.records, new.nameservers, new.soa) == (old.records, old.nameservers, old.soa):
                return  # nothing changed: leave the file (and its serial) alone
            text = self._render(zone, records, next_serial(serial, today))
            new = self._check(zone, text)
        try:
            make_dirs(self.directory, SHARED_DIR)
            write_atomic(path, text)
            st = path.stat()
        except OSError as exc:
            raise self._io_error("write", path, exc) from None
        with self._lock:
            self._cache[zone] = ((st.st_ino, st.st_mtime_ns, st.st_size), new)

    def _render(self, zone: str, records: dict[tuple[str, str], Record], serial: int) -> str:
        try:
            return render_zone(
                zone,
                records.values(),
                nameservers=self.nameservers,
                hostmaster=self.hostmaster,
                serial=serial,
                default_ttl=self.default_ttl,
            )
        except ValueError as exc:
            raise ProviderError(f"zone {zone}: {exc}") from None

    @staticmethod
    def _check(zone: str, text: str) -> ZoneData:
        """The zone about to be written, parsed back: refuses values that are not DNS data."""
        try:
            return read_zone(text, zone)
        except ZoneParseError as exc:
            raise ProviderError(
                f"zone {zone}: the records to write are not a valid zone ({exc})",
                hint="check the record values (and records added to the zone file by hand)",
            ) from None

    def _remove(self, zone: str, path: Path) -> None:
        try:
            path.unlink(missing_ok=True)
            fsync_directory(path.parent)
        except OSError as exc:
            raise self._io_error("remove", path, exc) from None
        with self._lock:
            self._cache.pop(zone, None)

    def _sweep_once(self) -> None:
        with self._lock:
            if self._swept:
                return
            self._swept = True
        try:
            for stale in stale_temp_files(self.directory):
                stale.unlink(missing_ok=True)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._io_error("clean up", self.directory, exc) from None

    def _io_error(self, verb: str, path: Path, exc: OSError) -> ProviderError:
        reason = exc.strerror or type(exc).__name__
        return ProviderError(
            f"{self.name}: cannot {verb} {path}: {reason}",
            hint=f"check that {path.parent} exists and that the user running penguinctl may "
            "read and write it (owner, mode, free space)",
        )
