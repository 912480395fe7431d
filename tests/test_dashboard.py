"""The dashboard over real HTTP (uvicorn on 127.0.0.1, both state backends): signing in with an
API key, the session cookie's attributes, idle expiry and revocation, CSRF on every POST, the
role deciding what is shown and what a POST may do, and the tenant wall on every page (a tenant
key never sees another tenant's domain, server, campaign, job, invoice or audit row)."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
import sqlalchemy as sa
from campaignkit import keystore, make_campaign
from clitools import QUICKSTART, run_inprocess
from dashkit import (
    ACME_DOMAINS,
    GLOBEX_DOMAIN,
    Dash,
    make_key,
    seed_globex,
    seed_sends,
    seed_series,
)
from webkit import LiveApp

from penguinctl.campaigns.models import Campaign

pytestmark = pytest.mark.clock
PAGES = (
    "/dashboard/domains",
    "/dashboard/fleet",
    "/dashboard/campaigns",
    "/dashboard/jobs",
    "/dashboard/billing",
    "/dashboard/audit",
    "/dashboard/domains/acme/acme-mail.example",
    "/dashboard/campaigns/acme/launch",
)
GLOBEX_MARKS = (GLOBEX_DOMAIN, "gx-hidden", "secret-plan", "globex")


@pytest.fixture
def world(tmp_path, monkeypatch, capsys, state_url):
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_STATE", state_url)
    monkeypatch.delenv("PENGUINCTL_MASTER_KEY", raising=False)
    assert run_inprocess(capsys, "init").code == 0
    applied = run_inprocess(capsys, "apply", "-f", QUICKSTART, "--yes")
    assert applied.code == 0, applied.err
    # a month later (on the product clock), bill this month: acme gets an invoice
    from penguinctl import clock as clocks

    now = clocks.now()
    later = (now.replace(day=28) + timedelta(days=5)).replace(day=2)
    base = float(os.environ.get("PENGUINCTL_TIME_OFFSET") or 0)
    monkeypatch.setenv("PENGUINCTL_TIME_OFFSET", str(base + (later - now).total_seconds()))
    billed = run_inprocess(capsys, "billing", "run", "--period", f"{now:%Y-%m}")
    assert billed.code == 0, billed.err
    if base:
        monkeypatch.setenv("PENGUINCTL_TIME_OFFSET", str(base))
    else:
        monkeypatch.delenv("PENGUINCTL_TIME_OFFSET")
    from penguinctl.state.db import make_engine

    engine = make_engine(state_url)
    seed_globex(engine)
    seed_series(engine)
    leads = [{"email": f"lead{i}@gmail.com"} for i in range(6)]
    leads += [{"email": f"lead{i}@outlook.com"} for i in range(4)]
    acme = make_campaign(engine, "acme", "launch", senders=["john@acme-mail.example"], leads=leads)
    globex = make_campaign(engine, "globex", "secret-plan", senders=["x@globex-secret.example"],
                           leads=[{"email": "target@globex-client.example"}])  # fmt: skip
    seed_sends(engine, acme, "acme", "john@acme-mail.example", 8)
    seed_sends(engine, globex, "globex", "x@globex-secret.example", 1)
    keys = {
        (tenant, role): make_key(engine, tenant, role)
        for tenant, role in (("", "admin"), ("acme", "viewer"), ("acme", "member"),
                             ("acme", "owner"), ("acme", "admin"), ("globex", "owner"))
    }  # fmt: skip
    with LiveApp(engine, keystore(tmp_path)) as live:
        yield live, engine, keys, f"INV-{now:%Y-%m}-acme"
    engine.dispose()


def status_of(engine, name: str) -> str:
    t = Campaign.__table__
    with engine.connect() as conn:
        return conn.execute(sa.select(t.c.status).where(t.c.name == name)).scalar_one()


def signed_in(live, token: str) -> Dash:
    dash = Dash(live.base)
    res = dash.login(token)
    assert res.status_code == 303 and res.headers["location"] == "/dashboard/domains", res.text
    return dash


def test_login_cookie_csrf_roles_and_tenant_walls(world) -> None:
    live, engine, keys, invoice = world
    anon = Dash(live.base)
    res = anon.get("/dashboard/domains")
    assert res.status_code == 303 and res.headers["location"].startswith("/dashboard/login")
    assert anon.get("/dashboard/campaigns/acme/launch").status_code == 303
    # a wrong key is refused; a login POST without the form's token is refused
    assert anon.login("pgk_000000000000_nope").status_code == 401
    # addressed by a public name (behind a proxy) the cookies are Secure: over plain http the
    # browser (here httpx) does not send them back, and the page says why
    proxied = Dash(live.base)
    proxied.client.headers["Host"] = "dash.example.com"
    form = proxied.get("/dashboard/login")
    assert "; secure" in form.headers["set-cookie"].lower() and "only sent over https" in form.text
    assert proxied.login(keys[("acme", "viewer")]).status_code == 403
    assert anon.post("/dashboard/login", {"key": keys[("", "admin")]}).status_code == 403

    # the platform admin: every page, every tenant
    admin = Dash(live.base)
    res = admin.login(keys[("", "admin")])
    assert res.status_code == 303
    cookie = res.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/dashboard" in cookie
    assert "secure" not in cookie.split("penguinctl_login")[0]  # plain http on loopback only
    assert keys[("", "admin")] not in res.headers["set-cookie"]  # the key itself is never sent
    for page in PAGES:
        got = admin.get(page)
        assert got.status_code == 200, (page, got.text[:500])
        assert got.headers["content-security-policy"].startswith("default-src 'none'")
    listed = admin.get("/dashboard/domains").text
    assert all(d in listed for d in ACME_DOMAINS) and GLOBEX_DOMAIN in listed
    assert admin.get("/dashboard/domains?q=outreach").text.count("/dashboard/domains/acme/") == 1
    problems = admin.get("/dashboard/domains?status=problems").text
    assert GLOBEX_DOMAIN in problems and "acme-mail.example" not in problems

    # an acme viewer: acme's rows only; billing and audit are not for its role
    viewer = signed_in(live, keys[("acme", "viewer")])
    for page in PAGES[:4] + PAGES[6:]:
        got = viewer.get(page)
        assert got.status_code == 200, page
        assert not any(mark in got.text for mark in GLOBEX_MARKS), page
    assert viewer.get("/dashboard/billing").status_code == 403
    assert viewer.get("/dashboard/audit").status_code == 403
    assert all(d in viewer.get("/dashboard/domains").text for d in ACME_DOMAINS)
    assert viewer.get(f"/dashboard/domains/globex/{GLOBEX_DOMAIN}").status_code == 404
    assert viewer.get("/dashboard/campaigns/globex/secret-plan").status_code == 404
    assert "Billing" not in viewer.get("/dashboard/fleet").text

    # the viewer sees no pause button, and a crafted POST (valid CSRF) is refused
    page = viewer.get("/dashboard/campaigns/acme/launch").text
    assert "Pause campaign" not in page and "campaign-status" in page
    token = viewer.csrf("/dashboard/campaigns/acme/launch")
    forged = viewer.post("/dashboard/campaigns/acme/launch/pause", {"csrf": token})
    assert forged.status_code == 403 and status_of(engine, "launch") == "active"
    assert viewer.post(f"/dashboard/domains/acme/{ACME_DOMAINS[0]}/verify",
                       {"csrf": token}).status_code == 403  # fmt: skip
    assert viewer.post("/dashboard/jobs/1/run", {"csrf": token}).status_code == 403

    # a member pauses and resumes; without the CSRF token nothing happens
    member = signed_in(live, keys[("acme", "member")])
    page = member.get("/dashboard/campaigns/acme/launch").text
    assert "Pause campaign" in page
    assert member.post("/dashboard/campaigns/acme/launch/pause", {}).status_code == 403
    assert member.post("/dashboard/campaigns/acme/launch/pause", {"csrf": token}).status_code == 403
    assert status_of(engine, "launch") == "active"
    mine = member.csrf("/dashboard/campaigns/acme/launch")
    done = member.post("/dashboard/campaigns/acme/launch/pause", {"csrf": mine})
    assert done.status_code == 303 and status_of(engine, "launch") == "paused"
    assert "Resume campaign" in member.get("/dashboard/campaigns/acme/launch").text
    # another tenant's campaign: not found, untouched
    cross = member.post("/dashboard/campaigns/globex/secret-plan/pause", {"csrf": mine})
    assert cross.status_code == 404 and status_of(engine, "secret-plan") == "active"
    assert member.post("/dashboard/campaigns/acme/launch/resume", {"csrf": mine}).status_code == 303
    assert status_of(engine, "launch") == "active"

    # the acme owner sees acme's bill only; the acme admin acme's audit trail only
    owner = signed_in(live, keys[("acme", "owner")])
    bill = owner.get("/dashboard/billing")
    assert bill.status_code == 200 and "acme" in bill.text and "globex" not in bill.text
    assert "Emails sent" in bill.text and 'role="img"' in bill.text
    assert f'href="/dashboard/billing/invoices/{invoice}"' in bill.text
    html = owner.get(f"/dashboard/billing/invoices/{invoice}")
    assert html.status_code == 200 and invoice in html.text
    assert viewer.get(f"/dashboard/billing/invoices/{invoice}").status_code == 403
    acme_admin = signed_in(live, keys[("acme", "admin")])
    trail = acme_admin.get("/dashboard/audit").text
    assert "campaign.pause" in trail and "globex.secret-action" not in trail
    assert f"key:{keys[('acme', 'member')].split('_')[1]}" in trail  # the member's key acted
    assert "globex.secret-action" in admin.get("/dashboard/audit").text
    jobs = acme_admin.get("/dashboard/jobs").text
    assert "Run now" in jobs and "globex" not in jobs and "billing-run" not in jobs
    from penguinctl.control.tables import JobSeries

    t = JobSeries.__table__
    with engine.connect() as conn:
        theirs = conn.execute(sa.select(t.c.id).where(t.c.tenant == "globex")).scalar_one()
    admin_csrf = acme_admin.csrf("/dashboard/jobs")
    refused = acme_admin.post(f"/dashboard/jobs/{theirs}/run", {"csrf": admin_csrf})
    assert refused.status_code == 404
    gx = signed_in(live, keys[("globex", "owner")])
    assert GLOBEX_DOMAIN in gx.get("/dashboard/domains").text
    assert not any(d in gx.get("/dashboard/domains").text for d in ACME_DOMAINS)
    assert gx.get("/dashboard/campaigns/acme/launch").status_code == 404
    assert "acme" not in gx.get("/dashboard/billing").text.replace("globex", "")
    assert gx.get(f"/dashboard/billing/invoices/{invoice}").status_code == 404
    gx_page = gx.get("/dashboard/campaigns/globex/secret-plan").text
    assert "Pause campaign" in gx_page  # owner may pause its own

    # guessing keys: after 10 refusals a minute, 429
    from penguinctl.web.dashboard import gate

    gate._failed.clear()  # the earlier refusals of this test count too
    guesser = Dash(live.base)
    codes = [guesser.login(f"pgk_00000000000{i % 10}_x").status_code for i in range(11)]
    assert codes[:10] == [401] * 10 and codes[10] == 429
    assert guesser.login(keys[("acme", "viewer")]).status_code == 429  # even the right key
    gate._failed.clear()

    # signing out ends the session in this browser
    out = member.post("/dashboard/logout", {"csrf": mine})
    assert out.status_code == 303 and 'penguinctl_session=""' in out.headers["set-cookie"]


def test_idle_expiry_revocation_and_campaign_numbers(world) -> None:
    from penguinctl import clock as clocks
    from penguinctl.clock import ManualClock
    from penguinctl.identity import keys as keyring
    from penguinctl.state.db import session_scope

    live, engine, keys, _ = world
    manual = ManualClock(clocks.now())
    previous = clocks.install(manual)
    try:
        dash = signed_in(live, keys[("acme", "member")])
        page = dash.get("/dashboard/campaigns/acme/launch")
        assert page.status_code == 200
        text = page.text
        # the CLI's numbers: 8 sent, 1 replied; providers from the recipients' domains
        assert "<dd>8</dd>" in text and "<dd>1</dd>" in text
        assert "<td>Gmail</td><td>6</td>" in text and "<td>Microsoft</td><td>2</td>" in text
        assert 'aria-label="Sends per day: 8 in total' in text
        manual.advance(timedelta(minutes=20))
        assert dash.get("/dashboard/domains").status_code == 200  # active: refreshed
        manual.advance(timedelta(minutes=29))
        assert dash.get("/dashboard/domains").status_code == 200
        manual.advance(timedelta(minutes=31))  # idle for longer than 30 minutes
        assert dash.get("/dashboard/domains").status_code == 303
        dash = signed_in(live, keys[("acme", "member")])
        with session_scope(engine) as s:
            keyring.revoke(s, keys[("acme", "member")].split("_")[1], actor="test")
        gone = dash.get("/dashboard/domains")
        assert gone.status_code == 303 and "/dashboard/login" in gone.headers["location"]
    finally:
        clocks.install(previous)
