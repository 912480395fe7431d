"""Stripe sync against the local Stripe double (the official library, unmodified), idempotency
keys, a second run doing nothing, and the dunning schedule on an injected clock."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
import stripe
from fakes.stripe import FakeStripe
from test_billing import AFTER_JULY, JULY, TOTALS, build_fixture, campaign, run_inprocess

from penguinctl.billing import dunning, invoices
from penguinctl.billing import tables as t
from penguinctl.billing.catalog import PACKAGED, load_catalog
from penguinctl.billing.stripe_sync import StripeSync, client_from_env
from penguinctl.campaigns.models import Campaign

pytestmark = pytest.mark.clock  # date-sensitive: scripts/test re-runs it under shifted clocks

NOW = datetime(2026, 8, 2, 12, tzinfo=UTC)


@pytest.fixture
def fake():
    with FakeStripe() as double:
        yield double


@pytest.fixture
def client(fake):
    return client_from_env({"STRIPE_API_KEY": fake.api_key, "STRIPE_API_BASE": fake.url})


# -- the double itself, through the library ---------------------------------------------------
def test_double_follows_stripe_idempotency(fake, client) -> None:
    a = client.v1.customers.create(
        params={"name": "acme", "metadata": {"t": "acme"}}, options={"idempotency_key": "k1"}
    )
    b = client.v1.customers.create(
        params={"name": "acme", "metadata": {"t": "acme"}}, options={"idempotency_key": "k1"}
    )
    assert a.id == b.id and a.metadata["t"] == "acme" and len(fake.customers) == 1
    assert [r["replayed"] for r in fake.requests] == [False, True]
    with pytest.raises(stripe.IdempotencyError):
        client.v1.customers.create(params={"name": "other"}, options={"idempotency_key": "k1"})
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.invoice_items.create(params={"customer": a.id, "currency": "usd"})
    assert err.value.param == "amount"
    bad = client_from_env({"STRIPE_API_KEY": "sk_wrong", "STRIPE_API_BASE": fake.url})
    with pytest.raises(stripe.AuthenticationError):
        bad.v1.customers.create(params={"name": "x"})
    # module-level configuration works too (stripe.api_base)
    old = (stripe.api_key, stripe.api_base)
    stripe.api_key, stripe.api_base = fake.api_key, fake.url
    try:
        assert stripe.Customer.retrieve(a.id).name == "acme"
    finally:
        stripe.api_key, stripe.api_base = old
    inv = client.v1.invoices.create(params={"customer": a.id, "currency": "usd"})
    client.v1.invoice_items.create(
        params={
            "customer": a.id,
            "invoice": inv.id,
            "amount": 1234,
            "currency": "usd",
            "period": {"start": 1, "end": 2},
        }
    )
    final = client.v1.invoices.finalize_invoice(inv.id)
    assert final.status == "open" and final.total == 1234 and final.number
    fake.decline(a.id)
    with pytest.raises(stripe.CardError) as card:
        client.v1.invoices.pay(inv.id)
    assert card.value.code == "card_declined"
    fake.decline(a.id, False)
    assert client.v1.invoices.pay(inv.id).status == "paid"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.pay(inv.id)


def _open_invoice(client, amount: int = 1234, customer: str | None = None):
    """A customer and a finalized (open) invoice of ``amount`` cents."""
    customer = customer or client.v1.customers.create(params={"name": "x"}).id
    inv = client.v1.invoices.create(params={"customer": customer, "currency": "usd"})
    client.v1.invoice_items.create(
        params={"customer": customer, "invoice": inv.id, "amount": amount, "currency": "usd"}
    )
    return client.v1.invoices.finalize_invoice(inv.id)


def test_double_replays_business_errors_but_not_validation_errors(fake, client) -> None:
    """Stripe saves any answer once the endpoint has started (a 400 such as
    invoice_already_paid too) and replays it for the key; a validation failure is not saved."""
    inv = _open_invoice(client)
    assert client.v1.invoices.pay(inv.id, options={"idempotency_key": "pay-1"}).status == "paid"
    errors = []
    for _ in range(2):
        with pytest.raises(stripe.InvalidRequestError) as err:
            client.v1.invoices.pay(inv.id, options={"idempotency_key": "pay-2"})
        errors.append((err.value.code, err.value.http_status, err.value.json_body))
    assert errors[0] == errors[1] and errors[0][:2] == ("invoice_already_paid", 400)
    pays = [r for r in fake.requests if r["idempotency_key"] == "pay-2"]
    assert [(r["status"], r["replayed"]) for r in pays] == [(400, False), (400, True)]
    # a parameter that fails validation: nothing saved, the same key then works
    params = {"customer": inv.customer, "currency": "usd"}
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.invoice_items.create(params=params, options={"idempotency_key": "item"})
    assert err.value.code == "parameter_missing"
    item = client.v1.invoice_items.create(
        params={**params, "amount": 5}, options={"idempotency_key": "item"}
    )
    assert item.amount == 5
    # an invoice voided in Stripe: paying it is a saved 400 invoice_not_open
    other = _open_invoice(client, customer=inv.customer)
    assert client.v1.invoices.void_invoice(other.id).status == "void"
    for replayed in (False, True):
        with pytest.raises(stripe.InvalidRequestError) as err:
            client.v1.invoices.pay(other.id, options={"idempotency_key": "pay-void"})
        assert err.value.code == "invoice_not_open"
        assert fake.requests[-1]["replayed"] is replayed


def test_double_answers_409_while_a_key_is_in_flight(fake, client) -> None:
    inv = _open_invoice(client)
    held = fake.pause(f"/v1/invoices/{inv.id}/pay")
    first: dict = {}

    def pay_first() -> None:
        first["inv"] = client.v1.invoices.pay(inv.id, options={"idempotency_key": "k"})

    thread = threading.Thread(target=pay_first)
    thread.start()
    assert held.reached.wait(30)
    once = client_from_env({"STRIPE_API_KEY": fake.api_key, "STRIPE_API_BASE": fake.url})
    with pytest.raises(stripe.APIError) as err:
        once.v1.invoices.pay(inv.id, options={"idempotency_key": "k", "max_network_retries": 0})
    assert err.value.http_status == 409
    assert err.value.json_body["error"]["code"] == "idempotency_key_in_use"
    held.release()
    thread.join(30)
    assert first["inv"].status == "paid"
    again = client.v1.invoices.pay(inv.id, options={"idempotency_key": "k"})
    assert again.status == "paid" and fake.requests[-1]["replayed"]
    assert fake.invoices[inv.id]["attempt_count"] == 1  # one charge, whatever the retries


def test_double_paid_field_follows_the_api_version(fake, client) -> None:
    """Invoice.paid was removed in 2025-03-31.basil (the library pins a later version); older
    versions see it true once the invoice is paid, out of band included."""
    inv = _open_invoice(client)
    old = {"stripe_version": "2024-06-20"}
    assert client.v1.invoices.retrieve(inv.id, options=old).paid is False
    client.v1.invoices.pay(inv.id)
    current = client.v1.invoices.retrieve(inv.id)
    assert current.status == "paid" and "paid" not in current and current.amount_remaining == 0
    paid = client.v1.invoices.retrieve(inv.id, options=old)
    assert (paid.paid, paid.paid_out_of_band) == (True, False)
    later = _open_invoice(client, customer=inv.customer)
    fake.mark_paid(later.id)
    seen = client.v1.invoices.retrieve(later.id, options=old)
    assert (seen.status, seen.paid, seen.paid_out_of_band) == ("paid", True, True)


def test_missing_key_is_a_config_error() -> None:
    from penguinctl.errors import ConfigError

    with pytest.raises(ConfigError, match="STRIPE_API_KEY"):
        client_from_env({})


# -- sync -------------------------------------------------------------------------------------
def _billed(engine, light: bool = False):
    build_fixture(engine, light=light)
    invoices.run(engine, load_catalog(path=PACKAGED), JULY, today=AFTER_JULY)


def test_sync_pushes_once_and_second_run_does_nothing(migrated_engine, fake, client) -> None:
    _billed(migrated_engine)
    report = StripeSync(migrated_engine, client, now=NOW).run()
    assert sorted(report.pushed) == sorted(f"INV-2026-07-{n}" for n in TOTALS)
    assert sorted(report.paid) == sorted(report.pushed) and not report.errors
    assert len(fake.customers) == 4 and len(fake.invoices) == 4 and len(fake.items) == 8
    by_tenant = {i["metadata"]["tenant"]: i for i in fake.invoices.values()}
    assert {k: v["total"] for k, v in by_tenant.items()} == TOTALS
    assert all(v["status"] == "paid" for v in by_tenant.values())
    acme = next(c for c in fake.customers.values() if c["name"] == "acme")
    assert acme["email"] == "ops@acme.example"
    keys = [r["idempotency_key"] for r in fake.posts()]
    assert all(k and k.startswith("penguinctl:") for k in keys) and len(set(keys)) == len(keys)
    assert "penguinctl:INV-2026-07-acme:line:4" in keys
    with migrated_engine.connect() as conn:
        rows = conn.execute(sa.select(t.invoices.c.status, t.invoices.c.stripe_status)).all()
        assert set(rows) == {("paid", "paid")}
        assert (
            conn.execute(
                sa.select(sa.func.count()).where(t.lines.c.stripe_item_id.is_(None))
            ).scalar()
            == 0
        )

    before = len(fake.requests)
    again = StripeSync(migrated_engine, client, now=NOW).run()
    assert again.to_json() == {
        "pushed": [],
        "paid": [],
        "failed_payments": [],
        "closed": [],
        "dunning": [],
        "errors": [],
        "unchanged": 0,
    }
    assert len(fake.requests) == before  # not even a read: nothing is open

    # and billing run again does nothing either
    results = invoices.run(migrated_engine, load_catalog(path=PACKAGED), JULY, today=AFTER_JULY)
    assert {r.status for r in results} == {"exists"}


def test_crash_after_stripe_answered_is_replayed_not_duplicated(
    migrated_engine, fake, client, monkeypatch
) -> None:
    """The process dies after Stripe created items but before they were recorded: the re-run
    finds them (and replays keys), never creating a second invoice or item."""
    _billed(migrated_engine)
    calls = {"n": 0}
    real = client.v1.invoice_items.create

    def flaky(*args, **kwargs):
        calls["n"] += 1
        obj = real(*args, **kwargs)
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the answer is lost
        return obj

    monkeypatch.setattr(client.v1.invoice_items, "create", flaky)
    with pytest.raises(KeyboardInterrupt):
        StripeSync(migrated_engine, client, now=NOW).run()
    monkeypatch.setattr(client.v1.invoice_items, "create", real)
    report = StripeSync(migrated_engine, client, now=NOW).run()
    assert not report.errors and len(report.paid) == 4
    assert len(fake.invoices) == 4 and len(fake.items) == 8
    assert {i["total"] for i in fake.invoices.values()} == set(TOTALS.values())


def test_lost_invoice_answer_found_by_metadata(migrated_engine, fake, client) -> None:
    """Even when the idempotency key is gone (pruned after 24 h), the draft is found again."""
    _billed(migrated_engine, light=True)
    sync = StripeSync(migrated_engine, client, now=NOW)
    with migrated_engine.connect() as conn:
        inv = dict(
            conn.execute(sa.select(t.invoices).where(t.invoices.c.tenant == "delta"))
            .first()
            ._mapping
        )
    customer = sync.customer("delta")
    client.v1.invoices.create(
        params={
            "customer": customer,
            "currency": "usd",
            "metadata": {"penguinctl_invoice": inv["number"]},
        },
        options={"idempotency_key": "another-key"},
    )
    fake._saved.clear()  # keys pruned
    sync.push(inv)
    assert len([i for i in fake.invoices.values() if i["customer"] == customer]) == 1


def _tenant_status(engine, tenant):
    with engine.connect() as conn:
        return conn.execute(
            sa.select(t.accounts.c.status).where(t.accounts.c.tenant == tenant)
        ).scalar()


def _campaigns(engine, tenant):
    campaigns = Campaign.__table__
    with engine.connect() as conn:
        return conn.execute(
            sa.select(campaigns.c.name, campaigns.c.status, campaigns.c.paused_reason)
            .where(campaigns.c.tenant == tenant)
            .order_by(campaigns.c.name)
        ).all()


def test_dunning_schedule_suspends_then_payment_reactivates(migrated_engine, fake, client) -> None:
    _billed(migrated_engine, light=True)
    with migrated_engine.begin() as conn:
        campaign(conn, "delta", "spring")
        campaign(conn, "delta", "old", status="completed")
        campaign(conn, "delta", "manual", status="paused")
    # delta's card declines
    sync = StripeSync(migrated_engine, client, now=NOW)
    sync.customer("delta")
    with migrated_engine.connect() as conn:
        cid = conn.execute(
            sa.select(t.accounts.c.stripe_customer_id).where(t.accounts.c.tenant == "delta")
        ).scalar()
    fake.decline(cid)
    day0 = sync.run()
    assert day0.failed_payments == ["INV-2026-07-delta"] and len(day0.paid) == 3
    assert _tenant_status(migrated_engine, "delta") == "past_due"

    def at(days: float) -> dict:
        report = StripeSync(migrated_engine, client, now=NOW + timedelta(days=days)).run()
        return [(d["action"], d["attempt"]) for d in report.to_json()["dunning"]]

    assert at(1) == [] and at(2.9) == []
    assert at(3) == [("retry_failed", 2)]
    assert at(3.5) == []  # once per retry day
    assert at(5) == [("retry_failed", 3)]
    assert _tenant_status(migrated_engine, "delta") == "past_due"  # grace: full access
    assert ("spring", "active", None) in _campaigns(migrated_engine, "delta")
    assert at(7) == [("retry_failed", 4), ("suspended", None)]
    assert _tenant_status(migrated_engine, "delta") == "suspended"
    assert _campaigns(migrated_engine, "delta") == [
        ("manual", "paused", None),
        ("old", "completed", None),
        ("spring", "paused", "billing: invoice INV-2026-07-delta unpaid"),
    ]
    assert at(8) == []  # no more retries, suspended once
    pays = [r["idempotency_key"] for r in fake.posts() if r["path"].endswith("/pay")]
    assert [k for k in pays if "delta" in k] == [
        f"penguinctl:INV-2026-07-delta:pay:{n}" for n in (1, 2, 3, 4)
    ]
    with migrated_engine.connect() as conn:
        assert dunning.is_suspended(conn, "delta")

    # the customer pays in Stripe (new card, Stripe's own retry): sync sees it and reactivates
    fake.mark_paid(
        next(i["id"] for i in fake.invoices.values() if i["metadata"]["tenant"] == "delta")
    )
    report = StripeSync(migrated_engine, client, now=NOW + timedelta(days=9)).run()
    assert report.paid == ["INV-2026-07-delta"]
    assert _tenant_status(migrated_engine, "delta") == "active"
    assert ("spring", "active", None) in _campaigns(migrated_engine, "delta")
    assert ("manual", "paused", None) in _campaigns(migrated_engine, "delta")  # not ours


def test_late_sync_makes_one_retry_not_three(migrated_engine) -> None:
    assert dunning.due_retry(NOW, 1, NOW + timedelta(days=2)) is None
    assert dunning.due_retry(NOW, 1, NOW + timedelta(days=3)) == 1
    assert dunning.due_retry(NOW, 1, NOW + timedelta(days=9)) == 3  # one charge, counted as #3
    assert dunning.due_retry(NOW, 4, NOW + timedelta(days=30)) is None


def test_retry_success_reactivates(migrated_engine, fake, client) -> None:
    _billed(migrated_engine, light=True)
    sync = StripeSync(migrated_engine, client, now=NOW)
    cid = sync.customer("gamma")
    fake.decline(cid)
    sync.run()
    fake.decline(cid, False)
    report = StripeSync(migrated_engine, client, now=NOW + timedelta(days=3)).run()
    assert [(d["invoice"], d["action"]) for d in report.dunning] == [
        ("INV-2026-07-gamma", "retry_paid")
    ]
    assert _tenant_status(migrated_engine, "gamma") == "active"


def test_cli_sync(capsys, tmp_path, monkeypatch, fake) -> None:
    from penguinctl.state.db import make_engine, migrate

    url = f"sqlite:///{tmp_path / 'state.db'}"
    engine = make_engine(url)
    migrate(engine)
    build_fixture(engine)
    engine.dispose()
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_TODAY", "2026-08-02")
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    monkeypatch.delenv("PENGUINCTL_PLANS", raising=False)
    res = run_inprocess(capsys, "--state", url, "billing", "sync")
    assert res.code == 2 and "STRIPE_API_KEY" in res.err
    monkeypatch.setenv("STRIPE_API_KEY", fake.api_key)
    monkeypatch.setenv("STRIPE_API_BASE", fake.url)
    assert run_inprocess(capsys, "--state", url, "billing", "run", "--period", "2026-07").code == 0
    res = run_inprocess(capsys, "--state", url, "billing", "sync", "-o", "json")
    assert res.code == 0, res.err
    assert len(res.json()["pushed"]) == 4 and len(res.json()["paid"]) == 4
    res = run_inprocess(capsys, "--state", url, "billing", "sync")
    assert res.code == 0 and "0 pushed, 0 paid" in res.out
    listed = run_inprocess(capsys, "--state", url, "invoices", "list", "-o", "json").json()
    assert {i["stripe_status"] for i in listed} == {"paid"}
    monkeypatch.setenv("STRIPE_API_KEY", "sk_wrong")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.update(t.invoices)
            .where(t.invoices.c.tenant == "acme")
            .values(stripe_status=None, stripe_invoice_id=None, status="issued")
        )
    engine.dispose()
    res = run_inprocess(capsys, "--state", url, "billing", "sync")
    assert res.code == 5 and "AuthenticationError" in res.err


def _invoice_row(engine, tenant: str) -> dict:
    with engine.connect() as conn:
        return dict(
            conn.execute(sa.select(t.invoices).where(t.invoices.c.tenant == tenant))
            .first()
            ._mapping
        )


def _void_before_paying(monkeypatch, client, tenant: str) -> None:
    """The invoice of ``tenant`` is voided in Stripe (by someone in the dashboard) just before
    penguinctl's next charge of it."""
    real = client.v1.invoices.pay
    done = []

    def pay(invoice_id, *args, **kwargs):
        inv = client.v1.invoices.retrieve(invoice_id)
        if inv.metadata["tenant"] == tenant and not done:
            done.append(client.v1.invoices.void_invoice(invoice_id))
        return real(invoice_id, *args, **kwargs)

    monkeypatch.setattr(client.v1.invoices, "pay", pay)


def test_a_replayed_400_is_not_retried_as_transient(migrated_engine, fake, client, monkeypatch):
    """The first charge meets a 400 (the invoice was voided in Stripe meanwhile). Stripe saves
    that answer under the key pay:1, so retrying with it can only replay it: the invoice is read
    back and recorded void at once, and no later run charges it again."""
    _billed(migrated_engine, light=True)
    _void_before_paying(monkeypatch, client, "delta")
    report = StripeSync(migrated_engine, client, now=NOW).run()
    assert report.errors == [] and report.closed == ["INV-2026-07-delta"]
    assert "INV-2026-07-delta" not in report.paid + report.failed_payments
    delta = _invoice_row(migrated_engine, "delta")
    assert (delta["status"], delta["stripe_status"], delta["payment_attempts"]) == (
        "void",
        "void",
        0,
    )
    assert _tenant_status(migrated_engine, "delta") == "active"
    before = len(fake.requests)
    for days in (0, 3, 8):
        again = StripeSync(migrated_engine, client, now=NOW + timedelta(days=days)).run()
        assert again.errors == [] and again.closed == [] and again.dunning == []
    assert len(fake.requests) == before  # nothing is open: not even a read


def test_a_400_during_dunning_closes_that_invoice_and_others_go_on(
    migrated_engine, fake, client, monkeypatch
):
    _billed(migrated_engine, light=True)
    sync = StripeSync(migrated_engine, client, now=NOW)
    for tenant in ("delta", "gamma"):
        fake.decline(sync.customer(tenant))
    day0 = sync.run()
    assert sorted(day0.failed_payments) == ["INV-2026-07-delta", "INV-2026-07-gamma"]
    # delta's invoice is voided between the status sync and its retry (pay:2 gets a 400)
    real_refresh = StripeSync.refresh
    monkeypatch.setattr(StripeSync, "refresh", lambda self, inv: None)
    _void_before_paying(monkeypatch, client, "delta")
    report = StripeSync(migrated_engine, client, now=NOW + timedelta(days=3)).run()
    monkeypatch.setattr(StripeSync, "refresh", real_refresh)
    assert report.errors == []
    steps = sorted((d["invoice"], d["action"], d["attempt"]) for d in report.dunning)
    assert steps == [
        ("INV-2026-07-delta", "closed", 2),
        ("INV-2026-07-gamma", "retry_failed", 2),
    ]
    assert _invoice_row(migrated_engine, "delta")["status"] == "void"
    later = StripeSync(migrated_engine, client, now=NOW + timedelta(days=5)).run()
    assert [(d["invoice"], d["attempt"]) for d in later.dunning] == [("INV-2026-07-gamma", 3)]


def test_a_key_in_use_is_retried_with_backoff(migrated_engine, fake, client) -> None:
    """Two sync runs charge the same invoice at once (same key pay:1): Stripe answers the
    second 409 idempotency_key_in_use while the first is executing; the client retries with
    backoff and gets the first run's answer replayed. One charge, both see it paid."""
    _billed(migrated_engine, light=True)
    sync = StripeSync(migrated_engine, client, now=NOW)
    inv = _invoice_row(migrated_engine, "gamma")
    customer = sync.customer("gamma")
    opened = _open_invoice(client, amount=inv["total_cents"], customer=customer)
    inv.update(stripe_invoice_id=opened.id, stripe_status="open")
    held = fake.pause(f"/v1/invoices/{opened.id}/pay")
    results: dict[str, object] = {}
    first = threading.Thread(target=lambda: results.update(a=sync.charge(inv, 1)))
    first.start()
    assert held.reached.wait(30)
    other = StripeSync(
        migrated_engine,
        client_from_env({"STRIPE_API_KEY": fake.api_key, "STRIPE_API_BASE": fake.url}),
        now=NOW,
    )
    second = threading.Thread(target=lambda: results.update(b=other.charge(inv, 1)))
    second.start()
    key_ = "penguinctl:INV-2026-07-gamma:pay:1"

    def answered_409() -> bool:
        return any(r.get("status") == 409 for r in fake.requests if r["idempotency_key"] == key_)

    deadline = time.monotonic() + 30
    while not answered_409():
        assert time.monotonic() < deadline, fake.requests
        time.sleep(0.01)
    held.release()
    first.join(30)
    second.join(30)
    assert results == {"a": True, "b": True}
    seen = [(r["status"], r["replayed"]) for r in fake.requests if r["idempotency_key"] == key_]
    assert seen[0] == (200, False) and seen[1] == (409, False) and seen[-1] == (200, True)
    assert fake.invoices[opened.id]["attempt_count"] == 1
