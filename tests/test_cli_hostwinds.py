"""The whole CLI with Hostwinds servers, against the local double of the Cloud API: two servers
created with rDNS, IPs and cost; a second apply changes nothing; a process killed right after
ordering never orders twice; drift, sync; destroy needs confirmation and --force."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from clitools import run_inprocess
from fakes.hostwinds import FakeHostwinds

KEY = "hw-test-key-9c1f7e2a55"


def _spec(zones_dir) -> str:
    servers = "".join(
        f"""---
apiVersion: penguinctl/v1
kind: Server
metadata: {{name: {name}, tenant: acme}}
spec:
  provider: hostwinds
  hostwinds: {{location_id: 1, template: ubuntu-22.04, rid: 2, billingcycle: monthly}}
  hostname: mail.{domain}
  mail: {{stack: none}}  # the servers' IPs are TEST-NET: nothing to reach over SSH
---
apiVersion: penguinctl/v1
kind: Domain
metadata: {{name: {domain}, tenant: acme}}
spec: {{server: {name}, dns: zones, dmarc: {{policy: none, rua: dmarc@{domain}}}}}
"""
        for name, domain in (("mx1", "one-mail.example"), ("mx2", "two-mail.example"))
    )
    return f"""\
apiVersion: penguinctl/v1
kind: Tenant
metadata: {{name: acme}}
---
apiVersion: penguinctl/v1
kind: DnsProvider
metadata: {{name: zones, tenant: acme}}
spec: {{type: zonefile, directory: {zones_dir}}}
{servers}"""


@pytest.fixture
def fake():
    with FakeHostwinds(api_key=KEY, build_polls=2) as server:
        yield server


@pytest.fixture
def env(tmp_path, monkeypatch, state_url, fake):
    values = {
        "PENGUINCTL_HOME": str(tmp_path / "home"),
        "PENGUINCTL_STATE": state_url,
        "PENGUINCTL_TODAY": "2026-11-23",
        "HOSTWINDS_API_KEY": KEY,
        "HOSTWINDS_API_URL": fake.url,
        "HOSTWINDS_POLL_INTERVAL": "0.05",
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(_spec(tmp_path / "zones"))
    return path


@pytest.fixture
def cli(env, capsys):
    return lambda *args: run_inprocess(capsys, *args)


def test_two_servers_from_nothing_then_no_changes_then_destroy(cli, fake, spec, tmp_path):
    res = cli("apply", "-f", spec, "--yes", "-o", "json")
    assert res.code == 0, res.err
    assert fake.orders == 2
    servers = {s["name"]: s for s in cli("get", "servers", "-o", "json").json()}
    for name, domain in (("mx1", "one-mail.example"), ("mx2", "two-mail.example")):
        s = servers[name]
        ip = s["ips"].split(", ")[0]
        assert s["status"] == "active" and s["monthly_cost"]
        assert fake.rdns[ip] == f"mail.{domain}"  # reverse DNS = HELO name
        zone = (tmp_path / "zones" / f"{domain}.zone").read_text()
        assert f"v=spf1 ip4:{ip} ~all" in zone
        assert ip in zone  # the mail host's A record
        (inst,) = fake.by_srvrname(f"pc-acme-{name}")
        assert inst["location_id"] == 1
    # the root password Hostwinds returns is never stored or printed
    assert "password" not in cli("describe", "server", "mx1", "-o", "json").out.lower()

    before = len(fake.writes())
    again = cli("apply", "-f", spec, "--yes")
    assert again.code == 0 and "No changes" in again.out
    assert fake.orders == 2 and len(fake.writes()) == before

    listing = cli("server", "list", "-o", "json").json()
    assert {r["name"] for r in listing} == {"mx1", "mx2"}
    assert all(r["provider"] == "hostwinds" and r["service_id"] for r in listing)

    # deleting servers needs --force, and destroy asks (no terminal here: refused)
    assert cli("destroy", "-f", spec, "--yes").code == 4
    assert cli("destroy", "-f", spec, "--force").code == 2
    assert fake.count("terminate") == 0
    ordered = {i["serviceid"] for i in fake.instances.values()}
    assert len(ordered) == 2
    res = cli("destroy", "-f", spec, "--yes", "--force")
    assert res.code == 0, res.err
    # exactly the two instances penguinctl ordered were terminated, each once, and none is left
    terminated = [int(r.params["serviceid"]) for r in fake.requests if r.action == "terminate"]
    assert sorted(terminated) == sorted(ordered)
    assert fake.instances == {}
    assert cli("get", "servers", "-o", "json").json() == []


def test_drift_is_shown_and_sync_records_it(cli, fake, spec):
    assert cli("apply", "-f", spec, "--yes").code == 0
    (inst,) = fake.by_srvrname("pc-acme-mx2")
    fake.set_state(inst["serviceid"], status="suspended")
    plan = cli("plan", "-f", spec, "-o", "json")
    assert plan.code == 0
    assert any("status at Hostwinds is suspended" in w for w in plan.json()["warnings"])
    res = cli("server", "sync", "-o", "json")
    assert res.code == 0
    (change,) = res.json()["changes"]
    assert change["server"] == "mx2" and "suspended" in change["change"]
    servers = {s["name"]: s for s in cli("get", "servers", "-o", "json").json()}
    assert servers["mx2"]["status"] == "suspended"


def test_bad_location_fails_at_once_with_the_api_message(cli, fake, spec):
    spec.write_text(spec.read_text().replace("location_id: 1", "location_id: 99", 1))
    res = cli("apply", "-f", spec, "--yes")
    assert res.code in (5, 6)
    assert "Location Id is invalid" in res.err
    assert KEY not in res.out + res.err


def test_killed_after_ordering_never_orders_twice(env, fake, spec, tmp_path, capsys):
    """SIGKILL the apply process right after Hostwinds accepted the order (before the service
    id is known or anything but the intent is recorded); the re-run adopts the instance."""
    fake.build_polls = 10_000  # the instance stays "building" until we let it finish
    proc = subprocess.Popen(
        [sys.executable, "-m", "penguinctl", "apply", "-f", str(spec), "--yes"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while fake.orders < 1 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert fake.orders >= 1, "apply never ordered"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    ordered = fake.orders
    plan = run_inprocess(capsys, "plan", "-f", spec, "-o", "json")
    assert any("unfinished order" in w for w in plan.json()["warnings"])
    fake.build_polls = 1
    for inst in fake.instances.values():
        fake.set_state(inst["serviceid"], status="active")
    res = run_inprocess(capsys, "apply", "-f", spec, "--yes")
    # A server whose intent was recorded but whose order never reached Hostwinds (killed in
    # between) is not ordered again blindly: the operator confirms with forget-order.
    unordered = [n for n in ("mx1", "mx2") if not fake.by_srvrname(f"pc-acme-{n}")]
    if unordered:
        assert res.code == 6 and "not visible yet" in res.err
        for name in unordered:
            assert run_inprocess(capsys, "server", "forget-order", name, "--yes").code == 0
        res = run_inprocess(capsys, "apply", "-f", spec, "--yes")
    assert res.code == 0, res.err
    # each server was ordered exactly once
    for name in ("mx1", "mx2"):
        assert len(fake.by_srvrname(f"pc-acme-{name}")) == 1
    assert fake.orders == 2 and ordered <= 2
    again = run_inprocess(capsys, "apply", "-f", spec, "--yes")
    assert "No changes" in again.out and fake.orders == 2


def test_forget_order_and_prices(cli, fake, spec, env):
    res = cli("hostwinds", "prices", "-o", "json")
    assert res.code == 0 and all("rid" in r for r in res.json())
    assert cli("server", "forget-order", "mx1", "--yes").code == 2  # nothing pending
