"""`campaign launch|pause|resume|status|stats`, `leads import|export|forget`, `suppress ...`
through the real entry point, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json

import pytest
import sqlalchemy as sa

from tests.campaigndata import add_send
from tests.clitools import run_inprocess

SPEC = """\
apiVersion: penguinctl/v1
kind: Campaign
metadata: {name: q4, tenant: acme}
spec:
  senders: [john@acme-mail.example]
  schedule: {timezone: lead, fallback_timezone: America/New_York, hours: "09:00-17:00"}
  unsubscribe: {url: "https://track.acme-mail.example/u/{token}"}
  steps:
    - subject: "{Quick|Short} question, {{ first_name | default('there') }}"
      body: "Hi {{ first_name | default('there') }}"
      variants: [{name: B, weight: 50, subject: "Idea for {{ company | default('you') }}"}]
    - delay: 3d
      body: "Bump"
"""


@pytest.fixture
def cli(state_url, tmp_path, monkeypatch, capsys):
    from penguinctl.state.db import make_engine, migrate
    from tests.campaignkit import record_mailboxes

    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_SECRETS", "keystore")
    engine = make_engine(state_url)
    migrate(engine)
    record_mailboxes(engine, "acme", ["john@acme-mail.example"], smtp_port=2525)

    def run(*args):
        return run_inprocess(capsys, "--state", state_url, *args)

    run.engine = engine
    run.path = tmp_path
    yield run
    engine.dispose()


def write(cli, name, text):
    path = cli.path / name
    path.write_text(text)
    return str(path)


def audit_actions(engine):
    from penguinctl.state.models import AuditEvent

    with engine.connect() as conn:
        return [r.action for r in conn.execute(sa.select(AuditEvent.__table__))]


def test_launch_import_stats_pause(cli):
    spec = write(cli, "c.yaml", SPEC)
    r = cli("campaign", "launch", "-f", spec, "-o", "json")
    assert r.code == 0, r.err
    assert r.json()["action"] == "created" and r.json()["status"] == "active"
    assert cli("campaign", "launch", "-f", spec, "-o", "json").json()["action"] == "unchanged"

    leads = write(
        cli, "l.csv", "email,first_name\nann@example.com,Ann\nbad@,X\nbo@example.com,Bo\n"
    )
    r = cli("leads", "import", "q4", leads, "-o", "json")
    assert r.code == 6, r.err
    assert r.json()["created"] == 2 and r.json()["rejected"] == 1
    assert r.json()["errors"][0]["location"].endswith("l.csv:3:1")
    r = cli("leads", "import", "acme/q4", leads)
    assert r.code == 6 and "l.csv:3:1: line 3: email 'bad@'" in r.err

    from penguinctl.campaigns.models import Campaign, Lead
    from penguinctl.state.db import session_scope

    with session_scope(cli.engine) as s:
        campaign = s.execute(sa.select(Campaign)).scalar_one()
        for lead in s.execute(sa.select(Lead)).scalars():
            add_send(s, campaign, lead, 0, "A")
    r = cli("campaign", "stats", "q4", "-o", "json")
    assert r.code == 0, r.err
    steps = {(x["step"], x["variant"]): x for x in r.json()["steps"]}
    assert steps[(1, "A")]["sent"] == 2 and steps[(1, "B")]["sent"] == 0
    r = cli("campaign", "stats", "q4", "-o", "csv")
    rows = list(csv.DictReader(io.StringIO(r.out)))
    assert [(x["step"], x["variant"], x["sent"]) for x in rows] == [
        ("1", "A", "2"),
        ("1", "B", "0"),
        ("2", "A", "0"),
    ]
    r = cli("campaign", "stats", "q4")
    assert r.code == 0 and "reply%" in r.out

    r = cli("campaign", "pause", "q4", "--reason", "review copy", "-o", "json")
    assert r.json()["status"] == "paused" and r.json()["paused_reason"] == "review copy"
    r = cli("campaign", "status", "q4", "-o", "json")
    assert r.json()["status"] == "paused" and r.json()["leads"] == 2 and r.json()["sent"] == 2
    assert cli("campaign", "resume", "acme/q4", "-o", "json").json()["status"] == "active"
    assert cli("campaign", "resume", "acme/q4", "-o", "json").json()["changed"] is False
    r = cli("get", "campaigns", "-o", "json")
    assert r.json() == [
        {
            "tenant": "acme",
            "name": "q4",
            "status": "active",
            "steps": 2,
            "leads": 2,
            "sent": 2,
            "ambiguous": 0,
        }
    ]
    actions = audit_actions(cli.engine)
    for action in (
        "campaign.launch",
        "leads.import",
        "campaign.pause",
        "campaign.resume",
        "secret.create",
    ):
        assert action in actions

    # re-launch: removing a step that has sends is refused without --force
    shorter = write(
        cli,
        "short.yaml",
        SPEC.split("    - delay: 3d")[0].replace(
            "variants: [{name: B, weight: 50, subject: \"Idea for {{ company | default('you') }}\"}]",  # noqa: E501
            "",
        ),
    )
    with session_scope(cli.engine) as s:
        campaign = s.execute(sa.select(Campaign)).scalar_one()
        lead = s.execute(sa.select(Lead).where(Lead.email == "ann@example.com")).scalar_one()
        add_send(s, campaign, lead, 1, "A")
    r = cli("campaign", "launch", "-f", shorter)
    assert r.code == 4 and "step(s) 2 would be removed" in r.err
    r = cli("campaign", "launch", "-f", shorter, "--force", "-o", "json")
    assert r.code == 0 and r.json()["action"] == "updated" and r.json()["steps"] == 1


def test_launch_errors(cli):
    bad = write(
        cli,
        "bad.yaml",
        SPEC.replace("john@acme-mail.example", "nobody@acme-mail.example").replace(
            'hours: "09:00-17:00"', 'hours: "9-5"'
        ),
    )
    r = cli("campaign", "launch", "-f", bad)
    assert r.code == 3
    assert "bad.yaml:6:" in r.err and "HH:MM" in r.err
    fixed = write(
        cli, "bad2.yaml", SPEC.replace("john@acme-mail.example", "nobody@acme-mail.example")
    )
    r = cli("campaign", "launch", "-f", fixed)
    assert r.code == 3 and "bad2.yaml:5:13" in r.err and "not a recorded mailbox" in r.err
    assert cli("campaign", "status", "missing").code == 2


def test_suppress_and_privacy(cli):
    cli("campaign", "launch", "-f", write(cli, "c.yaml", SPEC))
    cli("leads", "import", "q4", write(cli, "l.csv", "email,first_name\nann@example.com,Ann\n"))
    r = cli(
        "suppress", "add", "bob@example.com", "Cat@Example.com", "--tenant", "acme", "-o", "json"
    )
    assert r.json() == {"scope": "tenant", "scope_ref": "acme", "added": 2, "existing": 0}
    assert cli("suppress", "add", "nope@", "--tenant", "acme").code == 2
    assert cli("suppress", "add", "x@example.com", "--campaign", "q4").code == 2
    r = cli("suppress", "check", "cat@example.com", "-o", "json")
    assert r.json()["suppressed"] is True and r.json()["entries"][0]["scope_ref"] == "acme"
    r = cli("suppress", "check", "cat@example.com", "--tenant", "other", "-o", "json")
    assert r.json()["suppressed"] is False
    lst = write(cli, "s.txt", "dan@example.com\nbroken\n")
    r = cli("suppress", "import", lst, "--tenant", "acme", "--campaign", "q4", "-o", "json")
    assert r.code == 6 and r.json()["added"] == 1

    r = cli("leads", "export", "ann@example.com", "-o", "json")
    assert r.json()["leads"][0]["first_name"] == "Ann"
    r = cli("leads", "forget", "ann@example.com")  # not a terminal: needs --yes
    assert r.code == 2
    r = cli("leads", "forget", "ann@example.com", "--yes", "-o", "json")
    assert r.code == 0 and r.json()["leads"] == 1
    r = cli("leads", "export", "ann@example.com", "-o", "json")
    assert r.json()["leads"] == [] and r.json()["suppressions"][0]["reason"] == "forgotten"
    from penguinctl.state.models import AuditEvent

    with cli.engine.connect() as conn:
        events = conn.execute(sa.select(AuditEvent.__table__)).all()
    dumped = json.dumps([dict(e._mapping) for e in events], default=str)
    assert "leads.forget" in dumped and "leads.export" in dumped
    assert "ann@example.com" not in dumped and "cat@example.com" not in dumped
