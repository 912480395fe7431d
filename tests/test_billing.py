"""Billing: catalog, plan history, metering, invoices (hand-checked numbers), idempotent and
resumable runs on SQLite and PostgreSQL, budgets, the CLI, plan limits in specs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from clitools import REPO, run_inprocess

from penguinctl.billing import history, invoices
from penguinctl.billing import tables as t
from penguinctl.billing.catalog import PACKAGED, load_catalog
from penguinctl.billing.periods import Period, prorate
from penguinctl.errors import ConfigError, UsageError

pytestmark = pytest.mark.clock  # date-sensitive: scripts/test re-runs it under shifted clocks

JULY = Period(2026, 7)
AFTER_JULY = date(2026, 8, 2)


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- fixture helpers (also used by test_billing_stripe.py) ------------------------------------
def add_resource(conn, tenant, kind, name, data, created, provider="state", status="applied"):
    table = sa.Table("resources", sa.MetaData(), autoload_with=conn)
    conn.execute(
        sa.insert(table).values(
            tenant=tenant,
            kind=kind,
            name=name,
            provider=provider,
            data=data,
            status=status,
            created_at=created,
            updated_at=created,
        )
    )


def add_tenant(conn, name, plan, created, contact=None):
    add_resource(conn, name, "tenant", name, {"plan": plan, "contact": contact}, created)
    history.assign_plan(conn, tenant=name, plan=plan, at=created, source="apply")


def campaign(conn, tenant, name="c1", status="active") -> int:
    table = sa.Table("campaigns", sa.MetaData(), autoload_with=conn)
    return conn.execute(
        sa.insert(table)
        .values(
            tenant=tenant,
            name=name,
            status=status,
            spec={},
            spec_hash="x",
            created_at=ts("2026-06-01T00:00:00"),
            updated_at=ts("2026-06-01T00:00:00"),
        )
        .returning(table.c.id)
    ).scalar_one()


def add_sends(conn, tenant, campaign_id, n, sent_at, status="sent") -> None:
    """``n`` ledger rows in one INSERT ... SELECT over a recursive sequence (SQLite and PG)."""
    conn.execute(
        sa.text(
            "INSERT INTO campaign_sends (tenant, campaign_id, lead_id, step, mailbox, recipient, "
            "message_id, status, claimed_at, sent_at) "
            "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < :n) "
            "SELECT :tenant, :cid, NULL, 0, 'john@x.example', 'lead@y.example', "
            "'<m' || i || '@x>', :status, :at, :sent FROM seq"
        ).bindparams(
            sa.bindparam("at", type_=sa.DateTime(timezone=True)),
            sa.bindparam("sent", type_=sa.DateTime(timezone=True)),
        ),
        {
            "n": n,
            "tenant": tenant,
            "cid": campaign_id,
            "status": status,
            "at": sent_at,
            "sent": sent_at if status == "sent" else None,
        },
    )


def build_fixture(engine, *, light: bool = False) -> None:
    """Four tenants, July 2026 (31 days), packaged catalog. Expected totals in EXPECTED
    (``light``: without the big send volumes, for tests that only look at delta and gamma)."""
    with engine.begin() as conn:
        # acme: professional all month; 50,001 emails (1 over -> one 10k block); a Hostwinds
        # server at $9.99/month with one IPv4 (no dedicated IP included); an external server.
        add_tenant(conn, "acme", "professional", ts("2026-05-03T09:00:00"), "ops@acme.example")
        add_resource(
            conn,
            "acme",
            "server",
            "mx1",
            {"provider": "hostwinds", "monthly_cost": 9.99, "ips": ["192.0.2.10", "2001:db8::10"]},
            ts("2026-06-10T08:00:00"),
            provider="server:hostwinds",
        )
        add_resource(
            conn,
            "acme",
            "server",
            "ext",
            {"provider": "external", "ips": ["192.0.2.99"]},
            ts("2026-06-10T08:00:00"),
            provider="server:external",
        )
        for i in range(3):
            add_resource(conn, "acme", "domain", f"d{i}.example", {}, ts("2026-06-01T00:00:00"))
            add_resource(conn, "acme", "mailbox", f"j@d{i}.example", {}, ts("2026-06-01T00:00:00"))
        cid = campaign(conn, "acme")
        add_sends(conn, "acme", cid, 1 if light else 50_001, ts("2026-07-15T10:00:00"))
        add_sends(conn, "acme", cid, 7, ts("2026-06-30T23:59:59"))  # June
        add_sends(conn, "acme", cid, 5, ts("2026-08-01T00:00:00"))  # August
        add_sends(conn, "acme", cid, 11, ts("2026-07-15T10:00:00"), status="failed")
        add_sends(conn, "acme", cid, 13, ts("2026-07-15T10:00:00"), status="claimed")
        # beta: starter, upgraded to business on 15 July 10:00: 14 days starter, 17 business.
        # included = 10000*14/31 (4516) + 200000*17/31 (109677) = 114193; sends exactly that.
        add_tenant(conn, "beta", "starter", ts("2026-04-01T00:00:00"))
        history.assign_plan(conn, tenant="beta", plan="business", at=ts("2026-07-15T10:00:00"))
        cid = campaign(conn, "beta")
        add_sends(conn, "beta", cid, 1 if light else 114_193, ts("2026-07-20T10:00:00"))
        # gamma: created on 20 July 14:00 on starter: 12 days, no sends.
        add_tenant(conn, "gamma", "starter", ts("2026-07-20T14:00:00"))
        # delta: starter all month, nothing used.
        add_tenant(conn, "delta", "starter", ts("2026-01-01T00:00:00"))
        # epsilon: starts in August: not billed for July.
        add_tenant(conn, "epsilon", "starter", ts("2026-08-01T00:00:00"))


EXPECTED = {
    # 14900 plan + 1000 one extra block + 5000 one dedicated IP + 999 server
    "acme": [("plan", 14900), ("overage", 1000), ("addon", 5000), ("infrastructure", 999)],
    # round(4900*14/31)=2213 (2212.90), round(39900*17/31)=21881 (21880.65); no overage
    "beta": [("plan", 2213), ("plan", 21881)],
    "gamma": [("plan", 1897)],  # 4900*12/31 = 1896.77
    "delta": [("plan", 4900)],
}
TOTALS = {"acme": 21899, "beta": 24094, "gamma": 1897, "delta": 4900}


@pytest.fixture
def catalog():
    return load_catalog(path=PACKAGED)


def _lines(engine, tenant):
    with engine.connect() as conn:
        inv = invoices.get_invoice(conn, f"INV-2026-07-{tenant}")
    return inv, [(line["kind"], line["amount_cents"]) for line in inv["lines"]]


# -- pure pieces ------------------------------------------------------------------------------
def test_periods_and_rounding() -> None:
    assert (
        JULY.days == 31 and Period(2028, 2).days == 29 and Period(2026, 12).next == Period(2027, 1)
    )
    assert str(Period.parse("2026-07")) == "2026-07"
    for bad in ("2026-13", "2026-7", "July", "2026-00"):
        with pytest.raises(UsageError):
            Period.parse(bad)
    assert prorate(4900, 31, 31) == 4900
    assert prorate(4900, 14, 31) == 2213  # 2212.90
    assert prorate(39900, 17, 31) == 21881  # 21880.65
    assert prorate(100, 1, 2) == 50 and prorate(1, 1, 2) == 1  # half up: 0.5 -> 1
    assert prorate(3, 1, 2) == 2  # 1.5 -> 2
    assert not JULY.ended(date(2026, 7, 31)) and JULY.ended(date(2026, 8, 1))


def test_catalog_versions_override_and_errors(tmp_path: Path, catalog) -> None:
    assert catalog.plan("starter").current(date(2026, 7, 1)).monthly_price == 4900
    with pytest.raises(ConfigError, match="not in the plan catalog"):
        catalog.plan("gold")
    override = tmp_path / "config" / "plans.yaml"
    override.parent.mkdir()
    override.write_text(
        textwrap.dedent("""\
        currency: usd
        addons: {dedicated_ip: 5000, extra_workspace: 2000, extra_emails: 1000}
        plans:
          starter:
            name: Starter
            limits: {domains: 2}
            versions:
              - {version: 1, effective_from: 2026-01-01, monthly_price: 4900, included_emails: 10}
              - {version: 2, effective_from: 2026-07-10, monthly_price: 5900, included_emails: 10}
        """)
    )
    cat = load_catalog(env={"PENGUINCTL_HOME": str(tmp_path)})
    assert cat.source == str(override)
    assert cat.version("starter", None, on=date(2026, 7, 9)).monthly_price == 4900
    assert cat.version("starter", None, on=date(2026, 7, 10)).monthly_price == 5900
    assert cat.version("starter", 1, on=date(2026, 12, 1)).monthly_price == 4900  # pinned
    override.write_text("currency: USD\naddons: {}\nplans: {}\n")
    with pytest.raises(ConfigError, match=r"plans.yaml: currency"):
        load_catalog(env={"PENGUINCTL_HOME": str(tmp_path)})
    override.write_text("plans: [\n")
    with pytest.raises(ConfigError, match=r"plans.yaml:\d+:\d+: invalid YAML"):
        load_catalog(env={"PENGUINCTL_HOME": str(tmp_path)})


# -- the multi-tenant month -------------------------------------------------------------------
def test_multi_tenant_month_hand_checked(migrated_engine, catalog) -> None:
    build_fixture(migrated_engine)
    results = invoices.run(migrated_engine, catalog, JULY, today=AFTER_JULY)
    assert {r.tenant: r.status for r in results} == dict.fromkeys(TOTALS, "created")
    assert {r.tenant: r.total_cents for r in results} == TOTALS
    for tenant, expected in EXPECTED.items():
        inv, lines = _lines(migrated_engine, tenant)
        assert lines == expected, tenant
        assert inv["total_cents"] == sum(a for _, a in expected) and inv["currency"] == "usd"
    acme, _ = _lines(migrated_engine, "acme")
    assert acme["usage"]["emails_sent"] == 50_001 and acme["usage"]["included_emails"] == 50_000
    assert acme["usage"]["domains"] == 3 and acme["usage"]["mailboxes"] == 3
    assert acme["usage"]["dedicated_ips"] == 1
    assert acme["lines"][1]["quantity"] == 1 and acme["lines"][1]["unit_amount_cents"] == 1000
    beta, _ = _lines(migrated_engine, "beta")
    assert [d["days"] for d in (beta["lines"][0]["details"], beta["lines"][1]["details"])] == [
        14,
        17,
    ]
    assert beta["usage"]["included_emails"] == 114_193 and beta["usage"]["emails_sent"] == 114_193

    # idempotent: a second run changes nothing, even after late sends
    with migrated_engine.begin() as conn:
        add_sends(conn, "delta", campaign(conn, "delta"), 3, ts("2026-07-31T23:00:00"))
    again = invoices.run(migrated_engine, catalog, JULY, today=AFTER_JULY)
    assert {r.status for r in again} == {"exists"}
    assert {r.tenant: r.total_cents for r in again} == TOTALS
    with migrated_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.invoices)).scalar() == 4
        assert conn.execute(sa.select(sa.func.count()).select_from(t.lines)).scalar() == 8
        audited = conn.execute(
            sa.text("SELECT count(*) FROM audit_events WHERE action = 'billing.invoice'")
        ).scalar()
    assert audited == 4


def test_unique_constraint_holds_even_if_code_does_not_check(migrated_engine, catalog) -> None:
    build_fixture(migrated_engine)
    invoices.run(migrated_engine, catalog, JULY, today=AFTER_JULY, tenants=["delta"])
    with migrated_engine.connect() as conn:
        draft = invoices.preview(conn, catalog, "delta", JULY)
    with pytest.raises(sa.exc.IntegrityError), migrated_engine.begin() as conn:
        invoices._insert(conn, draft, ts("2026-08-02T00:00:00"))


def test_crash_between_invoices_resumes_without_duplicates(migrated_engine, catalog) -> None:
    build_fixture(migrated_engine)

    class Crash(Exception):
        pass

    def crash_after_two(result):
        if result.tenant == "beta":
            raise Crash

    with pytest.raises(Crash):
        invoices.run(migrated_engine, catalog, JULY, today=AFTER_JULY, on_result=crash_after_two)
    with migrated_engine.connect() as conn:
        done = sorted(conn.execute(sa.select(t.invoices.c.tenant)).scalars())
    assert done == ["acme", "beta"]
    results = invoices.run(migrated_engine, catalog, JULY, today=AFTER_JULY)
    assert {r.tenant: r.status for r in results} == {
        "acme": "exists",
        "beta": "exists",
        "delta": "created",
        "gamma": "created",
    }
    with migrated_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.invoices)).scalar() == 4
        assert conn.execute(sa.select(sa.func.count()).select_from(t.lines)).scalar() == 8


def test_sigkilled_run_resumes(tmp_path: Path) -> None:
    """A real process killed with SIGKILL mid-run (after its first invoice committed)."""
    from penguinctl.state.db import make_engine, migrate

    url = f"sqlite:///{tmp_path / 'state.db'}"
    engine = make_engine(url)
    migrate(engine)
    build_fixture(engine)
    script = textwrap.dedent(f"""\
        import os, signal, sys
        from datetime import date
        sys.path.insert(0, {str(REPO)!r})
        from penguinctl.billing import invoices
        from penguinctl.billing.catalog import load_catalog, PACKAGED
        from penguinctl.billing.periods import Period
        from penguinctl.state.db import make_engine
        def die(result):
            os.kill(os.getpid(), signal.SIGKILL)
        invoices.run(make_engine({url!r}), load_catalog(path=PACKAGED), Period(2026, 7),
                     today=date(2026, 8, 2), on_result=die)
        """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.invoices)).scalar() == 1
    results = invoices.run(engine, load_catalog(path=PACKAGED), JULY, today=AFTER_JULY)
    assert sorted(r.status for r in results) == ["created", "created", "created", "exists"]
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.lines)).scalar() == 8
    engine.dispose()


def test_open_period_refused_and_unknown_tenant(migrated_engine, catalog) -> None:
    build_fixture(migrated_engine)
    with pytest.raises(UsageError, match="has not ended"):
        invoices.run(migrated_engine, catalog, JULY, today=date(2026, 7, 31))
    from penguinctl.errors import NotFound

    with pytest.raises(NotFound, match="epsilon"):
        invoices.run(migrated_engine, catalog, JULY, today=AFTER_JULY, tenants=["epsilon"])


def test_custom_priced_plan_fails_alone(migrated_engine, catalog) -> None:
    with migrated_engine.begin() as conn:
        add_tenant(conn, "big", "enterprise", ts("2026-01-01T00:00:00"))
        add_tenant(conn, "small", "starter", ts("2026-01-01T00:00:00"))
    results = {r.tenant: r for r in invoices.run(migrated_engine, catalog, JULY, today=AFTER_JULY)}
    assert results["small"].status == "created"
    assert results["big"].status == "failed" and "custom" in results["big"].error


def test_grandfathered_version_and_plan_history_hook(
    tmp_path: Path, migrated_engine, monkeypatch
) -> None:
    """A tenant keeps the version current when it was assigned; a new tenant gets the new
    price; an explicit pin wins."""
    plans = tmp_path / "plans.yaml"
    plans.write_text(
        textwrap.dedent("""\
        addons: {dedicated_ip: 5000, extra_workspace: 2000, extra_emails: 1000}
        plans:
          starter:
            name: Starter
            versions:
              - {version: 1, effective_from: 2026-01-01, monthly_price: 4900, included_emails: 10}
              - {version: 2, effective_from: 2026-06-01, monthly_price: 5900, included_emails: 10}
        """)
    )
    monkeypatch.setenv("PENGUINCTL_PLANS", str(plans))
    catalog = load_catalog()
    with migrated_engine.begin() as conn:
        for name, at in (("old", "2026-03-01T00:00:00"), ("new", "2026-06-15T00:00:00")):
            add_resource(conn, name, "tenant", name, {"plan": "starter"}, ts(at))
            history.assign_plan(conn, tenant=name, plan="starter", at=ts(at))  # pins by date
        add_resource(conn, "pinned", "tenant", "pinned", {"plan": "starter"}, ts(at))
        history.assign_plan(conn, tenant="pinned", plan="starter", at=ts(at), version=1)
    got = {
        r.tenant: r.total_cents
        for r in invoices.run(migrated_engine, catalog, JULY, today=AFTER_JULY)
    }
    assert got == {"old": 4900, "new": 5900, "pinned": 4900}

    # the recording hook: apply recording a Tenant writes plan history; same plan: no new row
    from penguinctl.plan.changes import Action, Change, ChangeResult
    from penguinctl.resources import ResourceKey
    from penguinctl.state.db import session_scope
    from penguinctl.state.recording import record_results

    key = ResourceKey("tenant", "zeta", "zeta")

    def result(action, plan):
        after = None if plan is None else {"plan": plan}
        return ChangeResult(Change(action, key, "state", None, after), after)

    for action, plan in (
        (Action.CREATE, "starter"),
        (Action.UPDATE, "starter"),
        (Action.UPDATE, "business"),
        (Action.DELETE, None),
    ):
        with session_scope(migrated_engine) as s:
            record_results(s, [result(action, plan)], actor="t", run_id=None)
    with migrated_engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.assignments.c.plan, t.assignments.c.effective_to.is_(None))
            .where(t.assignments.c.tenant == "zeta")
            .order_by(t.assignments.c.id)
        ).all()
    assert [(p, open_) for p, open_ in rows] == [("starter", False), ("business", False)]


def test_backfill_for_tenants_recorded_before_billing(migrated_engine, catalog) -> None:
    with migrated_engine.begin() as conn:
        add_resource(
            conn, "legacy", "tenant", "legacy", {"plan": "professional"}, ts("2026-07-11T00:00:00")
        )
    results = invoices.run(migrated_engine, catalog, JULY, today=AFTER_JULY)
    assert [(r.tenant, r.total_cents) for r in results] == [("legacy", prorate(14900, 21, 31))]


# -- budgets ----------------------------------------------------------------------------------
def test_budget_and_allowance_alerts_once(migrated_engine, catalog) -> None:
    from penguinctl.billing import budgets

    build_fixture(migrated_engine)
    now = ts("2026-08-02T00:00:00")
    with migrated_engine.begin() as conn:
        budgets.set_budget(conn, "delta", 6000, now)  # 4900 of 6000 = 81.7%
        budgets.set_budget(conn, "gamma", 1897, now)  # exactly 100%
    results = {r.tenant: r for r in invoices.run(migrated_engine, catalog, JULY, today=AFTER_JULY)}
    got = lambda r: sorted((a["kind"], a["threshold"]) for a in r.alerts)  # noqa: E731
    assert got(results["acme"]) == [("emails", 80), ("emails", 100)]
    assert got(results["beta"]) == [("emails", 80), ("emails", 100)]  # exactly the allowance
    assert got(results["delta"]) == [("budget", 80)]
    assert got(results["gamma"]) == [("budget", 80), ("budget", 100)]
    with migrated_engine.begin() as conn:
        draft = invoices.preview(conn, catalog, "delta", JULY)
        again = budgets.evaluate(conn, "delta", JULY, draft, now=now)
        assert [a["new"] for a in again] == [False]
        assert conn.execute(sa.select(sa.func.count()).select_from(t.alerts)).scalar() == 7


# -- CLI --------------------------------------------------------------------------------------
@pytest.fixture
def cli(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_TODAY", "2026-08-02")
    monkeypatch.delenv("PENGUINCTL_PLANS", raising=False)
    url = f"sqlite:///{tmp_path / 'state.db'}"

    def run(*args):
        return run_inprocess(capsys, "--state", url, *args)

    run.url = url
    return run


def test_cli_run_list_show_export(cli, tmp_path) -> None:
    from penguinctl.state.db import make_engine, migrate

    engine = make_engine(cli.url)
    migrate(engine)
    build_fixture(engine)
    engine.dispose()
    res = cli("billing", "run", "--period", "2026-07", "-o", "json")
    assert res.code == 0, res.err
    data = res.json()
    assert (
        data["created"] == 4 and {i["tenant"]: i["total_cents"] for i in data["invoices"]} == TOTALS
    )
    res = cli("billing", "run", "--period", "2026-07")
    assert res.code == 0 and "0 created, 4 already invoiced" in res.out
    assert cli("billing", "run", "--period", "2026-08").code == 2  # not ended

    listed = cli("invoices", "list", "-o", "json").json()
    assert [i["number"] for i in listed] == [f"INV-2026-07-{n}" for n in sorted(TOTALS)]
    shown = cli("invoices", "show", "INV-2026-07-acme", "-o", "json").json()
    assert shown["total_cents"] == 21899 and len(shown["lines"]) == 4
    assert cli("invoices", "show", str(shown["id"]), "--format", "json").json()["id"] == shown["id"]
    html = cli("invoices", "show", "INV-2026-07-acme", "--format", "html").out
    assert "<!DOCTYPE html>" in html and "$218.99" in html and "ops@acme.example" in html
    assert "Extra emails: 50,001 sent, 50,000 included" in html
    csv_text = cli("invoices", "show", "INV-2026-07-beta", "--format", "csv").out
    assert (
        csv_text.splitlines()[0].startswith("number,tenant,period")
        and len(csv_text.splitlines()) == 3
    )
    out = tmp_path / "july.csv"
    res = cli("invoices", "export", "--period", "2026-07", "--out", str(out))
    assert res.code == 0 and len(out.read_text().splitlines()) == 1 + 8
    exported = cli("invoices", "export", "--format", "json").json()
    assert sum(i["total_cents"] for i in exported) == sum(TOTALS.values())
    missing = cli("invoices", "show", "INV-nope")
    assert missing.code == 2 and "not found" in missing.err

    usage = cli("billing", "usage", "acme", "--period", "2026-07", "-o", "json").json()
    assert usage["usage"]["emails_sent"] == 50_001 and usage["total_cents"] == 21899
    assert usage["final"] is True
    text = cli("billing", "usage", "acme", "--period", "2026-07").out
    assert "emails sent 50,001 of 50,000 included" in text
    assert cli("billing", "budget", "acme", "100").code == 0
    alerts = cli("billing", "alerts", "--period", "2026-07", "-o", "json").json()
    assert ("acme", "budget", 100) in {(a["tenant"], a["kind"], a["threshold"]) for a in alerts}
    assert cli("billing", "budget", "acme", "12.345").code == 2
    plans = cli("billing", "plans", "-o", "json").json()
    assert plans["plans"]["business"]["versions"][0]["monthly_price"] == 39900


def test_html_is_autoescaped() -> None:
    from penguinctl.billing.render import html

    inv = {
        "number": "INV-1",
        "tenant": "<script>x</script>",
        "period": "2026-07",
        "period_start": ts("2026-07-01T00:00:00"),
        "period_end": ts("2026-08-01T00:00:00"),
        "created_at": ts("2026-08-02T00:00:00"),
        "status": "issued",
        "currency": "usd",
        "total_cents": 5,
        "usage": {
            "emails_sent": 0,
            "included_emails": None,
            "domains": 0,
            "mailboxes": 0,
            "dedicated_ips": 0,
        },
        "lines": [
            {"description": "a & <b>", "quantity": 1, "unit_amount_cents": 5, "amount_cents": 5}
        ],
    }
    out = html(inv)
    assert "<script>x" not in out and "&lt;script&gt;" in out and "a &amp; &lt;b&gt;" in out


# -- plan limits in specs ---------------------------------------------------------------------
def _spec(tmp_path: Path, plan: str, domains: int, mailboxes: int = 1) -> Path:
    docs = [
        "apiVersion: penguinctl/v1\nkind: Tenant\nmetadata: {name: acme}\n"
        f"spec: {{plan: {plan}}}\n",
        "apiVersion: penguinctl/v1\nkind: Server\nmetadata: {name: mx1, tenant: acme}\n"
        "spec: {provider: external, external: {ips: [192.0.2.1]}, hostname: mx.acme.example}\n",
        "apiVersion: penguinctl/v1\nkind: DnsProvider\nmetadata: {name: z, tenant: acme}\n"
        "spec: {type: zonefile}\n",
    ]
    for i in range(domains):
        boxes = "".join(f"    - {{local: u{j}}}\n" for j in range(mailboxes))
        docs.append(
            "apiVersion: penguinctl/v1\nkind: Domain\n"
            f"metadata: {{name: d{i}.example, tenant: acme}}\n"
            f"spec:\n  server: mx1\n  dns: z\n  mailboxes:\n{boxes}"
        )
    path = tmp_path / f"{plan}-{domains}.yaml"
    path.write_text("---\n".join(docs))
    return path


def test_plan_limits_refuse_apply(cli, tmp_path) -> None:
    ok = cli("validate", "-f", _spec(tmp_path, "starter", 5))
    assert ok.code == 0, ok.err
    res = cli("apply", "-f", _spec(tmp_path, "starter", 6), "--yes")
    assert res.code == 3, res.err
    assert "6 domains, but plan starter allows 5" in res.err
    assert "starter-6.yaml:4:8:" in res.err  # located at the tenant's plan
    assert cli("apply", "-f", _spec(tmp_path, "professional", 6), "--yes").code == 0
    from penguinctl.state.db import make_engine

    engine = make_engine(cli.url)  # apply recorded the plan history through the hook
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                t.assignments.c.tenant,
                t.assignments.c.plan,
                t.assignments.c.version,
                t.assignments.c.source,
            )
        ).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("acme", "professional", 1, "apply")]
    res = cli("validate", "-f", _spec(tmp_path, "gold", 1))
    assert res.code == 3 and "plan 'gold' is not in the plan catalog" in res.err
    # an operator's catalog with a mailbox limit
    home = Path(os.environ["PENGUINCTL_HOME"])
    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "config" / "plans.yaml").write_text(
        PACKAGED.read_text().replace(
            "limits: {domains: 5, mailboxes: null", "limits: {domains: 5, mailboxes: 4"
        )
    )
    res = cli("validate", "-f", _spec(tmp_path, "starter", 2, mailboxes=3))
    assert res.code == 3 and "6 mailboxes, but plan starter allows 4" in res.err
