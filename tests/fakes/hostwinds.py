"""A stateful local HTTP double of the Hostwinds Cloud API (``api.php``) on 127.0.0.1.

Served by ``http.server.ThreadingHTTPServer`` on an ephemeral port at ``/cloud/api.php``; every
call is a form-encoded POST with ``action`` and the key in ``API``, as documented
(/work/shared/spec/hostwinds.md). What it does like Hostwinds:

- a wrong or missing key: HTTP 401 ``[{"result": "error", "message": "Not Authorized!"}]``;
- failures are HTTP 200 with an array of ``{result: "error", action, message, ERROR?}``;
- ``add_instance`` (R ``template``, ``rid``, ``location_id``; O ``srvrname``, ``billingcycle``,
  ``qty``) answers the two documented result items ("Invoice Paid", "Server is being
  Created!") and no service id; an unknown location id is "Location Id is invalid." (ERROR
  342432, the documented example), ``billingcycle=hourly`` is "Hourly products are disabled!";
- an instance is ``building`` until it has been polled ``build_polls`` times with
  ``get_instance``, then ``active``; its ``main_ip`` comes from 192.0.2.0/24, then
  198.51.100.0/24; instance objects carry the documented fields, ``password`` included;
- ``get_instances`` and ``get_instance_ids`` (``search`` on srvrname/hostname, ``page``,
  ``limit``, ``location_id``) answer a bare array or ``{"success": [...]}`` (``list_shape``);
- ``get_instance``/``set_rdns``/``edit_instance``/``terminate``/``get_instance_ips`` with an
  unknown service id: "A valid serviceid is required."; ``set_rdns`` stores the name per IP
  (the IP must be the instance's, the instance active); ``edit_instance`` and ``terminate``
  refuse a locked instance; a terminated instance is gone from every list;
- ``get_price_list``: ``{"success": {"<id>": price object}}`` with ``rid`` 1..n, prices as
  strings; ``toggle_lock``; ``check_serviceid``.

Messages not given by the docs (locked instance, IP not on the instance, instance not active,
unknown rid) are illustrative.

Knobs: ``build_polls``, ``list_shape`` ("bare" | "wrapped"), ``locations``, ``plans``,
``secondary_ips`` (extra addresses per new instance), ``inject(...)`` (answer the next matching
calls with a status, or delay them: a timeout for a client with a short timeout, before or after
doing the work), ``requests`` (what was asked, without the key), ``count(action)``,
``add_instance_calls``, ``orders``, ``writes()``, and out-of-band helpers ``create_instance``,
``set_state``, ``remove``.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from fakes.loopback import LoopbackHttpDouble

PATH = "/cloud/api.php"
READ_ACTIONS = frozenset(
    {
        "get_instance",
        "get_instances",
        "get_instance_ids",
        "get_instance_ips",
        "get_price_list",
        "check_serviceid",
    }
)
CYCLES = ("monthly", "quarterly", "semiannually", "annually", "biennially", "triennially")
MONTHS = dict(zip(CYCLES, (1, 3, 6, 12, 24, 36), strict=True))
DEFAULT_PLANS = (
    ("1 CPU / 1 GB", 1, 1, 30, 4.99),
    ("1 CPU / 2 GB", 1, 2, 50, 9.99),
    ("2 CPU / 4 GB", 2, 4, 75, 19.99),
    ("4 CPU / 8 GB", 4, 8, 150, 39.99),
)
HUMAN = {
    "add_instance": "Add Instance",
    "get_instance": "Get Instance",
    "get_instances": "Get Instances",
    "get_instance_ids": "Get Instance IDs",
    "get_instance_ips": "Get Instance IPs",
    "set_rdns": "Set rDNS",
    "edit_instance": "Edit Instance",
    "terminate": "Terminate",
    "get_price_list": "Get Price List",
    "toggle_lock": "Toggle Lock",
    "check_serviceid": "Check Service ID",
}


@dataclass
class Seen:
    action: str
    params: dict[str, str]  # the form without API
    status: int = 0


@dataclass
class Injection:
    status: int | None  # None: answer normally (after ``delay``)
    action: str | None = None
    times: int = 1
    delay: float = 0.0
    process_first: bool = False  # with a delay: do the work, then answer late
    body: Any = None


class ApiError(Exception):
    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message, self.code = message, code


def _pool() -> itertools.chain[ipaddress.IPv4Address]:
    return itertools.chain(
        ipaddress.ip_network("192.0.2.0/24").hosts(),
        ipaddress.ip_network("198.51.100.0/24").hosts(),
    )


class FakeHostwinds(LoopbackHttpDouble):
    url_path = PATH

    def __init__(
        self,
        *,
        api_key: str,
        build_polls: int = 2,
        list_shape: str = "bare",
        locations: tuple[int, ...] = (1, 2, 3),
        plans: tuple[tuple[str, int, int, int, float], ...] = DEFAULT_PLANS,
        secondary_ips: int = 0,
    ) -> None:
        if list_shape not in ("bare", "wrapped"):
            raise ValueError("list_shape is 'bare' or 'wrapped'")
        self.api_key = api_key
        self.build_polls = build_polls
        self.list_shape = list_shape
        self.locations = locations
        self.plans = plans
        self.secondary_ips = secondary_ips
        self.instances: dict[int, dict[str, Any]] = {}
        self.rdns: dict[str, str] = {}  # ip -> name
        self.requests: list[Seen] = []
        self.injections: list[Injection] = []
        self._processed: dict[str, int] = {}  # action -> calls processed
        self._orders = 0
        self.upgrade_orders: dict[int, dict[str, Any]] = {}  # service id -> pending order
        self._polls: dict[int, int] = {}  # service id -> get_instance polls still "building"
        self._ids = itertools.count(70001)
        self._invoices = itertools.count(510001)
        self._ips = _pool()
        self._lock = threading.RLock()
        self._serve(_Handler, _Server)

    # -- test helpers ---------------------------------------------------------------------------
    def inject(self, status: int | None, **kw: Any) -> None:
        """Answer the next ``times`` calls (of ``action``, or any) with ``status`` (and
        ``body``), or with ``status=None`` answer normally after ``delay`` seconds."""
        with self._lock:
            self.injections.append(Injection(status, **kw))

    def count(self, action: str) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.action == action)

    @property
    def add_instance_calls(self) -> int:
        """``add_instance`` calls the API processed (authorised, not answered by an injected
        failure), whether it accepted the order or answered an error."""
        with self._lock:
            return self._processed.get("add_instance", 0)

    @property
    def orders(self) -> int:
        """Orders accepted (each creates ``qty`` instances and pays an invoice)."""
        with self._lock:
            return self._orders

    def writes(self) -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if r.action not in READ_ACTIONS]

    def by_srvrname(self, srvrname: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(i) for i in self.instances.values() if i["srvrname"] == srvrname]

    def create_instance(self, srvrname: str, *, status: str = "active", **fields: Any) -> int:
        """An instance made outside penguinctl (or by an order answered too late)."""
        with self._lock:
            inst = self._new_instance(
                template="ubuntu-22.04", rid=1, location_id=1, srvrname=srvrname, cycle="monthly"
            )
            fields.setdefault("disp_status", status.capitalize())
            inst.update(status=status, **fields)
            self._polls[inst["serviceid"]] = 0 if status == "active" else self.build_polls
            return inst["serviceid"]

    def set_state(self, serviceid: int, **fields: Any) -> None:
        """Change an instance out of band (status, disp_status, locked, srvrname, main_ip...)."""
        with self._lock:
            self.instances[serviceid].update(fields)
            if "status" in fields:
                self._polls[serviceid] = 0

    def remove(self, serviceid: int) -> None:
        """Terminated outside penguinctl."""
        with self._lock:
            del self.instances[serviceid]

    # -- actions ----------------------------------------------------------------------------------
    def handle(self, action: str, form: dict[str, str]) -> Any:
        with self._lock:
            self._processed[action] = self._processed.get(action, 0) + 1
            handler = getattr(self, f"_a_{action}", None)
            if handler is None:
                raise ApiError("Invalid action.")
            return handler(form)

    def _wrap(self, items: list[dict[str, Any]]) -> Any:
        return items if self.list_shape == "bare" else {"success": items}

    def _instance(self, form: dict[str, str]) -> dict[str, Any]:
        try:
            inst = self.instances.get(int(form.get("serviceid", "")))
        except ValueError:
            inst = None
        if inst is None:
            raise ApiError("A valid serviceid is required.")
        return inst

    def _new_instance(
        self, *, template: str, rid: int, location_id: int, srvrname: str, cycle: str
    ) -> dict[str, Any]:
        sid = next(self._ids)
        main = str(next(self._ips))
        extra = [str(next(self._ips)) for _ in range(self.secondary_ips)]
        now = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
        plan = self.plans[rid - 1]
        inst = {
            "serviceid": sid,
            "userid": 4242,
            "location_id": location_id,
            "server_uuid": str(uuid.uuid4()),
            "volume_uuid": None,
            "password": f"root-Pw-{uuid.uuid4().hex[:12]}",
            "port_uuid": str(uuid.uuid4()),
            "main_ip": main,
            "private_ip": f"10.0.{sid % 250}.{sid % 200 + 2}",
            "ips": [main, *extra],
            "upgrade_available": 0,
            "is_suspended": 0,
            "configkey": "cloud",
            "ssh_keys": [],
            "hourly": 0,
            "bandwidth": 2000,
            "pswd_changed": now,
            "srvrname": srvrname,
            "template_uuid": template,
            "app_id": None,
            "locked": 0,
            "hostname": f"hwsrv-{sid}.hostwindsdns.com",
            "product_id": 100 + rid,
            "billingcycle": cycle.capitalize(),
            "product_name": f"Unmanaged Linux - {plan[0]}",
            "disk_type": "ssd",
            "upgrade_ram": "0",
            "upgrade_cpu": "0",
            "upgrade_disk": "0",
            "bandwidth_used": 0,
            "mac_address": "fa:16:3e:" + sid.to_bytes(3, "big").hex(":"),
            "status": "building",
            "disp_status": "Building",
            "image": {"name": template},
            "ip_v6": f"2001:db8::{sid:x}",
            "flavor": {"ram": plan[2] * 1024, "vcpus": plan[1], "disk": plan[3]},
            "vm_state": "building",
            "task_state": "spawning",
            "image_ref": template,
            "ram": plan[2] * 1024,
            "cpu": plan[1],
            "disk": plan[3],
            "created_at": now,
            "name": srvrname,
            "launched_at": None,
            "updated_at": now,
            "power_state": 0,
            "host": "hv-dal-07",
        }
        self.instances[sid] = inst
        self._polls[sid] = self.build_polls
        return inst

    def _a_add_instance(self, form: dict[str, str]) -> Any:
        for name in ("template", "rid", "location_id"):
            if not form.get(name):
                raise ApiError(f"{name} is required.")
        try:
            location_id = int(form["location_id"])
        except ValueError:
            location_id = -1
        if location_id not in self.locations:
            raise ApiError("Location Id is invalid.", "342432")
        try:
            rid = int(form["rid"])
        except ValueError:
            rid = 0
        if not 1 <= rid <= len(self.plans):
            raise ApiError("Invalid resource id (rid).")
        cycle = form.get("billingcycle", "monthly").lower()
        if cycle == "hourly":
            raise ApiError("Hourly products are disabled! Please contact customer service.")
        if cycle not in CYCLES:
            raise ApiError("Invalid billing cycle.")
        for _ in range(max(1, int(form.get("qty") or 1))):
            self._new_instance(
                template=form["template"],
                rid=rid,
                location_id=location_id,
                srvrname=form.get("srvrname") or f"Server#{len(self.instances) + 1}",
                cycle=cycle,
            )
        self._orders += 1
        invoice = next(self._invoices)
        return [
            {
                "result": "success",
                "action": "Invoice Paid",
                "message": f"Invoice #{invoice} has been paid.",
            },
            {"result": "success", "action": "Add Instance", "message": "Server is being Created!"},
        ]

    def _a_get_instance(self, form: dict[str, str]) -> Any:
        inst = self._instance(form)
        sid = inst["serviceid"]
        if inst["status"] == "building":
            self._polls[sid] -= 1
            if self._polls[sid] <= 0:
                inst.update(
                    status="active",
                    disp_status="Active",
                    vm_state="active",
                    task_state=None,
                    power_state=1,
                    launched_at=time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
                )
        return dict(inst)

    def _a_get_instances(self, form: dict[str, str]) -> Any:
        return self._wrap([dict(i) for i in self.instances.values()])

    def _a_get_instance_ids(self, form: dict[str, str]) -> Any:
        found = list(self.instances.values())
        search = form.get("search", "").lower()
        if search:
            found = [i for i in found if search in i["srvrname"].lower() or search in i["hostname"]]
        if form.get("location_id"):
            found = [i for i in found if str(i["location_id"]) == form["location_id"]]
        if form.get("limit"):
            limit = max(1, int(form["limit"]))
            page = max(1, int(form.get("page") or 1))
            found = found[(page - 1) * limit : page * limit]
        items = [
            {
                "id": i["serviceid"],
                "hostname": i["hostname"],
                "srvrname": i["srvrname"],
                "ips": ",".join(i["ips"]),
                "dedicatedip": i["main_ip"],
                "ip_v6": i["ip_v6"],
            }
            for i in found
        ]
        return self._wrap(items)

    def _a_get_instance_ips(self, form: dict[str, str]) -> Any:
        inst = self._instance(form)
        return {
            "success": [
                {
                    "ip": ip,
                    "type": "main" if ip == inst["main_ip"] else "secondary",
                    "rdns": self.rdns.get(ip),
                }
                for ip in inst["ips"]
            ]
        }

    def _a_check_serviceid(self, form: dict[str, str]) -> Any:
        self._instance(form)
        return {"success": True}

    def _a_set_rdns(self, form: dict[str, str]) -> Any:
        inst = self._instance(form)
        ip, name = form.get("ip", ""), form.get("rdns") or form.get("rdata") or ""
        if ip not in inst["ips"]:
            raise ApiError("The IP address does not belong to this service.")
        if inst["status"] != "active":
            raise ApiError("The instance is not active yet.")
        if not name:
            raise ApiError("rdns is required.")
        self.rdns[ip] = name
        return [{"result": "success", "action": "Set rDNS", "message": "rDNS record updated."}]

    def _a_edit_instance(self, form: dict[str, str]) -> Any:
        inst = self._instance(form)
        if not form.get("srvrname"):
            raise ApiError("srvrname is required.")
        if inst["locked"]:
            raise ApiError("This service is locked and cannot be modified.", "5529903")
        inst["srvrname"] = form["srvrname"]
        return [
            {
                "result": "success",
                "action": "Edit Instance",
                "message": "Instance server name has been updated",
            }
        ]

    def _a_terminate(self, form: dict[str, str]) -> Any:
        inst = self._instance(form)
        if inst["locked"]:
            raise ApiError("This service is locked and cannot be deleted.", "5529903")
        del self.instances[inst["serviceid"]]
        for ip in inst["ips"]:
            self.rdns.pop(ip, None)
        return [{"result": "success", "message": "Instance deleted"}]

    # -- in-place upgrades (spec 1.3: check_upgrade_order, upgrade_instance, check_upgrade_reboot,
    # upgrade_server, confirm_upgrade). An order's invoice is paid at once here; the disk cannot
    # shrink (a smaller plan is refused); upgrade_server leaves the instance RESIZED until
    # confirm_upgrade.
    def _a_check_upgrade_order(self, form: dict[str, str]) -> Any:
        inst = self._instance(form)
        order = self.upgrade_orders.get(inst["serviceid"])
        if order is None:
            raise ApiError("No pending upgrade order found.")
        return {"success": {k: order[k] for k in ("id", "orderid", "invoiceid", "duedate",
                                                   "total")}}  # fmt: skip

    def _a_upgrade_instance(self, form: dict[str, str]) -> Any:
        inst = self._instance(form)
        sid = inst["serviceid"]
        if sid in self.upgrade_orders:
            raise ApiError("There is already a pending upgrade order for this service.")
        try:
            rid = int(form.get("rid", ""))
        except ValueError:
            rid = 0
        if not 1 <= rid <= len(self.plans):
            raise ApiError("Invalid resource id (rid).")
        if self.plans[rid - 1][3] < inst["disk"]:
            raise ApiError("Disk size cannot be downgraded.")
        invoice = next(self._invoices)
        self.upgrade_orders[sid] = {
            "id": invoice, "orderid": invoice + 7, "invoiceid": invoice,
            "duedate": "2026-12-31", "total": "0.00", "rid": rid,
        }  # fmt: skip
        return [{"result": "success", "action": "Upgrade Instance",
                 "message": f"Invoice #{invoice} has been paid."}]  # fmt: skip

    def _a_check_upgrade_reboot(self, form: dict[str, str]) -> Any:
        self._instance(form)
        return {"success": True}

    def _a_upgrade_server(self, form: dict[str, str]) -> Any:
        inst = self._instance(form)
        order = self.upgrade_orders.pop(inst["serviceid"], None)
        if order is None:
            raise ApiError("No paid upgrade order for this service.")
        name, cpu, ram, disk, _ = self.plans[order["rid"] - 1]
        inst.update(cpu=cpu, ram=ram * 1024, disk=disk, product_id=100 + order["rid"],
                    product_name=f"Unmanaged Linux - {name}", status="RESIZED",
                    flavor={"ram": ram * 1024, "vcpus": cpu, "disk": disk})  # fmt: skip
        return [{"result": "success", "action": "Upgrade Server", "message": "Resizing."}]

    def _a_confirm_upgrade(self, form: dict[str, str]) -> Any:
        inst = self._instance(form)
        if str(inst["status"]).upper() != "RESIZED":
            raise ApiError("The instance is not awaiting a resize confirmation.")
        inst["status"] = "active"
        return [{"result": "success", "action": "Confirm Upgrade", "message": "Confirmed."}]

    def _a_toggle_lock(self, form: dict[str, str]) -> Any:
        if not form.get("serviceid"):
            raise ApiError("Service Id is required.", "5529903")
        inst = self._instance(form)
        inst["locked"] = 0 if inst["locked"] else 1
        word = "locked" if inst["locked"] else "unlocked"
        return [
            {"result": "success", "action": "Toggle Lock", "message": f"Service has been {word}."}
        ]

    def _a_get_price_list(self, form: dict[str, str]) -> Any:
        out = {}
        for n, (name, cpu, ram, disk, monthly) in enumerate(self.plans, start=1):
            prices = {
                cycle: f"{monthly * months * (0.9 if months >= 12 else 1):.2f}"
                for cycle, months in MONTHS.items()
            }
            out[str(900 + n)] = {
                "id": 900 + n,
                "name": name,
                "ram": str(ram),
                "cpu": str(cpu),
                "disk": str(disk),
                "bandwidth": "2000",
                **prices,
                "mysort": n,
                "current": 0,
                "promo": {},
                "percent": 0,
                "rid": n,
                "mtotal": prices["monthly"],
                "cycles": {c: prices[c] for c in CYCLES},
                "firsts": [],
                "resource": None,
            }
        return {"success": out}


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:  # quiet: a client that
        pass  # timed out and hung up is expected here


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    wbufsize = -1
    server: ThreadingHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, payload: Any) -> None:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        ctype = "text/html" if isinstance(payload, bytes) else "application/json"
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        self._send(405, b"<html><body>405 Method Not Allowed</body></html>")

    def do_POST(self) -> None:
        fake: FakeHostwinds = self.server.fake  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        form = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        key = form.pop("API", None)
        action = form.get("action", "")
        form.pop("action", None)
        seen = Seen(action, form)
        with fake._lock:
            fake.requests.append(seen)
        if self.path.split("?")[0] != PATH:
            seen.status = 404
            return self._send(404, b"<html><body>404 Not Found</body></html>")
        inj = self._injection(fake, action)
        if inj is not None and inj.status is not None:
            time.sleep(inj.delay)
            seen.status = inj.status
            body = inj.body
            if body is None:
                body = f"<html><body>{inj.status} Service Unavailable</body></html>".encode()
            return self._send(inj.status, body)
        if inj is not None and not inj.process_first:
            time.sleep(inj.delay)
        if key != fake.api_key:
            seen.status = 401
            return self._send(401, [{"result": "error", "message": "Not Authorized!"}])
        try:
            result = fake.handle(action, form)
        except ApiError as exc:
            item = {"result": "error", "action": HUMAN.get(action, action), "message": exc.message}
            if exc.code:
                item["ERROR"] = exc.code
            result = [item]
        if inj is not None and inj.process_first:
            time.sleep(inj.delay)
        seen.status = 200
        self._send(200, result)

    @staticmethod
    def _injection(fake: FakeHostwinds, action: str) -> Injection | None:
        with fake._lock:
            for inj in fake.injections:
                if inj.action in (None, action):
                    inj.times -= 1
                    if inj.times <= 0:
                        fake.injections.remove(inj)
                    return inj
        return None
