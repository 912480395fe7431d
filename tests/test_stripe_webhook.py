"""Stripe's webhook at /hooks/stripe on the control plane's HTTP app (real uvicorn): events
signed with the stripe library's own signing helper, verified with its signature check, applied
once per event id; `billing sync` (against the Stripe double) stays the reconciling poll."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
import stripe
from fakes.stripe import FakeStripe
from test_billing_stripe import NOW, _billed, _tenant_status
from webkit import LiveApp

from penguinctl.billing import tables as t
from penguinctl.billing.stripe_sync import StripeSync, client_from_env
from penguinctl.clock import ManualClock
from penguinctl.state.models import AuditEvent

SECRET = "whsec_test_penguinctl"


def signed(event: dict, secret: str = SECRET, at: datetime | None = None) -> tuple[bytes, dict]:
    body = json.dumps(event)
    ts = int((at or datetime.now(UTC)).timestamp())
    header = stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=ts)
    return body.encode(), {"Stripe-Signature": header, "Content-Type": "application/json"}


def event(evt_id: str, kind: str, invoice: dict) -> dict:
    return {
        "id": evt_id,
        "object": "event",
        "type": kind,
        "api_version": "2024-06-20",
        "created": 1,
        "data": {"object": invoice},
    }


@pytest.fixture
def delta_failed(migrated_engine):
    """delta's July invoice pushed to the Stripe double and its card declined (dunning day 0)."""
    with FakeStripe() as fake:
        client = client_from_env({"STRIPE_API_KEY": fake.api_key, "STRIPE_API_BASE": fake.url})
        _billed(migrated_engine, light=True)
        sync = StripeSync(migrated_engine, client, now=NOW)
        fake.decline(sync.customer("delta"))
        assert sync.run().failed_payments == ["INV-2026-07-delta"]
        yield migrated_engine, fake, client


def _audits(engine, action: str, tenant: str = "delta") -> list:
    a = AuditEvent.__table__
    with engine.connect() as conn:
        return conn.execute(sa.select(a).where(a.c.action == action, a.c.tenant == tenant)).all()


def test_signed_event_applies_once_and_forged_ones_do_nothing(delta_failed) -> None:
    engine, fake, client = delta_failed
    assert _tenant_status(engine, "delta") == "past_due"
    inv = next(i for i in fake.invoices.values() if i["metadata"]["tenant"] == "delta")
    fake.mark_paid(inv["id"])
    paid = event("evt_1", "invoice.paid", {**inv, "status": "paid"})
    clock = ManualClock(NOW + timedelta(days=1))
    with LiveApp(engine, None, env={"STRIPE_WEBHOOK_SECRET": SECRET}, clock=clock) as live:
        url = f"{live.base}/hooks/stripe"
        # forged: another secret, no header, a stale timestamp, a tampered body
        body, headers = signed(paid, "whsec_other")
        assert httpx.post(url, content=body, headers=headers).status_code == 400
        assert httpx.post(url, content=body).status_code == 400
        body, headers = signed(paid, at=datetime.now(UTC) - timedelta(minutes=10))
        assert httpx.post(url, content=body, headers=headers).status_code == 400
        body, headers = signed(paid)
        tampered = body.replace(b"evt_1", b"evt_2")
        res = httpx.post(url, content=tampered, headers=headers)
        assert res.status_code == 400
        assert res.headers["content-type"].startswith("application/problem+json")
        assert _tenant_status(engine, "delta") == "past_due"

        res = httpx.post(url, content=body, headers=headers)
        assert res.status_code == 200 and res.json()["result"] == "applied"
        assert _tenant_status(engine, "delta") == "active"
        with engine.connect() as conn:
            status = conn.execute(
                sa.select(t.invoices.c.status).where(t.invoices.c.number == "INV-2026-07-delta")
            ).scalar()
        assert status == "paid"
        # Stripe redelivers: the same event id changes nothing a second time
        res = httpx.post(url, content=body, headers=headers)
        assert res.status_code == 200 and res.json()["result"] == "duplicate"
        assert len(_audits(engine, "billing.paid")) == 1
        # an event about nothing penguinctl pushed, or of another type: recorded, ignored
        body, headers = signed(event("evt_3", "invoice.paid", {**inv, "id": "in_unknown"}))
        assert httpx.post(url, content=body, headers=headers).json()["result"] == "ignored"
        body, headers = signed(event("evt_4", "customer.created", {"id": "cus_x"}))
        assert httpx.post(url, content=body, headers=headers).json()["result"] == "ignored"
    # the reconciling poll agrees and changes nothing more
    report = StripeSync(engine, client, now=NOW + timedelta(days=2)).run()
    assert report.errors == [] and "INV-2026-07-delta" not in report.paid
    assert len(_audits(engine, "billing.paid")) == 1


def test_payment_failed_event_starts_dunning_for_that_tenant_only(migrated_engine) -> None:
    with FakeStripe() as fake:
        client = client_from_env({"STRIPE_API_KEY": fake.api_key, "STRIPE_API_BASE": fake.url})
        _billed(migrated_engine, light=True)
        sync = StripeSync(migrated_engine, client, now=NOW)
        sync.customer("gamma")
        sync.run()
        inv = next(i for i in fake.invoices.values() if i["metadata"]["tenant"] == "gamma")
        with migrated_engine.begin() as conn:
            conn.execute(
                sa.update(t.invoices)
                .where(t.invoices.c.number == "INV-2026-07-gamma")
                .values(status="issued", paid_at=None, payment_attempts=0)
            )
        before = {x: _tenant_status(migrated_engine, x) for x in ("delta", "gamma")}
        with LiveApp(
            migrated_engine, None, env={"STRIPE_WEBHOOK_SECRET": SECRET}, clock=ManualClock(NOW)
        ) as live:
            body, headers = signed(event("evt_9", "invoice.payment_failed", inv))
            res = httpx.post(f"{live.base}/hooks/stripe", content=body, headers=headers)
        assert res.json()["result"] == "applied"
        assert _tenant_status(migrated_engine, "gamma") == "past_due"
        assert _tenant_status(migrated_engine, "delta") == before["delta"]  # untouched


def test_unconfigured_hook_answers_503(migrated_engine) -> None:
    with LiveApp(migrated_engine, None) as live:
        body, headers = signed(event("evt_1", "invoice.paid", {"id": "in_1"}))
        res = httpx.post(f"{live.base}/hooks/stripe", content=body, headers=headers)
    assert res.status_code == 503 and res.json()["status"] == 503
