"""Push invoices to Stripe and bring their payment status back (``billing sync``).

Through the official ``stripe`` library (``StripeClient``), pointed at ``STRIPE_API_BASE`` when
set (a test double, stripe-mock) with ``STRIPE_API_KEY``. For each invoice not yet finalized in
Stripe, in order, each step committed locally before the next:

1. the tenant's Customer (created once; ``billing_accounts.stripe_customer_id``);
2. a draft Invoice (``charge_automatically``, ``auto_advance=false``, pending items excluded),
   first looked up among the customer's invoices by ``metadata.penguinctl_invoice`` so a lost
   answer never makes a second one, even after Stripe has pruned the idempotency key;
3. one InvoiceItem per line (``amount`` in cents, ``period``, ``metadata.line``), skipping
   lines Stripe already has;
4. finalize (draft -> open; the totals must match ours), then a first charge (``pay``): paid,
   or a card error that starts dunning (day 0).

Every POST carries an idempotency key derived from the invoice number and the step
(``penguinctl:INV-2026-07-acme:line:3``), so a retry after a crash or a timeout replays the
first answer instead of doing the work twice; the library's own network retries reuse it.
Then open invoices are retrieved (the webhook-equivalent status sync: paid, void,
uncollectible) and the dunning schedule runs (dunning.py).

How Stripe's answers are treated (https://docs.stripe.com/api/idempotent_requests):

- transient (connection errors, 5xx, 409 ``idempotency_key_in_use`` while another run's request
  with the same key is still executing): the library retries them with backoff and the same
  key; if they persist the invoice is reported and the next run retries with the same key;
- a 4xx answer about the invoice (``invoice_already_paid``, ``invoice_not_open``, ...) is saved
  by Stripe under its key and replayed for ever, so it is never retried as if transient: the
  invoice is read back and its real state recorded (paid; void or uncollectible: closed, no more
  charges; still open: a failed payment, and dunning goes on with new keys);
- whether an invoice is paid is read from ``status`` (``Invoice.paid`` no longer exists in the
  API versions the library pins).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from penguinctl.billing import dunning
from penguinctl.billing import tables as t
from penguinctl.errors import ConfigError, ProviderError
from penguinctl.state.models import ResourceRow


def client_from_env(env: Mapping[str, str]) -> Any:
    import stripe

    key = env.get("STRIPE_API_KEY")
    if not key:
        raise ConfigError(
            "STRIPE_API_KEY is not set: billing sync needs a Stripe secret key",
            hint="export STRIPE_API_KEY (and STRIPE_API_BASE for a test double or stripe-mock)",
        )
    kwargs: dict[str, Any] = {"max_network_retries": 2}
    base = env.get("STRIPE_API_BASE")
    if base:
        kwargs["base_addresses"] = {"api": base.rstrip("/")}
    return stripe.StripeClient(key, **kwargs)


def key(number: str, step: str) -> str:
    return f"penguinctl:{number}:{step}"


@dataclass
class SyncReport:
    pushed: list[str] = field(default_factory=list)  # invoice numbers finalized now
    paid: list[str] = field(default_factory=list)
    failed_payments: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)  # void or uncollectible in Stripe
    errors: list[dict[str, str]] = field(default_factory=list)
    dunning: list[dict[str, Any]] = field(default_factory=list)
    unchanged: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "pushed": self.pushed,
            "paid": self.paid,
            "failed_payments": self.failed_payments,
            "closed": self.closed,
            "dunning": self.dunning,
            "errors": self.errors,
            "unchanged": self.unchanged,
        }


def _metadata(obj: Any) -> dict[str, Any]:
    """A Stripe object's metadata as a plain dict (StripeObject is not a dict since v15)."""
    meta = getattr(obj, "metadata", None)
    if meta is None:
        return {}
    return meta.to_dict() if hasattr(meta, "to_dict") else dict(meta)


def _error(exc: Exception) -> str:
    import stripe

    if isinstance(exc, stripe.StripeError):
        return f"{type(exc).__name__}: {exc.user_message or exc._message or exc}"
    return str(exc)


class StripeSync:
    def __init__(self, engine: Any, client: Any, *, now: datetime, actor: str = "billing") -> None:
        self.engine = engine
        self.client = client
        self.now = now
        self.actor = actor

    # -- steps ----------------------------------------------------------------------------
    def _audit(self, tenant: str, action: str, resource: str, **details: Any) -> None:
        from penguinctl.state import audit

        with self.engine.begin() as conn:
            audit.record_many(
                conn,
                [
                    {
                        "actor": self.actor,
                        "tenant": tenant,
                        "action": action,
                        "resource": resource,
                        "result": "ok",
                        "details": details,
                    }
                ],
            )

    def customer(self, tenant: str) -> str:
        from penguinctl.billing.accounts import ensure_account

        with self.engine.begin() as conn:
            ensure_account(conn, tenant, self.now)
            cid = conn.execute(
                sa.select(t.accounts.c.stripe_customer_id).where(t.accounts.c.tenant == tenant)
            ).scalar()
        if cid:
            return cid
        contact = self._contact(tenant)
        params: dict[str, Any] = {"name": tenant, "metadata": {"penguinctl_tenant": tenant}}
        if contact:
            params["email"] = contact
        created = self.client.v1.customers.create(
            params=params, options={"idempotency_key": f"penguinctl:customer:{tenant}"}
        )
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(t.accounts)
                .where(t.accounts.c.tenant == tenant)
                .values(stripe_customer_id=created.id, updated_at=self.now)
            )
        self._audit(tenant, "stripe.customer", f"billing/{tenant}", customer=created.id)
        return created.id

    def _contact(self, tenant: str) -> str | None:
        resources = ResourceRow.__table__
        with self.engine.connect() as conn:
            data = conn.execute(
                sa.select(resources.c.data).where(
                    resources.c.kind == "tenant", resources.c.tenant == tenant
                )
            ).scalar()
        contact = (data or {}).get("contact")
        return contact if isinstance(contact, str) else None

    def _find_invoice(self, customer: str, number: str) -> Any:
        page = self.client.v1.invoices.list(params={"customer": customer, "limit": 100})
        for inv in page.auto_paging_iter():
            if _metadata(inv).get("penguinctl_invoice") == number:
                return inv
        return None

    def push(self, inv: dict[str, Any]) -> None:
        number = inv["number"]
        customer = self.customer(inv["tenant"])
        sid = inv["stripe_invoice_id"]
        if sid is None:
            found = self._find_invoice(customer, number)
            if found is None:
                found = self.client.v1.invoices.create(
                    params={
                        "customer": customer,
                        "currency": inv["currency"],
                        "collection_method": "charge_automatically",
                        "auto_advance": False,
                        "pending_invoice_items_behavior": "exclude",
                        "description": f"penguinctl {inv['period']} ({inv['tenant']})",
                        "metadata": {
                            "penguinctl_invoice": number,
                            "tenant": inv["tenant"],
                            "period": inv["period"],
                        },
                    },
                    options={"idempotency_key": key(number, "create")},
                )
            sid = found.id
            with self.engine.begin() as conn:
                conn.execute(
                    sa.update(t.invoices)
                    .where(t.invoices.c.id == inv["id"])
                    .values(stripe_invoice_id=sid, stripe_status=found.status, updated_at=self.now)
                )
            inv["stripe_status"] = found.status
            inv["stripe_invoice_id"] = sid
        if inv.get("stripe_status") in (None, "draft"):
            self._items(inv, customer, sid)
            final = self.client.v1.invoices.finalize_invoice(
                sid,
                params={"auto_advance": False},
                options={"idempotency_key": key(number, "finalize")},
            )
            if final.total != inv["total_cents"] or final.currency != inv["currency"]:
                raise ProviderError(
                    f"Stripe invoice {sid} totals {final.total} {final.currency}, "
                    f"but {number} totals {inv['total_cents']} {inv['currency']}",
                    hint="compare the invoice items in Stripe with `penguinctl invoices show`",
                )
            with self.engine.begin() as conn:
                conn.execute(
                    sa.update(t.invoices)
                    .where(t.invoices.c.id == inv["id"])
                    .values(stripe_status=final.status, updated_at=self.now)
                )
            inv["stripe_status"] = final.status
            self._audit(
                inv["tenant"],
                "stripe.invoice",
                f"invoice/{number}",
                stripe_invoice=sid,
                status=final.status,
            )
        if inv["stripe_status"] == "paid":
            with self.engine.begin() as conn:
                dunning.record_paid(conn, inv, self.now)
            return
        if inv["stripe_status"] == "open" and inv["payment_attempts"] == 0:
            paid = self.charge(inv, 1)
            if paid is True:
                with self.engine.begin() as conn:
                    dunning.record_paid(conn, inv, self.now)
            elif paid is False:
                with self.engine.begin() as conn:
                    dunning.record_failure(conn, inv, self.now, reason=self.last_decline)

    def _items(self, inv: dict[str, Any], customer: str, sid: str) -> None:
        with self.engine.connect() as conn:
            lines = [
                dict(r._mapping)
                for r in conn.execute(
                    sa.select(t.lines)
                    .where(t.lines.c.invoice_id == inv["id"])
                    .order_by(t.lines.c.position)
                )
            ]
        todo = [line for line in lines if line["stripe_item_id"] is None]
        if not todo:
            return
        have: dict[str, str] = {}
        page = self.client.v1.invoice_items.list(params={"invoice": sid, "limit": 100})
        for item in page.auto_paging_iter():
            position = _metadata(item).get("line")
            if position:
                have[str(position)] = item.id
        for line in todo:
            item_id = have.get(str(line["position"]))
            if item_id is None:
                from penguinctl.billing.periods import as_utc

                item_id = self.client.v1.invoice_items.create(
                    params={
                        "customer": customer,
                        "invoice": sid,
                        "amount": int(line["amount_cents"]),
                        "currency": inv["currency"],
                        "description": line["description"],
                        "period": {
                            "start": int(as_utc(line["period_start"]).timestamp()),
                            "end": int(as_utc(line["period_end"]).timestamp()),
                        },
                        "metadata": {
                            "penguinctl_invoice": inv["number"],
                            "line": str(line["position"]),
                            "kind": line["kind"],
                        },
                    },
                    options={"idempotency_key": key(inv["number"], f"line:{line['position']}")},
                ).id
            with self.engine.begin() as conn:
                conn.execute(
                    sa.update(t.lines)
                    .where(t.lines.c.id == line["id"])
                    .values(stripe_item_id=item_id)
                )

    last_decline = ""

    def charge(self, inv: dict[str, Any], attempt: int) -> bool | None:
        """One charge of an open invoice: True when it is paid; False when the payment failed
        (a card error, or Stripe refusing to charge an invoice that is still open; the reason
        is in ``last_decline``); None when it is no longer payable in Stripe (void or
        uncollectible: recorded, nothing charged). Transient errors raise (see the module)."""
        import stripe

        try:
            paid = self.client.v1.invoices.pay(
                inv["stripe_invoice_id"],
                options={"idempotency_key": key(inv["number"], f"pay:{attempt}")},
            )
        except stripe.CardError as exc:
            self.last_decline = str(exc.code or "card_error")
            return False
        except stripe.InvalidRequestError as exc:
            # Stripe's answer about this invoice, saved under this key: asking again with the
            # same key would replay it, so read the invoice's real state instead.
            if exc.code == "invoice_already_paid":
                return True
            return self._refused(inv, exc)
        return paid.status == "paid"

    def _refused(self, inv: dict[str, Any], exc: Any) -> bool | None:
        remote = self.client.v1.invoices.retrieve(inv["stripe_invoice_id"])
        if remote.status == "paid":
            return True
        if remote.status in ("void", "uncollectible"):
            self._record_remote(inv, remote)
            return None
        self.last_decline = str(exc.code or "invalid_request_error")
        return False

    def refresh(self, inv: dict[str, Any]) -> str | None:
        """The webhook equivalent: read an open invoice's status from Stripe."""
        return self._record_remote(inv, self.client.v1.invoices.retrieve(inv["stripe_invoice_id"]))

    def _record_remote(self, inv: dict[str, Any], remote: Any) -> str | None:
        """Record ``remote``'s status for ``inv``; the new status, or None when unchanged."""
        if remote.status == inv["stripe_status"]:
            return None
        with self.engine.begin() as conn:
            if remote.status == "paid":
                dunning.record_paid(conn, inv, self.now)
            else:
                values: dict[str, Any] = {"stripe_status": remote.status, "updated_at": self.now}
                if remote.status in ("void", "uncollectible"):
                    values["status"] = remote.status
                conn.execute(
                    sa.update(t.invoices).where(t.invoices.c.id == inv["id"]).values(**values)
                )
        inv["stripe_status"] = remote.status
        return remote.status

    # -- the whole run --------------------------------------------------------------------
    def run(self, *, on_step: Callable[[], None] | None = None) -> SyncReport:
        report = SyncReport()
        with self.engine.connect() as conn:
            todo = [
                dict(r._mapping)
                for r in conn.execute(
                    sa.select(t.invoices)
                    .where(
                        sa.or_(
                            t.invoices.c.stripe_status.is_(None),
                            t.invoices.c.stripe_status.in_(("draft", "open")),
                        ),
                        t.invoices.c.status.in_(("issued", "payment_failed")),
                    )
                    .order_by(t.invoices.c.id)
                )
            ]
        for inv in todo:
            try:
                if inv["stripe_status"] in (None, "draft"):
                    self.push(inv)
                    report.pushed.append(inv["number"])
                    self._tally(report, inv["id"])
                elif inv["status"] == "issued" and inv["payment_attempts"] == 0:
                    self.push(inv)  # finalized, never charged (a crash after finalize)
                    self._tally(report, inv["id"])
                else:
                    status = self.refresh(inv)
                    if status == "paid":
                        report.paid.append(inv["number"])
                    elif status in ("void", "uncollectible"):
                        report.closed.append(inv["number"])
                    elif status is None:
                        report.unchanged += 1
            except Exception as exc:
                import stripe

                if not isinstance(exc, stripe.StripeError | ProviderError):
                    raise
                report.errors.append({"invoice": inv["number"], "error": _error(exc)})
            if on_step is not None:
                on_step()
        try:
            for step in dunning.process(self.engine, self._retry, self.now):
                report.dunning.append(step.__dict__)
        except ProviderError as exc:
            report.errors.append({"invoice": "(dunning)", "error": exc.message})
        return report

    def _retry(self, inv: dict[str, Any], attempt: int) -> bool | None:
        """A dunning retry (see ``charge``). A transient network or API error stops the run
        (the retry is made by the next run, with the same key)."""
        import stripe

        try:
            return self.charge(inv, attempt)
        except stripe.StripeError as exc:
            raise ProviderError(f"retry {attempt} of {inv['number']}: {_error(exc)}") from None

    def _tally(self, report: SyncReport, invoice_id: int) -> None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(t.invoices.c.number, t.invoices.c.status).where(
                    t.invoices.c.id == invoice_id
                )
            ).first()
        if row and row.status == "paid":
            report.paid.append(row.number)
        elif row and row.status == "payment_failed":
            report.failed_payments.append(row.number)
        elif row and row.status in ("void", "uncollectible"):
            report.closed.append(row.number)
