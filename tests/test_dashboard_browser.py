"""The dashboard in a real browser (Debian's chromium driven by Selenium through chromedriver)
against a real `penguinctl serve` process: the quickstart applied, a campaign sent by the real
worker through the test SMTP server. An operator signs in with an API key, sees the three
quickstart domains with their record status, visits every page (no console errors, axe-core
finds no serious or critical violation, times shown in the browser's time zone), pauses the
campaign from its page; a viewer sees no pause button and its crafted POST gets 403; with
JavaScript off every page still reads. Screenshots of every page are written as artifacts
(DASHBOARD_ARTIFACTS, default a tmp dir; the path is printed)."""

from __future__ import annotations

import contextlib
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from campaignkit import make_campaign
from clitools import QUICKSTART, run_inprocess
from daemons import need_binary
from dashkit import ACME_DOMAINS, make_key
from servekit import Serve, schedules, wait_for
from smtpsink import SmtpSink

from penguinctl.campaigns.models import Campaign, Lead

AXE = Path(__file__).resolve().parent / "data" / "axe-core" / "axe.min.js"
SENDERS = ["john@acme-mail.example", "anna@acme-growth.example"]
PAGES = {
    "domains": "/dashboard/domains",
    "domain": "/dashboard/domains/acme/acme-mail.example",
    "fleet": "/dashboard/fleet",
    "campaigns": "/dashboard/campaigns",
    "campaign": "/dashboard/campaigns/acme/q4-launch",
    "jobs": "/dashboard/jobs",
    "billing": "/dashboard/billing",
    "audit": "/dashboard/audit",
}


def _leads() -> list[dict]:
    domains = ["gmail.com", "outlook.com", "yahoo.com", "hotmail.com", "example.org"]
    return [{"email": f"lead{i:02d}@{domains[i % 5]}", "first_name": f"N{i}"} for i in range(30)]


@pytest.fixture
def served(tmp_path, monkeypatch, capsys):
    from penguinctl.campaigns.window import ManualClock
    from penguinctl.campaigns.worker import Worker, WorkerOptions
    from penguinctl.providers.secrets.keystore import KeystoreBackend
    from penguinctl.resources import ResourceKey
    from penguinctl.settings import load_settings
    from penguinctl.state.db import make_engine, session_scope
    from penguinctl.state.repo import upsert_resource

    need_binary("chromium", "chromium")
    need_binary("chromedriver", "chromium-driver")
    home = tmp_path / "home"
    url = f"sqlite:///{tmp_path / 'state.db'}"
    env = {"PENGUINCTL_HOME": str(home), "PENGUINCTL_STATE": url}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("PENGUINCTL_MASTER_KEY", raising=False)
    assert run_inprocess(capsys, "init").code == 0
    applied = run_inprocess(capsys, "apply", "-f", QUICKSTART, "--yes")
    assert applied.code == 0, applied.err
    engine = make_engine(url)
    settings = load_settings(env)
    store = KeystoreBackend(
        settings.keystore_dir, key_file=settings.master_key_file, master_key=settings.master_key
    )
    (tmp_path / "smtp").mkdir()
    # ten minutes ago: the replies (five minutes after the sends) are in the past when the page
    # draws its per-day charts, even when the test runs just before midnight UTC
    now = datetime.now(UTC) - timedelta(minutes=10)
    with SmtpSink(tmp_path / "smtp") as sink:
        with session_scope(engine) as s:  # mx1's submission port: the test SMTP server
            from penguinctl.state.repo import get_resource

            mx1 = get_resource(s, ResourceKey("server", "acme", "mx1"))
            data = dict(mx1.data)
            data["mail"] = {
                **data.get("mail", {}),
                "submission": {"host": "127.0.0.1", "port": sink.port, "security": "none"},
            }
            upsert_resource(
                s, key=ResourceKey("server", "acme", "mx1"), provider=mx1.provider, data=data
            )
        cid = make_campaign(engine, "acme", "q4-launch", senders=SENDERS, leads=_leads())
        options = WorkerOptions(once=True, inbound=False)
        summary = Worker(engine, secrets=store, clock=ManualClock(now), options=options).run()
        assert summary.counts["sent"] == 30, summary.to_json()
        assert len(sink.messages) == 30
    with engine.begin() as conn:  # three people replied (as the inbound poller records it)
        leads = (
            conn.execute(
                sa.select(Lead.__table__.c.id).where(Lead.__table__.c.campaign_id == cid).limit(3)
            )
            .scalars()
            .all()
        )
        conn.execute(
            sa.update(Lead.__table__).where(Lead.__table__.c.id.in_(leads)).values(status="replied")
        )
        from penguinctl.campaigns.inbound import EVENTS

        conn.execute(
            EVENTS.insert(),
            [
                {
                    "tenant": "acme",
                    "mailbox": SENDERS[0],
                    "folder": "INBOX",
                    "uidvalidity": 1,
                    "uid": i + 1,
                    "kind": "reply",
                    "campaign_id": cid,
                    "lead_id": lid,
                    "received_at": now + timedelta(minutes=5),
                }
                for i, lid in enumerate(leads)
            ],
        )
    tokens = {
        role: make_key(engine, tenant, role) for tenant, role in (("", "admin"), ("acme", "viewer"))
    }
    (tmp_path / "release").touch()
    serve_env = {
        **env,
        "PENGUINCTL_SCHEDULES": str(
            schedules(tmp_path / "schedules.json", probe_every="0 3 * * *")
        ),
        "PROBE_LOG": str(tmp_path / "probe.log"),
        "PROBE_HOLD": str(tmp_path / "release"),
    }
    serve = Serve(serve_env).start()
    try:
        serve.ready()
        assert "/dashboard/" in serve.log()  # serve prints where the dashboard is
        yield serve, engine, tokens
    finally:
        serve.stop()
        engine.dispose()


@pytest.fixture
def artifacts(tmp_path) -> Path:
    path = Path(os.environ.get("DASHBOARD_ARTIFACTS") or tmp_path / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    print(f"dashboard screenshots: {path}")
    return path


def browser(*, javascript: bool = True, tz: str = "Asia/Tokyo"):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--disable-extensions",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if not javascript:
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2}
        )
    service = Service(
        executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver",
        env={**os.environ, "TZ": tz},
    )
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    return driver


def sign_in(driver, base: str, token: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/dashboard/")
    assert "/dashboard/login" in driver.current_url
    field = driver.find_element(By.ID, "key")
    assert driver.find_element(By.CSS_SELECTOR, "label[for=key]").text == "API key"
    field.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    wait_for_url(driver, "/dashboard/domains")
    assert driver.current_url.endswith("/dashboard/domains"), (
        driver.current_url,
        driver.find_element(By.TAG_NAME, "main").text,
    )


def wait_for_url(driver, part: str) -> None:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    with contextlib.suppress(TimeoutException):  # the caller's assertion says where it is
        WebDriverWait(driver, 30).until(lambda d: part in d.current_url)


def wait_for_text(driver, element_id: str, text: str) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 30, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: [e.text for e in d.find_elements(By.ID, element_id)] == [text]
    )  # the page is replaced by the POST's answer while we look


def axe_problems(driver) -> list[str]:
    driver.execute_script(AXE.read_text())
    violations = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations))"
        ".catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));"
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}"
        for v in violations
        if v.get("impact") in ("serious", "critical")
    ]


def console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def manual_runs(engine) -> list:
    from penguinctl.control.tables import JobRun

    t = JobRun.__table__
    with engine.connect() as conn:
        return conn.execute(
            sa.select(t.c.id).where(t.c.job == "probe", t.c.trigger == "manual", t.c.status == "ok")
        ).all()


def status_of(engine) -> str:
    t = Campaign.__table__
    with engine.connect() as conn:
        return conn.execute(sa.select(t.c.status).where(t.c.name == "q4-launch")).scalar_one()


def test_the_dashboard_in_chromium(served, artifacts) -> None:
    from selenium.webdriver.common.by import By

    serve, engine, tokens = served
    driver = browser()
    try:
        sign_in(driver, serve.base, tokens["admin"])
        # the done-when: the three quickstart domains with their record status
        rows = driver.find_elements(By.CSS_SELECTOR, "table.grid tbody tr")
        names = [r.find_element(By.CSS_SELECTOR, "th a").text for r in rows]
        assert names == sorted(ACME_DOMAINS)
        first = rows[0].find_elements(By.CSS_SELECTOR, "td.st")
        assert len(first) == 8 and "mail.acme-mail.example" in first[0].text
        assert any("lookups" in c.text for c in first) and "p=none" in rows[0].text
        for name, path in PAGES.items():
            driver.get(serve.base + path)
            assert driver.find_element(By.TAG_NAME, "h1").text, name
            assert "Internal error" not in driver.page_source, name
            driver.save_screenshot(str(artifacts / f"{name}.png"))
            problems = axe_problems(driver)
            assert not problems, (name, problems)
            errors = console_errors(driver)
            assert not errors, (name, errors)
        docs = os.environ.get("DASHBOARD_DOCS")  # README screenshots: page content only
        if docs:
            driver.set_window_size(1100, 1500)
            for name in ("domains", "campaign"):
                driver.get(serve.base + PAGES[name])
                body = driver.find_element(By.TAG_NAME, "body")
                body.screenshot(str(Path(docs) / f"dashboard-{name}.png"))
            driver.set_window_size(1280, 900)
        # keyboard: the first Tab reaches the skip link, Enter moves focus to the content;
        # further Tabs walk the navigation and the search form
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.keys import Keys

        driver.get(serve.base + PAGES["domains"])
        ActionChains(driver).send_keys(Keys.TAB).perform()
        assert driver.switch_to.active_element.text == "Skip to content"
        ActionChains(driver).send_keys(Keys.ENTER).perform()
        assert driver.switch_to.active_element.get_attribute("id") == "main"
        reached = []
        for _ in range(12):
            ActionChains(driver).send_keys(Keys.TAB).perform()
            el = driver.switch_to.active_element
            reached.append(el.get_attribute("id") or el.text)
        assert "q" in reached and "status" in reached, reached
        # times: rewritten into the browser's zone (Asia/Tokyo), the UTC text kept as a title
        driver.get(serve.base + PAGES["campaigns"])
        stamp = driver.find_element(By.CSS_SELECTOR, "time[datetime]")
        assert "UTC" in stamp.get_attribute("title") and "UTC" not in stamp.text
        # campaign page: the real sends, the funnel, the charts; pause it and see the state change
        driver.get(serve.base + PAGES["campaign"])
        page = driver.page_source
        assert 'aria-label="Sends per day: 30 in total' in page
        assert 'aria-label="Replies per day: 3 in total' in page
        assert "<td>Gmail</td><td>6</td>" in page and "<td>Yahoo</td><td>6</td>" in page
        assert driver.find_element(By.ID, "campaign-status").text == "active"
        driver.find_element(By.ID, "campaign-toggle").click()
        wait_for_text(driver, "campaign-status", "paused")
        assert driver.find_element(By.ID, "campaign-toggle").text == "Resume campaign"
        assert status_of(engine) == "paused"
        driver.save_screenshot(str(artifacts / "campaign-paused.png"))
        assert not console_errors(driver)

        # run a job now from its page: a manual run, recorded like `jobs run`
        driver.get(serve.base + PAGES["jobs"])
        driver.find_element(By.CSS_SELECTOR, "button[aria-label^='Run now: probe']").click()
        wait_for_url(driver, "queued=1")
        assert "The run was started" in driver.page_source
        wait_for(lambda: manual_runs(engine), what="the manual probe run")

        # a viewer: no pause button; the same POST crafted in its own browser session is refused
        driver.delete_all_cookies()
        sign_in(driver, serve.base, tokens["viewer"])
        driver.get(serve.base + PAGES["campaign"])
        assert not driver.find_elements(By.ID, "campaign-toggle")
        csrf = driver.find_element(By.CSS_SELECTOR, "input[name=csrf]").get_attribute("value")
        answer = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch('/dashboard/campaigns/acme/q4-launch/resume', {method: 'POST',"
            " headers: {'Content-Type': 'application/x-www-form-urlencoded'},"
            " body: 'csrf=' + encodeURIComponent(arguments[0])}).then(r => done(r.status));",
            csrf,
        )
        assert answer == 403 and status_of(engine) == "paused"
        assert driver.find_elements(By.LINK_TEXT, "Billing") == []  # not for a viewer
        # signing out: back to the login page, the session gone
        driver.find_element(By.CSS_SELECTOR, ".who button").click()
        wait_for_url(driver, "/dashboard/login")
        assert "/dashboard/login" in driver.current_url
        driver.get(serve.base + PAGES["domains"])
        assert "/dashboard/login" in driver.current_url
    finally:
        driver.quit()

    # without JavaScript every page still reads (times stay in UTC)
    plain = browser(javascript=False)
    try:
        sign_in(plain, serve.base, tokens["admin"])
        for path in PAGES.values():
            plain.get(serve.base + path)
            assert "Internal error" not in plain.page_source
        plain.get(serve.base + PAGES["campaigns"])
        assert plain.find_element(By.CSS_SELECTOR, "time[datetime]").text.endswith("UTC")
    finally:
        plain.quit()
    assert "Traceback" not in serve.log()
