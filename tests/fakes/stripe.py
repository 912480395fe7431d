"""A stateful local double of the Stripe API (v1, the parts penguinctl bills with) on 127.0.0.1.

Written from Stripe's documented objects and rules (/work/shared/spec/billing-compliance.md,
"Stripe API facts for invoicing"); the official ``stripe`` library runs against it unmodified
through ``base_addresses={"api": fake.url}`` or ``stripe.api_base``. Like Stripe:

- requests are ``application/x-www-form-urlencoded`` with bracketed keys (``metadata[k]=v``,
  ``period[start]=1``, ``expand[0]=x``); answers are JSON objects with ``object`` and ``id``;
  errors are ``{"error": {"type", "code"?, "message", "param"?}}`` with the documented status
  (400 invalid_request_error, 401 no/wrong key, 402 card_error, 404 resource_missing);
- ``Authorization: Bearer <key>`` must be the double's key;
- ``Idempotency-Key`` on a POST (https://docs.stripe.com/api/idempotent_requests): once the
  endpoint has started executing, its answer (status and body, success or error, a business-rule
  400 such as ``invoice_already_paid`` and a 500 included) is saved and replayed for the same key
  with the same method, path and parameters (header ``Idempotent-Replayed: true``); the same key
  with other parameters is a 400 ``idempotency_error``. Nothing is saved when the parameters fail
  validation (``parameter_missing``, ``parameter_invalid_integer``, an invalid enum value) or
  authentication fails (401): those may be retried with the key. A request whose key is still in
  flight in another request gets 409 ``idempotency_key_in_use`` (nothing saved; the library
  retries 409 with backoff). ``pause(suffix)`` holds the next POST whose path ends with
  ``suffix`` mid-execution, so a test can send the same key concurrently;
- API versions (``Stripe-Version``): before 2025-03-31 (basil) an invoice has ``paid`` (true
  once paid, out of band too) and ``paid_out_of_band``; basil removed both (read ``status``),
  and the library pins a later version, so by default neither is present;
- ``POST /v1/customers`` (email, name, description, metadata), ``GET /v1/customers/{id}``;
- ``POST /v1/invoices`` (customer required; currency, collection_method, auto_advance,
  pending_invoice_items_behavior, description, metadata, days_until_due) -> ``draft``;
  ``GET /v1/invoices/{id}``, ``GET /v1/invoices?customer=&status=&limit=&starting_after=``;
- ``POST /v1/invoiceitems`` (customer, amount, currency required; invoice must be a draft of that
  customer; description, period[start|end], metadata), ``GET /v1/invoiceitems?invoice=``;
- ``POST /v1/invoices/{id}/finalize``: draft -> open with a number (a zero total -> paid);
- ``POST /v1/invoices/{id}/pay``: open -> paid, or 402 ``card_declined`` when the customer's card
  declines (``decline(customer)``; ``attempt_count`` and ``attempted`` are updated);
  paying a paid invoice is a 400 ``invoice_already_paid`` error (Stripe's code), paying a void or
  uncollectible one a 400 ``invoice_not_open``;
- ``POST /v1/invoices/{id}/void`` (open or uncollectible -> void) and
  ``POST /v1/invoices/{id}/mark_uncollectible`` (open -> uncollectible).

Out of band: ``decline(customer_id, True|False)``, ``mark_paid(invoice_id)`` (the customer paid,
e.g. Stripe's own retry), ``requests`` (method, path, idempotency key, replayed),
``posts()`` (POSTs that did work, replays excluded), ``invoices``, ``customers``, ``items``.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fakes.loopback import LoopbackHttpDouble

BASIL = "2025-03-31"  # the API version that removed Invoice.paid and paid_out_of_band
CURRENT_VERSION = "2026-10-28.endive"  # the account's default when a request names none


def _error(message: str, type_: str = "invalid_request_error", **extra: Any) -> dict[str, Any]:
    return {"error": {"type": type_, "message": message, **extra}}


class StripeHttpError(Exception):
    """An error answer. ``validation``: the parameters failed validation before the endpoint
    started, so no idempotent result is saved (Stripe's rule)."""

    def __init__(
        self, status: int, type_: str, message: str, *, validation: bool = False, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.validation = validation
        self.body = {"error": {"type": type_, "message": message, **extra}}


class Pause:
    """Holds one request mid-execution: ``reached`` is set when it gets there, ``release()``
    lets it finish."""

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix
        self.reached = threading.Event()
        self._go = threading.Event()

    def release(self) -> None:
        self._go.set()

    def wait(self, timeout: float = 60.0) -> None:
        self.reached.set()
        if not self._go.wait(timeout):
            raise RuntimeError(f"paused request {self.suffix} was never released")


def nest(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """``a[b][c]=v`` form pairs -> nested dicts; numeric indexes become lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists(root)


def _lists(node: Any) -> Any:
    if isinstance(node, dict):
        node = {k: _lists(v) for k, v in node.items()}
        if node and all(k.isdigit() for k in node):
            return [node[k] for k in sorted(node, key=int)]
    return node


def _int(params: dict[str, Any], name: str, *, required: bool = False) -> int | None:
    value = params.get(name)
    if value is None:
        if required:
            raise StripeHttpError(
                400,
                "invalid_request_error",
                f"Missing required param: {name}.",
                validation=True,
                code="parameter_missing",
                param=name,
            )
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StripeHttpError(
            400,
            "invalid_request_error",
            f"Invalid integer: {value}",
            validation=True,
            code="parameter_invalid_integer",
            param=name,
        ) from None


def _bool(value: Any, default: bool) -> bool:
    return default if value is None else str(value).lower() == "true"


class FakeStripe(LoopbackHttpDouble):
    def __init__(self, api_key: str = "sk_test_penguinctl") -> None:
        self.api_key = api_key
        self.lock = threading.Lock()
        self.customers: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.items: dict[str, dict[str, Any]] = {}
        self.declining: set[str] = set()
        self.requests: list[dict[str, Any]] = []
        self._saved: dict[str, tuple[tuple[Any, ...], int, dict[str, Any]]] = {}
        self._in_flight: set[str] = set()
        self._pauses: list[Pause] = []
        self.version = CURRENT_VERSION  # of the request being handled (Stripe-Version)
        self._ids = itertools.count(1)
        self._numbers = itertools.count(1)
        self._serve(_Handler)

    # -- out of band --------------------------------------------------------------------------
    def decline(self, customer: str, declining: bool = True) -> None:
        with self.lock:
            (self.declining.add if declining else self.declining.discard)(customer)

    def mark_paid(self, invoice_id: str) -> None:
        with self.lock:
            inv = self.invoices[invoice_id]
            self._paid(inv, out_of_band=True)

    def posts(self) -> list[dict[str, Any]]:
        """POSTs that did work: replays and 409 answers excluded."""
        return [
            r
            for r in self.requests
            if r["method"] == "POST" and not r["replayed"] and r.get("status") != 409
        ]

    def pause(self, suffix: str) -> Pause:
        """Hold the next POST whose path ends with ``suffix`` once its key is in flight."""
        held = Pause(suffix)
        with self.lock:
            self._pauses.append(held)
        return held

    def _take_pause(self, path: str) -> Pause | None:
        for held in self._pauses:
            if path.endswith(held.suffix):
                self._pauses.remove(held)
                return held
        return None

    # -- helpers ------------------------------------------------------------------------------
    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):014d}"

    def _paid(self, inv: dict[str, Any], *, out_of_band: bool = False) -> None:
        inv["_paid_out_of_band"] = out_of_band
        inv["status"] = "paid"
        inv["amount_paid"] = inv["amount_due"]
        inv["amount_remaining"] = 0
        inv["status_transitions"]["paid_at"] = int(time.time())

    def _customer(self, cid: Any, param: str = "customer") -> dict[str, Any]:
        if cid not in self.customers:
            raise StripeHttpError(
                400 if param else 404,
                "invalid_request_error",
                f"No such customer: '{cid}'",
                code="resource_missing",
                param=param or "id",
            )
        return self.customers[cid]

    def _invoice(self, iid: str, param: str | None = None) -> dict[str, Any]:
        if iid not in self.invoices:
            raise StripeHttpError(
                400 if param else 404,
                "invalid_request_error",
                f"No such invoice: '{iid}'",
                code="resource_missing",
                param=param or "id",
            )
        return self.invoices[iid]

    def _totals(self, inv: dict[str, Any]) -> None:
        data = [self.items[i] for i in inv["_items"]]
        total = sum(i["amount"] for i in data)
        inv.update(subtotal=total, total=total, amount_due=total, amount_remaining=total)
        inv["lines"] = {
            "object": "list",
            "data": [self._line(i) for i in data],
            "has_more": False,
            "total_count": len(data),
            "url": f"/v1/invoices/{inv['id']}/lines",
        }

    @staticmethod
    def _line(item: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"il_{item['id']}",
            "object": "line_item",
            "amount": item["amount"],
            "currency": item["currency"],
            "description": item["description"],
            "invoice": item["invoice"],
            "metadata": item["metadata"],
            "period": item["period"],
        }

    def _public(self, obj: dict[str, Any]) -> dict[str, Any]:
        public = {k: v for k, v in obj.items() if not k.startswith("_")}
        if obj.get("object") == "invoice" and self.version < BASIL:
            public["paid"] = obj["status"] == "paid"
            public["paid_out_of_band"] = bool(obj.get("_paid_out_of_band"))
        return public

    @staticmethod
    def _list(url: str, data: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
        after = params.get("starting_after")
        if after:
            ids = [d["id"] for d in data]
            data = data[ids.index(after) + 1 :] if after in ids else []
        limit = max(1, min(100, int(params.get("limit") or 10)))
        return {"object": "list", "url": url, "has_more": len(data) > limit, "data": data[:limit]}

    # -- endpoints ----------------------------------------------------------------------------
    def handle(self, method: str, path: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        now = int(time.time())
        parts = path.strip("/").split("/")
        if parts[:1] != ["v1"]:
            raise StripeHttpError(
                404, "invalid_request_error", f"Unrecognized request URL ({method}: {path})."
            )
        parts = parts[1:]
        if method == "POST" and parts == ["customers"]:
            cid = self._id("cus")
            self.customers[cid] = {
                "id": cid,
                "object": "customer",
                "created": now,
                "livemode": False,
                "email": params.get("email"),
                "name": params.get("name"),
                "description": params.get("description"),
                "metadata": params.get("metadata") or {},
                "currency": None,
                "delinquent": False,
                "balance": 0,
            }
            return 200, self.customers[cid]
        if method == "GET" and len(parts) == 2 and parts[0] == "customers":
            return 200, self._customer(parts[1], param="")
        if method == "POST" and parts == ["invoices"]:
            if "customer" not in params:
                raise StripeHttpError(
                    400,
                    "invalid_request_error",
                    "Missing required param: customer.",
                    validation=True,
                    code="parameter_missing",
                    param="customer",
                )
            customer = self._customer(params.get("customer"))
            method_ = params.get("collection_method", "charge_automatically")
            if method_ not in ("charge_automatically", "send_invoice"):
                raise StripeHttpError(
                    400,
                    "invalid_request_error",
                    f"Invalid collection_method: {method_}",
                    validation=True,
                    param="collection_method",
                )
            iid = self._id("in")
            inv = {
                "id": iid,
                "object": "invoice",
                "created": now,
                "livemode": False,
                "customer": customer["id"],
                "currency": (params.get("currency") or "usd").lower(),
                "collection_method": method_,
                "auto_advance": _bool(params.get("auto_advance"), False),
                "description": params.get("description"),
                "metadata": params.get("metadata") or {},
                "status": "draft",
                "number": None,
                "attempt_count": 0,
                "attempted": False,
                "amount_paid": 0,
                "status_transitions": {
                    "finalized_at": None,
                    "paid_at": None,
                    "voided_at": None,
                    "marked_uncollectible_at": None,
                },
                "_items": [],
            }
            self.invoices[iid] = inv
            self._totals(inv)
            return 200, self._public(inv)
        if method == "GET" and parts == ["invoices"]:
            data = [self._public(i) for i in self.invoices.values()]
            if params.get("customer"):
                data = [i for i in data if i["customer"] == params["customer"]]
            if params.get("status"):
                data = [i for i in data if i["status"] == params["status"]]
            return 200, self._list(
                "/v1/invoices", sorted(data, key=lambda i: i["id"], reverse=True), params
            )
        if len(parts) >= 2 and parts[0] == "invoices":
            inv = self._invoice(parts[1])
            if method == "GET" and len(parts) == 2:
                return 200, self._public(inv)
            if method == "POST" and parts[2:] == ["finalize"]:
                if inv["status"] != "draft":
                    raise StripeHttpError(
                        400,
                        "invalid_request_error",
                        "This invoice is already finalized, you can't re-finalize a "
                        "non-draft invoice.",
                        code="invoice_not_editable",
                    )
                inv["status"] = "open"
                inv["number"] = f"PCTEST-{next(self._numbers):04d}"
                inv["status_transitions"]["finalized_at"] = now
                if "auto_advance" in params:
                    inv["auto_advance"] = _bool(params["auto_advance"], False)
                if inv["amount_due"] == 0:
                    self._paid(inv)
                return 200, self._public(inv)
            if method == "POST" and parts[2:] == ["pay"]:
                if inv["status"] == "paid":
                    raise StripeHttpError(
                        400,
                        "invalid_request_error",
                        "Invoice is already paid",
                        code="invoice_already_paid",
                    )
                if inv["status"] != "open":
                    raise StripeHttpError(
                        400,
                        "invalid_request_error",
                        f"You can only pay an open invoice (this one is {inv['status']}).",
                        code="invoice_not_open",
                    )
                inv["attempt_count"] += 1
                inv["attempted"] = True
                if _bool(params.get("paid_out_of_band"), False):
                    self._paid(inv, out_of_band=True)
                    return 200, self._public(inv)
                if inv["customer"] in self.declining:
                    raise StripeHttpError(
                        402,
                        "card_error",
                        "Your card was declined.",
                        code="card_declined",
                        decline_code="generic_decline",
                    )
                self._paid(inv)
                return 200, self._public(inv)
            if method == "POST" and parts[2:] in (["void"], ["mark_uncollectible"]):
                target = "void" if parts[2] == "void" else "uncollectible"
                allowed = ("open", "uncollectible") if target == "void" else ("open",)
                if inv["status"] not in allowed:
                    raise StripeHttpError(
                        400,
                        "invalid_request_error",
                        f"This invoice is {inv['status']}; it cannot become {target}.",
                        code="invoice_not_open",
                    )
                inv["status"] = target
                key = "voided_at" if target == "void" else "marked_uncollectible_at"
                inv["status_transitions"][key] = now
                return 200, self._public(inv)
        if method == "POST" and parts == ["invoiceitems"]:
            customer = self._customer(params.get("customer"))
            amount = _int(params, "amount", required=True)
            currency = params.get("currency")
            if not currency:
                raise StripeHttpError(
                    400,
                    "invalid_request_error",
                    "Missing required param: currency.",
                    validation=True,
                    code="parameter_missing",
                    param="currency",
                )
            invoice = None
            if params.get("invoice"):
                invoice = self._invoice(params["invoice"], param="invoice")
                if invoice["customer"] != customer["id"]:
                    raise StripeHttpError(
                        400,
                        "invalid_request_error",
                        "The invoice belongs to another customer.",
                        param="invoice",
                    )
                if invoice["status"] != "draft":
                    raise StripeHttpError(
                        400,
                        "invalid_request_error",
                        "You can only add invoice items to draft invoices.",
                        code="invoice_not_editable",
                        param="invoice",
                    )
                if len(invoice["_items"]) >= 250:
                    raise StripeHttpError(
                        400,
                        "invalid_request_error",
                        "An invoice can have at most 250 items.",
                        param="invoice",
                    )
            period = params.get("period") or {}
            iid = self._id("ii")
            item = {
                "id": iid,
                "object": "invoiceitem",
                "livemode": False,
                "date": now,
                "customer": customer["id"],
                "amount": amount,
                "currency": currency.lower(),
                "description": params.get("description"),
                "invoice": invoice["id"] if invoice else None,
                "metadata": params.get("metadata") or {},
                "quantity": 1,
                "period": {
                    "start": int(period.get("start", now)),
                    "end": int(period.get("end", now)),
                },
            }
            self.items[iid] = item
            if invoice is not None:
                invoice["_items"].append(iid)
                self._totals(invoice)
            return 200, item
        if method == "GET" and parts == ["invoiceitems"]:
            data = list(self.items.values())
            for key in ("invoice", "customer"):
                if params.get(key):
                    data = [i for i in data if i[key] == params[key]]
            return 200, self._list(
                "/v1/invoiceitems", sorted(data, key=lambda i: i["id"], reverse=True), params
            )
        raise StripeHttpError(
            404, "invalid_request_error", f"Unrecognized request URL ({method}: {path})."
        )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(
        self, entry: dict[str, Any], status: int, body: dict[str, Any], replayed: bool = False
    ) -> None:
        entry["status"] = status
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("Request-Id", f"req_{time.monotonic_ns()}")
        if replayed:
            self.send_header("Idempotent-Replayed", "true")
        self.end_headers()
        self.wfile.write(raw)

    def _do(self, method: str) -> None:
        fake: FakeStripe = self.server.fake  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        pairs = parse_qsl(url.query if method == "GET" else body, keep_blank_values=True)
        key = self.headers.get("Idempotency-Key") if method == "POST" else None
        version = self.headers.get("Stripe-Version") or CURRENT_VERSION
        entry = {"method": method, "path": url.path, "idempotency_key": key, "replayed": False}
        auth = self.headers.get("Authorization", "")
        fingerprint = (method, url.path, tuple(sorted(pairs)))
        with fake.lock:
            fake.requests.append(entry)
            if auth != f"Bearer {fake.api_key}":
                self._answer(entry, 401, _error("Invalid API Key provided."))
                return
            if key and key in fake._saved:
                saved_fp, status, saved = fake._saved[key]
                if saved_fp != fingerprint:
                    message = (
                        "Keys for idempotent requests can only be used with the same parameters "
                        "they were first used with. Try using a key other than "
                        f"'{key}' if you meant to execute a different request."
                    )
                    self._answer(entry, 400, _error(message, "idempotency_error"))
                    return
                entry["replayed"] = True
                self._answer(entry, status, saved, replayed=True)
                return
            if key and key in fake._in_flight:
                message = (
                    "There is currently another in-progress request using this Idempotent Key "
                    "(that probably means you submitted twice, and the other request is still "
                    f"going through): {key}. Please try again later."
                )
                self._answer(entry, 409, _error(message, code="idempotency_key_in_use"))
                return
            if key:
                fake._in_flight.add(key)
            held = fake._take_pause(url.path) if method == "POST" else None
        try:
            if held is not None:
                held.wait()
            with fake.lock:
                fake.version = version
                try:
                    status, answer = fake.handle(method, url.path, nest(pairs))
                    answer = json.loads(json.dumps(answer))
                    validation = False
                except StripeHttpError as exc:
                    status, answer, validation = exc.status, exc.body, exc.validation
                if key and not validation:
                    fake._saved[key] = (fingerprint, status, answer)
        finally:
            if key:
                with fake.lock:
                    fake._in_flight.discard(key)
        self._answer(entry, status, answer)

    def do_GET(self) -> None:
        self._do("GET")

    def do_POST(self) -> None:
        self._do("POST")

    def do_DELETE(self) -> None:
        self._do("DELETE")
