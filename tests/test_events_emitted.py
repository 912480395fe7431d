"""Every catalogue event is emitted by the code path it names, and its payload validates
against its JSON Schema (eventkit.events validates every event it reads). Paths whose setup
lives in another module assert there: secret.rotated in test_mailbox_rotation.py,
send.ambiguous in test_campaign_ambiguous.py, backup.verified and restore.drill.failed in
test_backup.py, check.failed and blocklist.listed end to end in test_check.py,
webhook.endpoint.disabled in test_webhooks_delivery.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from campaignkit import keystore, make_campaign, record_mailboxes
from clitools import QUICKSTART, run_inprocess
from eventkit import emitted, events
from smtpsink import SmtpSink
from test_billing_stripe import client, fake  # noqa: F401 - fixtures

pytestmark = pytest.mark.clock  # date-sensitive: scripts/test re-runs it under shifted clocks

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
DOMAIN = "acme-mail.example"


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys, state_url):
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_STATE", state_url)
    monkeypatch.setenv("PENGUINCTL_TODAY", "2026-11-23")
    monkeypatch.setenv("SARA_SMTP_PASSWORD", "not-used-here-0123456789")
    monkeypatch.chdir(tmp_path)

    def run(*args):
        return run_inprocess(capsys, *args)

    return run


@pytest.fixture
def engine(state_url):
    from penguinctl.state.db import make_engine, migrate

    engine = make_engine(state_url)
    migrate(engine)
    yield engine
    engine.dispose()


# -- apply and DKIM rotation ---------------------------------------------------------------------
def test_apply_and_destroy_emit_domain_applied(cli, engine) -> None:
    assert cli("apply", "-f", QUICKSTART, "--yes").code == 0
    applied = emitted(engine, "domain.applied", domain=DOMAIN, operation="apply", status="ok")
    (one,) = applied
    assert one["tenant"] == "acme" and one["subject"] == f"domain/{DOMAIN}"
    assert one["data"]["changes"]["create"] >= 5  # domain, DKIM key, records, mailboxes
    assert len(events(engine, "domain.applied")) == 3  # one per domain of the spec
    assert cli("apply", "-f", QUICKSTART, "--yes").code == 0  # nothing to do: no event
    assert len(events(engine, "domain.applied")) == 3
    assert cli("destroy", "-f", QUICKSTART, "--yes", "--force").code == 0
    gone = emitted(engine, "domain.applied", domain=DOMAIN, operation="destroy")
    assert gone[0]["data"]["changes"]["delete"] >= 1


def test_dkim_rotation_emits_advanced_and_failed(cli, engine) -> None:
    from penguinctl.errors import ProviderError
    from penguinctl.providers.registry import Providers
    from penguinctl.rotation import Rotator, load

    assert cli("apply", "-f", QUICKSTART, "--yes").code == 0
    res = cli("dkim", "rotate", DOMAIN, "-o", "json")
    assert res.code == 0, res.err
    steps = [(e["data"]["step"], e["data"]["phase"]) for e in events(engine,
             "dkim.rotation.advanced")]  # fmt: skip
    assert steps == [("rotate", "generated"), ("publish", "published")]
    # a step that fails (its DNS check raises) is reported, with the error
    (dk,) = load(engine, ["acme-outreach.example"])

    def broken(*_):
        raise ProviderError("name server 192.0.2.53 refused the query")

    providers = Providers(secrets_factory=_secrets, dns_configs={dk.data["dns"]: dk.dns}, env={})
    rotator = Rotator(db=engine, providers=providers, check_dns=broken, actor="t")
    outcomes = rotator.advance(dk.domain, start=True, loaded=dk)
    assert [(o.action, o.result) for o in outcomes] == [("rotate", "done"), ("publish", "failed")]
    (failed,) = emitted(engine, "dkim.rotation.failed", domain="acme-outreach.example")
    assert failed["data"]["step"] == "publish" and "refused" in failed["data"]["error"]


def _secrets():
    import os

    from penguinctl.cli.context import AppContext
    from penguinctl.settings import load_settings

    env = dict(os.environ)
    return AppContext(settings=load_settings(env), env=env).secrets()


# -- checks -----------------------------------------------------------------------------------
def _save(engine, results, at=None) -> int:
    from penguinctl.health import history
    from penguinctl.state.db import session_scope

    with session_scope(engine) as session:
        return history.save(session, results, actor="t", targets=["mx1"], started=at or T0)


def test_check_history_emits_transitions_only(engine) -> None:
    from penguinctl.health.results import Result

    def results(smtp: str, listed: bool, bl_error: bool = False):
        bl = "error" if bl_error else ("fail" if listed else "ok")
        return [
            Result("server", "mx1", "acme", "smtp:25", "203.0.113.7:25", smtp, "refused",
                   critical=True),
            Result("server", "mx1", "acme", "dnsbl:zen.spamhaus.org", "203.0.113.7", bl,
                   "127.0.0.2: listed"),
            Result("domain", DOMAIN, "acme", "dns:MX", DOMAIN, "ok"),
        ]  # fmt: skip

    first = _save(engine, results("fail", True))
    assert {e["type"] for e in events(engine)} == {"check.failed", "blocklist.listed"}
    (failed,) = emitted(engine, "check.failed", check="smtp:25", status="fail", run_id=first)
    assert failed["data"]["critical"] is True and failed["tenant"] == "acme"
    emitted(engine, "blocklist.listed", list="zen.spamhaus.org", listed="203.0.113.7")
    _save(engine, results("fail", True))  # nothing changed: nothing emitted
    assert len(events(engine)) == 2
    _save(engine, results("ok", False))
    emitted(engine, "check.recovered", check="smtp:25", status="ok")
    emitted(engine, "blocklist.delisted", list="zen.spamhaus.org", listed="203.0.113.7")
    _save(engine, results("ok", False, bl_error=True))  # the list could not be asked
    emitted(engine, "check.failed", check="dnsbl:zen.spamhaus.org", status="error")
    assert len(events(engine)) == 5


# -- campaigns --------------------------------------------------------------------------------
def test_campaign_completed_and_paused_by_an_operator(tmp_path, engine, cli, state_url) -> None:
    from penguinctl.campaigns.window import ManualClock
    from penguinctl.campaigns.worker import Worker, WorkerOptions

    sender = "s0@send0.example"
    with SmtpSink(tmp_path) as sink:
        record_mailboxes(engine, "acme", [sender], smtp_port=sink.port)
        make_campaign(
            engine,
            "acme",
            "one",
            senders=[sender],
            leads=[{"email": "lead@dest.example"}],
            steps=[{"subject": "Hello", "body": "One step only."}],
        )
        make_campaign(engine, "acme", "two", senders=[sender], leads=[])
        Worker(
            engine,
            secrets=keystore(tmp_path),
            clock=ManualClock(T0),
            options=WorkerOptions(once=True, inbound=False),
        ).run()
        assert len(sink.messages) == 1
    (done,) = emitted(engine, "campaign.completed", campaign="one")
    assert done["tenant"] == "acme" and done["subject"] == "campaign/one"
    res = cli("campaign", "pause", "acme/two", "--reason", "client asked to wait")
    assert res.code == 0, res.err
    (paused,) = emitted(engine, "campaign.paused", campaign="two", cause="operator")
    assert paused["data"]["reason"] == "client asked to wait"
    # lead data stays out of events: no address anywhere
    assert "lead@dest.example" not in json.dumps(events(engine))


def test_bounces_and_compose_failures_pause_with_their_cause(engine) -> None:
    from penguinctl.campaigns.plans import pause_campaign

    cid = make_campaign(engine, "acme", "b", senders=["s0@x.example"], leads=[])
    with engine.begin() as conn:
        assert pause_campaign(conn, cid, "bounce rate 12.0% (6 of 50) over 5.0%", T0,
                              cause="bounces")  # fmt: skip
        assert not pause_campaign(conn, cid, "again", T0, cause="bounces")  # already paused
    (e,) = emitted(engine, "campaign.paused", campaign="b", cause="bounces")
    assert e["data"]["reason"].startswith("bounce rate")


# -- backups ----------------------------------------------------------------------------------
def test_a_failed_state_backup_emits_backup_failed(cli, engine, tmp_path, state_url) -> None:
    target = tmp_path / "not-a-dir"
    target.write_text("a file where a directory should be")
    res = cli("backup", "state", "--to", target / "state.bak")
    assert res.code != 0
    (e,) = emitted(engine, "backup.failed", operation="state", server="")
    assert e["tenant"] is None and e["subject"] == "state" and e["data"]["error"]


# -- billing ----------------------------------------------------------------------------------
def test_invoices_and_budgets(engine) -> None:
    from test_billing import AFTER_JULY, JULY, build_fixture

    from penguinctl.billing import budgets, invoices
    from penguinctl.billing.catalog import PACKAGED, load_catalog

    build_fixture(engine)
    with engine.begin() as conn:
        budgets.set_budget(conn, "gamma", 1897, T0)
    invoices.run(engine, load_catalog(path=PACKAGED), JULY, today=AFTER_JULY)
    (inv,) = emitted(engine, "invoice.created", invoice="INV-2026-07-gamma")
    assert inv["tenant"] == "gamma" and inv["data"]["period"] == "2026-07"
    assert inv["data"]["total_cents"] == 1897 and inv["data"]["currency"] == "usd"
    assert {e["data"]["threshold"] for e in emitted(engine, "budget.threshold", tenant="gamma",
                                                      kind="budget")} == {80, 100}  # fmt: skip
    assert len(events(engine, "invoice.created")) == 4
    invoices.run(engine, load_catalog(path=PACKAGED), JULY, today=AFTER_JULY)  # idempotent
    assert len(events(engine, "invoice.created")) == 4


def test_payments_suspension_and_reactivation(migrated_engine, fake, client) -> None:  # noqa: F811
    from test_billing import campaign
    from test_billing_stripe import NOW, _billed

    from penguinctl.billing.stripe_sync import StripeSync

    engine = migrated_engine
    _billed(engine, light=True)
    with engine.begin() as conn:
        campaign(conn, "delta", "spring")
    sync = StripeSync(engine, client, now=NOW)
    fake.decline(sync.customer("delta"))
    sync.run()
    emitted(engine, "invoice.paid", invoice="INV-2026-07-gamma", tenant="gamma")
    (first,) = emitted(engine, "invoice.payment_failed", invoice="INV-2026-07-delta", attempt=1)
    assert first["tenant"] == "delta" and first["data"]["reason"]
    for day in (3, 5, 7):
        StripeSync(engine, client, now=NOW + timedelta(days=day)).run()
    assert [e["data"]["attempt"] for e in events(engine, "invoice.payment_failed")] == [1, 2, 3, 4]
    (suspended,) = emitted(engine, "tenant.suspended", tenant="delta", campaigns_paused=1)
    emitted(engine, "campaign.paused", campaign="spring", cause="billing", tenant="delta")
    fake.mark_paid(
        next(i["id"] for i in fake.invoices.values() if i["metadata"]["tenant"] == "delta")
    )
    StripeSync(engine, client, now=NOW + timedelta(days=9)).run()
    emitted(engine, "invoice.paid", invoice="INV-2026-07-delta")
    emitted(engine, "tenant.reactivated", tenant="delta", previous="suspended",
            campaigns_resumed=1)  # fmt: skip
    assert suspended


# -- serve's jobs -----------------------------------------------------------------------------
def test_the_drift_job_emits_drift_detected(cli, engine, tmp_path) -> None:
    assert cli("apply", "-f", QUICKSTART, "--yes").code == 0
    zone = tmp_path / "home" / "zones" / f"{DOMAIN}.zone"
    zone.write_text("\n".join(ln for ln in zone.read_text().splitlines() if "_dmarc" not in ln))
    res = cli("jobs", "run", "drift", "--tenant", "acme", "-o", "json")
    assert res.code == 0, res.err + res.out
    (drift,) = emitted(engine, "drift.detected", tenant="acme")
    assert drift["data"]["changes"]["create"] + drift["data"]["changes"]["update"] >= 1
    assert any("_dmarc" in r for r in drift["data"]["resources"])


def test_a_failed_job_run_emits_job_failed(cli, engine, tmp_path, monkeypatch) -> None:
    schedules = tmp_path / "schedules.json"
    schedules.write_text(json.dumps({"apiVersion": "penguinctl/v1", "kind": "Schedules",
                                     "jobs": {"boom": {"scope": "platform", "schedule":
                                              "0 3 * * *", "timeout": "5m",
                                              "run": "failjob:boom"}}}))  # fmt: skip
    monkeypatch.setenv("PENGUINCTL_SCHEDULES", str(schedules))
    res = cli("jobs", "run", "boom")
    assert res.code != 0
    (job,) = emitted(engine, "job.failed", job="boom", trigger="manual")
    assert job["tenant"] is None and "locked" in job["data"]["error"]


# -- webhooks ---------------------------------------------------------------------------------
def test_webhooks_cli_add_test_list_remove(cli, engine, tmp_path) -> None:
    from eventkit import Receiver

    from penguinctl import clock

    clock_file = tmp_path / "clock"
    clock.FileClock.write(clock_file, clock.now())
    rx = Receiver(tmp_path, clock_file, {})
    refused = cli("webhooks", "add", rx.url("/h"), "-o", "json")
    assert refused.code == 2 and "--allow-private" in refused.err
    added = cli("webhooks", "add", rx.url("/h"), "--allow-private", "--events", "check.*",
                "-o", "json")  # fmt: skip
    assert added.code == 0, added.err
    ep, secret = added.json()["id"], added.json()["secret"]
    rx.config.write_text(
        rx.config.read_text().replace("{}", json.dumps({"/h": {"secrets": [secret]}}))
    )
    with rx:
        tested = cli("webhooks", "test", ep, "-o", "json")
    assert tested.code == 0, tested.err + tested.out
    assert tested.json()["status"] == "succeeded"
    (got,) = rx.requests()
    assert got["verified"] and got["type"] == "webhook.test"
    emitted(engine, "webhook.test", endpoint=ep)
    listed = cli("webhooks", "list", "-o", "json").json()
    assert [e["id"] for e in listed] == [ep] and listed[0]["event_types"] == ["check.*"]
    log = cli("webhooks", "deliveries", ep, "--attempts", "-o", "json").json()
    assert log[0]["attempt_log"][0]["status"] == 200
    assert secret not in cli("webhooks", "list").out + json.dumps(log)
    assert cli("webhooks", "add", "https://x.example", "--tenant", "nobody").code == 2
    assert cli("webhooks", "remove", ep, "--yes").code == 0
    assert cli("webhooks", "list", "-o", "json").json() == []


def test_events_list_filters(cli, engine) -> None:
    from penguinctl.events.outbox import emit

    with engine.begin() as conn:
        for tenant, type_ in (("acme", "campaign.completed"), ("beta", "campaign.completed"),
                              ("", "campaign.completed")):  # fmt: skip
            emit(conn, type_, tenant=tenant, subject="campaign/x", payload={"campaign": "x"})
    every = cli("events", "list", "-o", "json").json()
    assert len(every) == 3
    acme = cli("events", "list", "--tenant", "acme", "-o", "json").json()
    assert [e["tenant"] for e in acme] == ["acme"]
    platform = cli("events", "list", "--tenant", "platform", "-o", "json").json()
    assert [e["tenant"] for e in platform] == [None]
    assert cli("events", "list", "--type", "check.*", "-o", "json").json() == []
    assert cli("events", "list", "--type", "nope.*").code == 2
    assert cli("events", "list", "--since", "soon").code == 2
    assert len(cli("events", "list", "--since", "1h", "-o", "json").json()) == 3
    shown = cli("events", "show", every[0]["id"], "-o", "json").json()
    assert shown["id"] == every[0]["id"]
    types = cli("events", "types", "-o", "json").json()
    assert {t["type"] for t in types} >= {"check.failed", "job.failed"}
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM events")).scalar() == 3
