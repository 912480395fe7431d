"""A tenant suspended for an unpaid invoice is read-only: its campaigns cannot be launched or
resumed, the worker sends nothing for it (even for a campaign made active again behind
billing's back), and `apply` changes it only with --force; other tenants are untouched. On
SQLite and PostgreSQL, through the real entry point and a real SMTP server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from campaignkit import keystore, make_campaign, record_mailboxes
from clitools import agency_spec, run_inprocess
from smtpsink import SmtpSink

from penguinctl.campaigns.window import ManualClock
from penguinctl.campaigns.worker import Worker, WorkerOptions

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)

CAMPAIGN = """\
apiVersion: penguinctl/v1
kind: Campaign
metadata: {name: %s, tenant: %s}
spec:
  senders: [%s]
  unsubscribe: {url: "https://track.example/u/{token}"}
  steps:
    - subject: Hello
      body: Hi there
"""


@pytest.fixture
def env(state_url, tmp_path, monkeypatch, capsys):
    from penguinctl.billing import tables as t
    from penguinctl.state.db import make_engine, migrate

    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_SECRETS", "keystore")
    engine = make_engine(state_url)
    migrate(engine)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for tenant, status in (("late", "suspended"), ("good", "active")):
            conn.execute(
                sa.insert(t.accounts).values(
                    tenant=tenant, status=status, created_at=now, updated_at=now
                )
            )

    def cli(*args):
        return run_inprocess(capsys, "--state", state_url, *args)

    yield engine, cli, tmp_path
    engine.dispose()


def status_of(engine, tenant: str, name: str) -> str:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT status FROM campaigns WHERE tenant = :t AND name = :n"),
            {"t": tenant, "n": name},
        ).scalar_one()


def test_campaigns_of_a_suspended_tenant(env) -> None:
    engine, cli, tmp_path = env
    with SmtpSink(tmp_path) as sink:
        record_mailboxes(engine, "late", ["a@late.example"], smtp_port=sink.port)
        record_mailboxes(engine, "good", ["b@good.example"], smtp_port=sink.port)
        spec = tmp_path / "late.yaml"
        spec.write_text(CAMPAIGN % ("new", "late", "a@late.example"))
        res = cli("campaign", "launch", "-f", spec)
        assert res.code == 2
        assert "tenant late is suspended for an unpaid invoice (read-only)" in res.err
        assert "cannot launch campaign new" in res.err and "billing sync" in res.err

        # a campaign launched before the suspension (which paused it), and one of another tenant
        make_campaign(
            engine, "late", "old", senders=["a@late.example"], leads=[{"email": "x@d.example"}]
        )
        make_campaign(
            engine, "good", "fine", senders=["b@good.example"], leads=[{"email": "y@d.example"}]
        )
        assert cli("campaign", "pause", "late/old").code == 0  # pausing is always allowed
        res = cli("campaign", "resume", "late/old")
        assert res.code == 2 and "cannot resume campaign old" in res.err
        assert status_of(engine, "late", "old") == "paused"

        # made active behind billing's back: the worker still sends nothing for the tenant
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE campaigns SET status = 'active' WHERE name = 'old'"))
        options = WorkerOptions(once=True, inbound=False)
        summary = Worker(
            engine, secrets=keystore(tmp_path), clock=ManualClock(T0), options=options
        ).run()
        assert summary.per_mailbox == {"b@good.example": 1}
        assert [rcpts for _, rcpts, _ in sink.messages] == [["y@d.example"]]

    # paid: billing reactivates the tenant, and the campaign can be resumed
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE billing_accounts SET status = 'active' WHERE tenant = 'late'"))
    assert cli("campaign", "pause", "late/old").code == 0
    assert cli("campaign", "resume", "late/old").code == 0
    assert status_of(engine, "late", "old") == "active"


def test_apply_to_a_suspended_tenant_needs_force(env) -> None:
    _engine, cli, tmp_path = env
    spec = tmp_path / "late-infra.yaml"
    spec.write_text(agency_spec(1, tenant="late"))
    res = cli("--yes", "apply", "-f", spec)
    assert res.code == 4
    assert "changes tenant late, suspended for an unpaid invoice (read-only)" in res.err
    assert "--force" in res.err
    assert cli("-o", "json", "get", "domains").out.count("client00000.example") == 0
    other = tmp_path / "good-infra.yaml"
    # names are owned per tenant: good's spec names its own server and domain
    other.write_text(
        agency_spec(1, tenant="good")
        .replace("shared-mx", "good-mx")
        .replace("mx.agency-mail", "mx.good-mail")
        .replace("client00000", "good00000")
    )
    assert cli("--yes", "apply", "-f", other).code == 0  # another tenant: as usual
    assert cli("--yes", "apply", "--force", "-f", spec).code == 0  # the operator insists
