"""The ``hostwinds`` server provider (``server:hostwinds``): VPS ordered through the Cloud API.

Data contract with the engine (``change.after`` of a create or update)::

    {"provider": "hostwinds", "hostname": "mail.acme.example", "mail": {...} | None,
     "hostwinds": {"location_id": int, "template": str, "rid": int, "billingcycle": "monthly"},
     "srvrname": "pc-<tenant>-<server>", "ips": [...]}

``ChangeResult.data`` is that dict plus the outputs: ``service_id`` (int), ``ips`` (main IP
first), ``main_ip``, ``status`` (lower case), ``rdns`` (the hostname set as reverse DNS of the
main IP), ``monthly_cost`` (from ``get_price_list`` for the ``rid``, the billing cycle's price
divided by its months; None when unknown) and ``ordered_at`` (ISO 8601, UTC). The root
``password`` of instance objects is never returned, logged or stored.

Crash safety (Hostwinds bills ``add_instance`` at once and its answer names no instance):

- before ordering, always look for an instance labelled exactly ``srvrname``
  (``get_instance_ids(search=srvrname)``, all pages; a miss is confirmed with
  ``get_instances``, as what ``search`` matches is undocumented); if there is one, adopt it
  and never order (two live instances with that label are an error, never a guess);
- if none, but the journal holds an intent for the resource, never order again: an intent
  younger than ``order_grace`` is "not visible yet: re-run apply in a few minutes", an older
  one "seems lost" and the hint names ``penguinctl server forget-order <server>``;
- otherwise ``journal.mark(key, {"srvrname", "ordered_at"})`` (committed) and only then
  ``add_instance``. An order Hostwinds refused (error answer, 401, not sent at all) clears the
  intent again; one whose fate is unknown (timeout after sending) keeps it and is looked up.
- an adopted instance gets its rDNS set again unless ``get_instance_ips`` shows it already;
- after the order: find the instance by label (every ``find_interval`` up to
  ``find_timeout``), poll ``get_instance`` every ``poll_interval`` up to ``poll_timeout`` until
  its status is ``active`` (any case) with a main IP, stopping at once on ``error`` or
  ``suspended`` (with Hostwinds' ``disp_status``), set the rDNS of the main IP to the hostname,
  then clear the intent (the engine's resource row supersedes it anyway).

Updates: a new label is sent with ``edit_instance``, a new hostname (or a changed main IP) with
``set_rdns``; a new ``rid`` (plan) is an in-place upgrade through the documented workflow
(``check_upgrade_order``, ``upgrade_instance``, ``upgrade_server``, ``confirm_upgrade``; resumable,
never two orders; a smaller disk is refused); a change of ``location_id``, ``template`` or
``billingcycle`` is refused before any call (it needs a new server). Applying an update whose
values are already live sends no write. Deletes ``terminate`` the instance; a locked instance is
refused with a hint; an instance already gone is fine.

``read_recorded(items)`` reports live status, IPs and label of recorded servers from one
``get_instances`` call; a server terminated outside penguinctl is absent. ``read(keys)`` keeps
the contract default (None): without the recorded service ids there is nothing to look up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from penguinctl import clock as product_clock
from penguinctl.errors import ProviderError
from penguinctl.plan.changes import Action, Change, ChangeResult
from penguinctl.providers.base import Provider
from penguinctl.providers.hostwinds_client import HostwindsClient
from penguinctl.providers.hostwinds_errors import (
    HostwindsApiError,
    HostwindsAuthError,
    HostwindsError,
    HostwindsInvalidService,
    HostwindsLocked,
)
from penguinctl.providers.hostwinds_order import (
    MONTHS,
    IntentJournal,
    ServerOrder,
    as_int,
    duration,
    instance_ips,
    iso_created,
    norm,
    outputs,
    refuse_fixed_changes,
    service_id_in,
    truthy,
)
from penguinctl.resources import ResourceKey

PROVIDER_NAME = "server:hostwinds"
POLL_INTERVAL = 30.0  # seconds between get_instance polls (spec 1.5)
POLL_TIMEOUT = 30 * 60.0
FIND_INTERVAL = 5.0  # seconds between looks for a just-ordered instance
FIND_TIMEOUT = 120.0
ORDER_GRACE = 15 * 60.0  # an intent younger than this may still show up
SEARCH_LIMIT = 100
MAX_SEARCH_PAGES = 20
GONE = frozenset({"terminated", "cancelled", "deleted"})
FAILED = frozenset({"error", "suspended"})

log = logging.getLogger(__name__)


class HostwindsProvider(Provider):
    """Servers at Hostwinds. Pass ``client`` (tests) or ``api_key`` (+ ``base_url``, the CLI's
    ``HOSTWINDS_API_URL``). ``journal`` is needed to order; ``sleep``/``clock``/``now`` are
    injectable so tests never wait."""

    max_parallel: int | None = 2  # the API rate limit is per account anyway

    def __init__(
        self,
        name: str = PROVIDER_NAME,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        client: HostwindsClient | None = None,
        journal: IntentJournal | None = None,
        poll_interval: float = POLL_INTERVAL,
        poll_timeout: float = POLL_TIMEOUT,
        find_interval: float = FIND_INTERVAL,
        find_timeout: float = FIND_TIMEOUT,
        order_grace: float = ORDER_GRACE,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(name)
        if client is None:
            client = HostwindsClient(api_key or "", base_url=base_url)
        self.client = client
        self.journal = journal
        self.poll_interval = poll_interval
        self.poll_timeout = poll_timeout
        self.find_interval = find_interval
        self.find_timeout = find_timeout
        self.order_grace = order_grace
        self._sleep = sleep
        self._clock = clock
        self._now = now or (product_clock.now)
        self._lock = threading.Lock()
        self._prices: list[dict[str, Any]] | None = None

    def __repr__(self) -> str:
        return f"HostwindsProvider({self.name!r}, base_url={self.client.base_url!r})"

    def close(self) -> None:
        self.client.close()

    # -- applying ---------------------------------------------------------------------------------
    def apply_batch(self, changes: Sequence[Change]) -> list[ChangeResult]:
        for change in changes:  # check everything before calling anything
            if change.action is not Action.DELETE:
                ServerOrder.parse(change.key, change.after)
            if change.action is Action.UPDATE:
                refuse_fixed_changes(change)
        results = []
        for change in changes:
            if change.action is Action.CREATE:
                results.append(self._create(change))
            elif change.action is Action.UPDATE:
                results.append(self._update(change))
            else:
                results.append(self._delete(change))
        return results

    def _create(self, change: Change) -> ChangeResult:
        key, order = change.key, ServerOrder.parse(change.key, change.after)
        intent = self.journal.get(key) if self.journal is not None else None
        found = self._existing(key, order.srvrname)
        if found is not None:
            sid, verb = found, "adopted the existing instance"
            ordered_at = (intent or {}).get("ordered_at")
        elif intent is not None:
            raise self._pending(key, order, intent)
        else:
            ordered_at, sid = self._order(key, order)
            verb = "ordered"
        inst = self.wait_until_active(key, sid)
        if found is None or not self._rdns_confirmed(key, inst, order.hostname):
            self._set_rdns(key, inst, order.hostname)
        cost = self._monthly_cost(order)
        if self.journal is not None:
            self.journal.clear(key)
        data = outputs(change.after or {}, inst, order.hostname, cost)
        data["ordered_at"] = ordered_at or iso_created(inst) or self._stamp()
        detail = f"{verb} {order.srvrname} (service {sid}, {data['main_ip']})"
        return ChangeResult(change=change, data=data, detail=detail)

    def _order(self, key: ResourceKey, order: ServerOrder) -> tuple[str, int]:
        """Mark the intent, order, and return (ordered_at, service id of the new instance)."""
        if self.journal is None:
            raise ProviderError(
                f"{key}: refusing to order a Hostwinds server without an intent journal",
                hint="this is a bug in how penguinctl built the hostwinds provider",
            )
        ordered_at = self._stamp()
        self.journal.mark(key, {"srvrname": order.srvrname, "ordered_at": ordered_at})
        log.info("hostwinds: ordering %s for %s", order.srvrname, key)
        try:
            answer = self.client.add_instance(
                order.template, order.rid, order.location_id, order.srvrname, order.billingcycle
            )
        except HostwindsError as exc:
            if not exc.maybe_processed:  # Hostwinds refused it or never saw it: nothing ordered
                self.journal.clear(key)
                raise exc.in_context(f"{key}: ordering {order.srvrname} failed: ") from None
            log.warning("hostwinds: the order of %s may have gone through; looking", key)
            answer = []
        sid = service_id_in(answer)
        if sid is None:
            sid = self._find_ordered(key, order, ordered_at)
        return ordered_at, sid

    def _find_ordered(self, key: ResourceKey, order: ServerOrder, ordered_at: str) -> int:
        deadline = self._clock() + self.find_timeout
        while True:
            sid = self._existing(key, order.srvrname)
            if sid is not None:
                return sid
            left = deadline - self._clock()
            if left <= 0:
                raise self._pending(key, order, {"ordered_at": ordered_at})
            self._sleep(min(self.find_interval, left))

    def wait_until_active(self, key: ResourceKey, sid: int) -> dict[str, Any]:
        """Poll ``get_instance`` until the instance is active with a main IP (the instance,
        without password); ProviderError on an error status, a vanished instance or timeout.
        Transient API failures (outage, open breaker) only delay: polling goes on until the
        timeout."""
        deadline = self._clock() + self.poll_timeout
        while True:
            try:
                inst = self.client.get_instance(sid)
            except (HostwindsApiError, HostwindsAuthError) as exc:
                raise exc.in_context(f"{key}: ") from None
            except HostwindsError as exc:  # an outage while waiting: keep waiting until timeout
                left = deadline - self._clock()
                if left <= 0:
                    raise exc.in_context(f"{key}: ") from None
                log.warning("hostwinds: polling service %s: %s; trying again", sid, exc.message)
                self._sleep(min(self.poll_interval, left))
                continue
            status = str(inst.get("status") or "").lower()
            shown = inst.get("disp_status") or status or "no status"
            label = f"Hostwinds instance {sid} ({inst.get('srvrname') or '?'})"
            if status == "active" and inst.get("main_ip"):
                return inst
            if status in FAILED or status in GONE:
                raise ProviderError(
                    f"{key}: {label} is {status}: {shown}",
                    hint="look at the instance in the Hostwinds portal; fix or terminate it "
                    "there, then re-run apply",
                )
            left = deadline - self._clock()
            if left <= 0:
                raise ProviderError(
                    f"{key}: {label} is still {shown} after {duration(self.poll_timeout)}",
                    hint="re-run apply later: penguinctl finds the instance by its label and "
                    "waits again (it never orders twice)",
                )
            log.debug("hostwinds: %s is %s, waiting", label, status)
            self._sleep(min(self.poll_interval, left))

    def _update(self, change: Change) -> ChangeResult:
        key, order = change.key, ServerOrder.parse(change.key, change.after)
        before = change.before or {}
        sid = as_int(before.get("service_id"))
        if sid is None:
            sid = self._existing(key, str(before.get("srvrname") or order.srvrname))
        if sid is None:
            raise self._gone(key, order.srvrname)
        try:
            inst = self.client.get_instance(sid)
        except HostwindsInvalidService:
            raise self._gone(key, order.srvrname, sid) from None
        except HostwindsError as exc:
            raise exc.in_context(f"{key}: ") from None
        done = []
        old_rid = (before.get("hostwinds") or {}).get("rid")
        if old_rid is not None and norm(old_rid) != norm(order.rid):
            inst = self._resize(key, sid, inst, int(order.rid))
            done.append(f"resized in place to plan rid {order.rid}")
        if inst.get("srvrname") != order.srvrname:
            self._call(key, self.client.edit_instance, sid, order.srvrname)
            inst = {**inst, "srvrname": order.srvrname}
            done.append(f"label {order.srvrname}")
        main = (instance_ips(inst) or [None])[0]
        if before.get("rdns") != order.hostname or before.get("main_ip") != main:
            if str(inst.get("status") or "").lower() != "active" or not main:
                inst = self.wait_until_active(key, sid)
            self._set_rdns(key, inst, order.hostname)
            done.append(f"rDNS {order.hostname}")
        cost = before.get("monthly_cost")
        if cost is None or (old_rid is not None and norm(old_rid) != norm(order.rid)):
            cost = self._monthly_cost(order)
        data = outputs(change.after or {}, inst, order.hostname, cost)
        data["ordered_at"] = before.get("ordered_at") or iso_created(inst)
        return ChangeResult(change=change, data=data, detail=", ".join(done) or "no change")

    def _resize(self, key: ResourceKey, sid: int, inst: dict[str, Any], rid: int) -> dict:
        from penguinctl.providers.hostwinds_resize import resize

        return resize(self, key, sid, inst, rid)

    def _delete(self, change: Change) -> ChangeResult:
        key, before = change.key, change.before or {}
        sid = as_int(before.get("service_id"))
        if sid is None and before.get("srvrname"):
            sid = self._existing(key, str(before["srvrname"]))
        if self.journal is not None:
            self.journal.clear(key)
        if sid is None:
            return ChangeResult(change=change, data=None, detail="no instance: nothing to do")
        try:
            inst = self.client.get_instance(sid)
            if str(inst.get("status") or "").lower() in GONE:
                return ChangeResult(change=change, data=None, detail="already terminated")
            if truthy(inst.get("locked")):
                raise self._locked(key, sid)
            self.client.terminate(sid)
        except HostwindsInvalidService:
            return ChangeResult(change=change, data=None, detail="already gone")
        except HostwindsLocked:
            raise self._locked(key, sid) from None
        except HostwindsError as exc:
            raise exc.in_context(f"{key}: ") from None
        return ChangeResult(change=change, data=None, detail=f"terminated service {sid}")

    # -- reading ----------------------------------------------------------------------------------
    def read_recorded(
        self, items: dict[ResourceKey, dict[str, Any]]
    ) -> dict[ResourceKey, dict[str, Any]]:
        """Live data of recorded servers (``items``: key -> recorded data), from one
        ``get_instances`` call: the recorded data with live ``status``, ``ips``, ``main_ip`` and
        ``srvrname``. Servers whose instance is gone are absent (terminated outside)."""
        if not items:
            return {}
        try:
            instances = self.client.get_instances()
        except HostwindsError as exc:
            raise exc.in_context(f"{self.name}: reading servers: ") from None
        by_id = {as_int(i.get("serviceid")): i for i in instances}
        out: dict[ResourceKey, dict[str, Any]] = {}
        for key, data in items.items():
            sid = as_int(data.get("service_id"))
            if sid is not None:
                inst = by_id.get(sid)
            else:
                named = [i for i in instances if i.get("srvrname") == data.get("srvrname")]
                inst = named[0] if len(named) == 1 else None
            if inst is None or str(inst.get("status") or "").lower() in GONE:
                continue
            ips = instance_ips(inst)
            out[key] = {
                **data,
                "service_id": as_int(inst.get("serviceid")),
                "status": str(inst.get("status") or "").lower(),
                "ips": ips,
                "main_ip": ips[0] if ips else None,
                "srvrname": inst.get("srvrname"),
            }
        return out

    # -- helpers ----------------------------------------------------------------------------------
    def _call(self, key: ResourceKey, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except HostwindsError as exc:
            raise exc.in_context(f"{key}: ") from None

    def _existing(self, key: ResourceKey, srvrname: str) -> int | None:
        """The service id of the one live instance labelled exactly ``srvrname``, or None."""
        ids: list[int] = []
        for page in range(1, MAX_SEARCH_PAGES + 1):
            items = self._call(
                key,
                lambda p: self.client.get_instance_ids(search=srvrname, page=p, limit=SEARCH_LIMIT),
                page,
            )
            for item in items:
                sid = as_int(item.get("id", item.get("serviceid")))
                if item.get("srvrname") == srvrname and sid is not None and sid not in ids:
                    ids.append(sid)
            if len(items) < SEARCH_LIMIT:
                break
        if not ids:  # what ``search`` matches is undocumented: confirm a miss on the full list
            for inst in self._call(key, self.client.get_instances):
                sid = as_int(inst.get("serviceid"))
                status = str(inst.get("status") or "").lower()
                if inst.get("srvrname") == srvrname and sid is not None and status not in GONE:
                    ids.append(sid)
        if len(ids) > 1:  # labelled twice: one may be a terminated leftover
            ids = [sid for sid in ids if self._alive(key, sid)]
        if len(ids) > 1:
            raise ProviderError(
                f"{key}: {len(ids)} Hostwinds instances are labelled {srvrname} "
                f"(services {', '.join(map(str, ids))}); penguinctl cannot tell which is its own",
                hint="terminate or relabel the extra ones in the Hostwinds portal, then re-run",
            )
        return ids[0] if ids else None

    def _alive(self, key: ResourceKey, sid: int) -> bool:
        try:
            inst = self.client.get_instance(sid)
        except HostwindsInvalidService:
            return False
        except HostwindsError as exc:
            raise exc.in_context(f"{key}: ") from None
        return str(inst.get("status") or "").lower() not in GONE

    def _set_rdns(self, key: ResourceKey, inst: dict[str, Any], hostname: str) -> None:
        sid, ip = as_int(inst.get("serviceid")), instance_ips(inst)[0]
        self._call(key, self.client.set_rdns, sid, ip, hostname)

    def _rdns_confirmed(self, key: ResourceKey, inst: dict[str, Any], hostname: str) -> bool:
        """Does Hostwinds say the main IP's rDNS is ``hostname`` already? Only when an item of
        ``get_instance_ips`` carries it (undocumented); otherwise no, and it is set again."""
        sid, main = as_int(inst.get("serviceid")), instance_ips(inst)[0]
        try:
            items = self.client.get_instance_ips(sid)
        except HostwindsApiError:
            return False
        except HostwindsError as exc:
            raise exc.in_context(f"{key}: ") from None
        for item in items:
            if item.get("ip") == main:
                value = item.get("rdns") or item.get("ptr")
                return isinstance(value, str) and value.rstrip(".").lower() == hostname
        return False

    def _monthly_cost(self, order: ServerOrder) -> float | None:
        """The plan's price for the billing cycle, per month; None when unknown."""
        months = MONTHS.get(order.billingcycle)
        if months is None:
            return None
        with self._lock:
            prices = self._prices
        if prices is None:
            try:
                prices = self.client.get_price_list()
            except HostwindsError as exc:
                log.warning("hostwinds: no price list (%s); monthly_cost left empty", exc.message)
                return None
            with self._lock:
                self._prices = prices
        for plan in prices:
            if as_int(plan.get("rid")) == order.rid:
                try:
                    return round(float(plan[order.billingcycle]) / months, 2)
                except (KeyError, TypeError, ValueError):
                    return None
        return None

    def _stamp(self) -> str:
        return self._now().astimezone(UTC).isoformat(timespec="seconds")

    def _pending(
        self, key: ResourceKey, order: ServerOrder, intent: dict[str, Any]
    ) -> ProviderError:
        """The error for an order recorded in the journal whose instance cannot be found."""
        at = str(intent.get("ordered_at") or "an unknown time")
        try:
            age = self._now() - datetime.fromisoformat(at)
        except (TypeError, ValueError):
            age = timedelta.max
        if age < timedelta(seconds=self.order_grace):
            return ProviderError(
                f"{key}: server {key.name} was ordered at {at} and is not visible yet: "
                "re-run apply in a few minutes",
                hint=f"Hostwinds lists a new instance minutes after the order; penguinctl "
                f"finds it by its label {order.srvrname} and never orders twice",
            )
        return ProviderError(
            f"{key}: server {key.name} was ordered at {at} but no Hostwinds instance is "
            f"labelled {order.srvrname}: the order seems lost",
            hint="check the Hostwinds portal for an instance or invoice from that time; if "
            f"nothing was created, run `penguinctl server forget-order {key.name}`, then apply "
            "again (that orders a new server)",
        )

    @staticmethod
    def _gone(key: ResourceKey, srvrname: str, sid: int | None = None) -> ProviderError:
        which = f"service {sid}" if sid is not None else f"label {srvrname}"
        return ProviderError(
            f"{key}: the Hostwinds instance ({which}) no longer exists: it was terminated "
            "outside penguinctl",
            hint="remove the server from the spec and apply (that forgets it), then add it back "
            "to order a new one",
        )

    @staticmethod
    def _locked(key: ResourceKey, sid: int) -> ProviderError:
        return ProviderError(
            f"{key}: Hostwinds instance {sid} is locked and cannot be terminated",
            hint="unlock it in the Hostwinds portal (Toggle Lock) if it really must go, then "
            "re-run",
        )
