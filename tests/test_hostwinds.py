"""The hostwinds server provider and its API client against a local HTTP double of the Cloud
API (``fakes.hostwinds``), over real HTTP on 127.0.0.1: ordering and polling, rDNS, cost,
re-applies, crash safety (intent journal, adoption by label), retries, the circuit breaker,
error messages and the secrecy of the API key and of root passwords.

Time is fake (backoff, polling and the breaker's clock advance a counter): the whole module
really sleeps well under a second (one deliberate client timeout of 0.3 s).
"""

from __future__ import annotations

import json
import logging
import socket
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fakes.hostwinds import FakeHostwinds

from penguinctl.errors import ExitCode, ProviderError
from penguinctl.plan.changes import Action, Change
from penguinctl.providers.hostwinds import HostwindsProvider
from penguinctl.providers.hostwinds_client import (
    DEFAULT_BASE_URL,
    HostwindsApiError,
    HostwindsAuthError,
    HostwindsCircuitOpen,
    HostwindsClient,
    HostwindsConnectionError,
    HostwindsError,
    HostwindsInvalidService,
    HostwindsLocked,
    HostwindsProtocolError,
    HostwindsUnavailable,
)
from penguinctl.resources import COMPUTED, ResourceKey

KEY = "hw-test-key-Q8z7Y6x5W4v3u2T1"
TENANT = "acme"
START = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


class FakeTime:
    """A clock that only moves when someone sleeps (or a test advances it)."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds

    def monotonic(self) -> float:
        return self.t

    def now(self) -> datetime:
        return START + timedelta(seconds=self.t - 1000.0)

    def stamp(self) -> str:
        return self.now().isoformat(timespec="seconds")


class MemoryJournal:
    """The intent journal contract: ``mark`` is durable at once (here: a dict)."""

    def __init__(self) -> None:
        self.intents: dict[ResourceKey, dict[str, Any]] = {}
        self.marked: list[ResourceKey] = []

    def get(self, key: ResourceKey) -> dict[str, Any] | None:
        return dict(self.intents[key]) if key in self.intents else None

    def mark(self, key: ResourceKey, data: dict[str, Any]) -> None:
        self.marked.append(key)
        self.intents[key] = dict(data)

    def clear(self, key: ResourceKey) -> bool:
        return self.intents.pop(key, None) is not None


@pytest.fixture
def fake() -> Iterator[FakeHostwinds]:
    with FakeHostwinds(api_key=KEY, build_polls=3) as server:
        yield server


@pytest.fixture
def ft() -> FakeTime:
    return FakeTime()


@pytest.fixture
def journal() -> MemoryJournal:
    return MemoryJournal()


@pytest.fixture
def client_for(ft: FakeTime) -> Iterator[Callable[..., HostwindsClient]]:
    made: list[HostwindsClient] = []

    def make(url: str, api_key: str = KEY, **kw: Any) -> HostwindsClient:
        kw.setdefault("rate_limit", None)
        made.append(
            HostwindsClient(api_key, base_url=url, sleep=ft.sleep, clock=ft.monotonic, **kw)
        )
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture
def hw(
    fake: FakeHostwinds, ft: FakeTime, journal: MemoryJournal, client_for
) -> Callable[..., HostwindsProvider]:
    def make(api_key: str = KEY, journal_: Any = journal, **kw: Any) -> HostwindsProvider:
        client_kw = {k: kw.pop(k) for k in ("timeout", "base_url") if k in kw}
        client = client_for(client_kw.pop("base_url", fake.url), api_key, **client_kw)
        kw.setdefault("poll_interval", 0.5)
        kw.setdefault("find_interval", 0.5)
        return HostwindsProvider(
            client=client, journal=journal_, sleep=ft.sleep, clock=ft.monotonic, now=ft.now, **kw
        )

    return make


def skey(name: str) -> ResourceKey:
    return ResourceKey("server", TENANT, name)


def desired(name: str, *, hostname: str | None = None, **block: Any) -> dict[str, Any]:
    hostwinds = {"location_id": 1, "template": "ubuntu-22.04", "rid": 2, "billingcycle": "monthly"}
    hostwinds.update(block)
    return {
        "provider": "hostwinds",
        "hostname": hostname or f"{name}.{TENANT}.example",
        "ips": COMPUTED,
        "mail": {"stack": "mailu", "version": "2024.06", "tls": "letsencrypt"},
        "hostwinds": hostwinds,
        "srvrname": f"pc-{TENANT}-{name}",
    }


def create(name: str, **kw: Any) -> Change:
    return Change(Action.CREATE, skey(name), "server:hostwinds", None, desired(name, **kw))


def update(before: dict[str, Any], after: dict[str, Any]) -> Change:
    name = before["srvrname"].rsplit("-", 1)[1]
    return Change(Action.UPDATE, skey(name), "server:hostwinds", before, after)


def delete(before: dict[str, Any]) -> Change:
    name = before["srvrname"].rsplit("-", 1)[1]
    return Change(Action.DELETE, skey(name), "server:hostwinds", before, None)


def texts(exc: BaseException) -> list[str]:
    return [str(exc), repr(exc), "".join(traceback.format_exception(exc))]


# -- ordering -------------------------------------------------------------------------------------
def test_two_servers_are_ordered_polled_and_recorded_and_reapply_writes_nothing(
    fake, hw, ft, journal
) -> None:
    provider = hw()
    results = provider.apply_batch([create("mx1"), create("mx2")])
    assert fake.orders == 2 and fake.add_instance_calls == 2
    seen_ips = set()
    for result, name in zip(results, ("mx1", "mx2"), strict=True):
        data = result.data
        assert data is not None
        inst = fake.instances[data["service_id"]]
        assert inst["srvrname"] == f"pc-acme-{name}" and inst["status"] == "active"
        assert data["status"] == "active" and isinstance(data["service_id"], int)
        assert data["main_ip"] == inst["main_ip"] and data["ips"] == [inst["main_ip"]]
        assert data["main_ip"].startswith("192.0.2.")
        assert data["rdns"] == f"{name}.acme.example" == fake.rdns[data["main_ip"]]
        assert data["monthly_cost"] == 9.99  # rid 2, monthly
        assert START <= datetime.fromisoformat(data["ordered_at"]) < START + timedelta(seconds=5)
        assert {k: v for k, v in data.items() if k in desired(name)} == {
            **desired(name),
            "ips": data["ips"],
        }
        assert "password" not in json.dumps(data) and inst["password"] not in json.dumps(data)
        assert f"ordered pc-acme-{name}" in result.detail
        seen_ips.add(data["main_ip"])
    assert len(seen_ips) == 2 and journal.intents == {} and len(journal.marked) == 2
    assert fake.count("get_price_list") == 1  # cached per provider
    assert ft.sleeps and all(s == 0.5 for s in ft.sleeps)  # polls, no real waiting

    fake.requests.clear()
    recorded = [r.data for r in results]
    names = ("mx1", "mx2")
    same = [
        update(d, {**desired(n), "ips": d["ips"]}) for d, n in zip(recorded, names, strict=True)
    ]
    again = provider.apply_batch(same)
    assert [r.data for r in again] == recorded and [r.detail for r in again] == ["no change"] * 2
    assert fake.writes() == []

    # the rows were lost (a crash before the engine recorded them): a re-run adopts, no writes
    again = provider.apply_batch([create("mx1"), create("mx2")])
    assert [r.data["service_id"] for r in again] == [d["service_id"] for d in recorded]
    assert all("adopted the existing instance" in r.detail for r in again)
    assert fake.writes() == [] and fake.orders == 2


def test_both_list_shapes_and_cost_per_billing_cycle(client_for, ft) -> None:
    with FakeHostwinds(api_key=KEY, build_polls=1, list_shape="wrapped") as fake:
        provider = HostwindsProvider(
            client=client_for(fake.url),
            journal=MemoryJournal(),
            sleep=ft.sleep,
            clock=ft.monotonic,
        )
        [result] = provider.apply_batch([create("mx3", rid=3, billingcycle="annually")])
        assert result.data["monthly_cost"] == round(19.99 * 12 * 0.9 / 12, 2)
        assert fake.instances[result.data["service_id"]]["billingcycle"] == "Annually"
        live = provider.read_recorded({skey("mx3"): result.data})
        assert live == {skey("mx3"): result.data}
        assert provider.read([skey("mx3")]) is None  # contract default


def test_bad_location_fails_at_once_with_the_api_message(fake, hw, ft, journal) -> None:
    provider = hw()
    with pytest.raises(HostwindsApiError) as info:
        provider.apply_batch([create("mx1", location_id=99)])
    exc = info.value
    assert exc.exit_code is ExitCode.PROVIDER and exc.api_message == "Location Id is invalid."
    text = str(exc)
    assert "server/acme/mx1: ordering pc-acme-mx1 failed: Hostwinds API add_instance" in text
    assert "Location Id is invalid. (ERROR 342432)" in text
    assert "hostwinds.location_id" in (exc.hint or "")
    assert fake.add_instance_calls == 1 and fake.orders == 0 and fake.instances == {}
    assert ft.sleeps == [] and journal.intents == {}  # never retried, the intent is cleared


def test_bad_input_is_refused_before_any_call(fake, hw) -> None:
    provider = hw()
    bad = desired("mx1")
    bad["hostwinds"] = {"location_id": "one", "rid": 2}
    with pytest.raises(ProviderError) as info:
        provider.apply_batch([Change(Action.CREATE, skey("mx1"), "server:hostwinds", None, bad)])
    assert "hostwinds.location_id is not a whole number; no hostwinds.template" in str(info.value)
    assert fake.requests == []


# -- retries, timeouts, the breaker ---------------------------------------------------------------
def test_transient_failures_are_retried_and_the_order_goes_through_once(fake, hw, ft) -> None:
    provider = hw()
    fake.inject(503, action="get_instance_ids", times=2)
    fake.inject(503, action="add_instance", times=2)  # 503: not processed, safe to resend
    fake.inject(502, action="get_instance", times=1)
    fake.inject(429, action="set_rdns", times=1)
    [result] = provider.apply_batch([create("mx1")])
    assert result.data["status"] == "active" and fake.rdns[result.data["main_ip"]]
    assert fake.orders == 1 and fake.add_instance_calls == 1 and len(fake.instances) == 1
    backoff = [s for s in ft.sleeps if s != 0.5]
    assert backoff == [1.0, 2.0, 1.0, 2.0, 1.0, 1.0]


def test_polling_rides_out_an_api_outage(fake, hw, ft) -> None:
    provider = hw()
    fake.inject(503, action="get_instance", times=8)  # two whole calls fail, retries included
    [result] = provider.apply_batch([create("mx1")])
    assert result.data["status"] == "active" and fake.orders == 1
    assert fake.count("get_instance") == 8 + 3


def test_an_order_answered_too_late_is_not_resent_but_found(fake, hw, ft, journal) -> None:
    provider = hw(timeout=0.3)
    fake.inject(None, action="add_instance", delay=0.6, process_first=True)
    [result] = provider.apply_batch([create("mx1")])
    assert fake.count("add_instance") == 1 and fake.orders == 1  # a timeout: never resent
    assert result.data["service_id"] == next(iter(fake.instances))
    assert journal.intents == {}


def test_gateway_errors_are_not_resent_for_orders(fake, hw, journal) -> None:
    provider = hw(find_timeout=2.0)
    fake.inject(502, action="add_instance", times=5)  # may have been processed
    with pytest.raises(ProviderError, match="is not visible yet: re-run apply in a few minutes"):
        provider.apply_batch([create("mx1")])
    assert fake.count("add_instance") == 1 and fake.orders == 0
    assert journal.get(skey("mx1")) is not None  # the intent stays: the next run looks again


def test_server_errors_back_off_then_give_up(fake, client_for, ft) -> None:
    client = client_for(fake.url)
    fake.inject(500, times=10)
    with pytest.raises(HostwindsUnavailable) as info:
        client.get_instances()
    assert ft.sleeps == [1.0, 2.0, 4.0] and len(fake.requests) == 4
    assert "HTTP 500 (after 4 attempts)" in str(info.value)
    capped = client_for(fake.url, max_retries=8)
    ft.sleeps.clear()
    fake.injections.clear()
    fake.inject(503, times=8)
    capped.get_instances()
    assert ft.sleeps == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_connection_failures_are_retried_then_reported(client_for, ft) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = client_for(f"http://127.0.0.1:{port}/cloud/api.php")
    with pytest.raises(HostwindsConnectionError, match=r"cannot connect \(after 4 attempts\)"):
        client.add_instance("ubuntu-22.04", 1, 1, "pc-x-y")  # never sent: safe to retry
    assert ft.sleeps == [1.0, 2.0, 4.0]


def test_circuit_breaker_opens_after_five_failures_and_half_opens_after_a_minute(
    fake, client_for, ft
) -> None:
    client = client_for(fake.url)
    fake.inject(503, times=1000)
    for _ in range(5):
        with pytest.raises(HostwindsUnavailable):
            client.get_instances()
    assert len(fake.requests) == 20 and client.breaker.state == "open"
    with pytest.raises(HostwindsCircuitOpen) as info:
        client.get_instance(1)
    assert len(fake.requests) == 20  # not sent
    assert "calls are suspended for 60 s after 5 consecutive failures" in str(info.value)
    assert isinstance(info.value, ProviderError) and info.value.hint

    ft.t += 60.0  # half-open: one trial call; it fails, so the breaker opens again
    with pytest.raises(HostwindsUnavailable):
        client.get_instances()
    with pytest.raises(HostwindsCircuitOpen):
        client.get_instances()
    ft.t += 60.0
    fake.injections.clear()
    assert client.get_instances() == []
    assert client.breaker.state == "closed" and client.breaker.failures == 0

    fake.inject(503, times=1000)  # API answers (input errors, 401) do not count as failures
    for _ in range(4):
        with pytest.raises(HostwindsUnavailable):
            client.get_instances()
    fake.injections.clear()
    with pytest.raises(HostwindsInvalidService):
        client.get_instance(1)
    assert client.breaker.failures == 0


def test_rate_limit_spaces_calls_at_two_per_second(fake, client_for, ft) -> None:
    client = client_for(fake.url, rate_limit=2.0)
    for _ in range(3):
        client.get_instances()
    assert ft.sleeps == [0.5, 0.5]


# -- updates and deletes --------------------------------------------------------------------------
def test_updates_relabel_and_reset_rdns_but_refuse_a_new_plan(fake, hw) -> None:
    provider = hw()
    [created] = provider.apply_batch([create("mx1")])
    before = created.data
    sid = before["service_id"]

    fake.requests.clear()
    renamed = {**desired("mx1", hostname="smtp.acme.example"), "ips": before["ips"]}
    [result] = provider.apply_batch([update(before, renamed)])
    assert [w.action for w in fake.writes()] == ["set_rdns"]
    assert fake.rdns[before["main_ip"]] == "smtp.acme.example" == result.data["rdns"]
    assert result.data["service_id"] == sid and result.data["ordered_at"] == before["ordered_at"]

    fake.set_state(sid, srvrname="renamed-in-portal")  # drift: the label changed outside
    fake.requests.clear()
    [again] = provider.apply_batch([update(result.data, renamed)])
    assert [w.action for w in fake.writes()] == ["edit_instance"]
    assert fake.instances[sid]["srvrname"] == "pc-acme-mx1" and again.data == result.data

    fake.requests.clear()
    for field, value in (("location_id", 2), ("template", "debian-12")):
        moved = {**renamed, "hostwinds": {**renamed["hostwinds"], field: value}}
        with pytest.raises(ProviderError) as info:
            provider.apply_batch([update(again.data, moved)])
        assert f"hostwinds.{field} cannot change" in str(info.value)
        assert "needs a new server" in str(info.value)
    assert fake.requests == []


def test_a_new_plan_is_an_in_place_upgrade_resumable_and_never_ordered_twice(fake, hw) -> None:
    provider = hw()
    [created] = provider.apply_batch([create("mx1")])
    before, sid = created.data, created.data["service_id"]
    bigger = {**desired("mx1", rid=3), "ips": before["ips"]}

    # the resize stops after the order was placed and paid (confirm refused once)
    fake.inject(200, action="confirm_upgrade", times=1,
                body=[{"result": "error", "message": "Temporary failure, try again."}])  # fmt: skip
    with pytest.raises(ProviderError):
        provider.apply_batch([update(before, bigger)])
    assert str(fake.instances[sid]["status"]).upper() == "RESIZED"
    fake.requests.clear()
    [done] = provider.apply_batch([update(before, bigger)])  # resumed: confirmed, not re-ordered
    assert fake.count("upgrade_instance") == 0 and fake.count("confirm_upgrade") == 1
    assert fake.instances[sid]["product_id"] == 103 and fake.instances[sid]["status"] == "active"
    assert done.data["service_id"] == sid and done.data["ips"] == before["ips"]
    assert done.data["monthly_cost"] == pytest.approx(19.99)
    assert "resized in place" in done.detail

    # a smaller disk cannot be reached in place: refused, nothing ordered
    fake.requests.clear()
    smaller = {**desired("mx1", rid=1), "ips": before["ips"]}
    with pytest.raises(ProviderError) as info:
        provider.apply_batch([update(done.data, smaller)])
    assert "cannot move instance" in str(info.value) and "needs a new server" in str(info.value)
    assert fake.upgrade_orders == {} and fake.instances[sid]["product_id"] == 103


def test_update_of_a_server_terminated_outside_is_a_clear_error(fake, hw) -> None:
    provider = hw()
    [created] = provider.apply_batch([create("mx1")])
    fake.remove(created.data["service_id"])
    with pytest.raises(ProviderError, match="terminated outside penguinctl"):
        provider.apply_batch([update(created.data, {**desired("mx1"), "hostname": "x.example"})])


def test_locked_instances_are_not_terminated_and_deletes_are_idempotent(
    fake, hw, client_for
) -> None:
    provider = hw()
    [created] = provider.apply_batch([create("mx1")])
    sid = created.data["service_id"]
    fake.set_state(sid, locked=1)
    with pytest.raises(ProviderError) as info:
        provider.apply_batch([delete(created.data)])
    assert f"instance {sid} is locked and cannot be terminated" in str(info.value)
    assert "unlock it in the Hostwinds portal" in (info.value.hint or "")
    assert sid in fake.instances and fake.count("terminate") == 0

    with pytest.raises(HostwindsLocked, match="locked and cannot be deleted"):
        client_for(fake.url).terminate(sid)  # what Hostwinds itself answers
    fake.set_state(sid, locked=0)
    [gone] = provider.apply_batch([delete(created.data)])
    assert gone.data is None and sid not in fake.instances and fake.rdns == {}
    [again] = provider.apply_batch([delete(created.data)])
    assert again.data is None and again.detail == "already gone"
    assert fake.count("terminate") == 2  # the refused direct call, then the provider's one


def test_drift_is_read_from_one_list_call(fake, hw) -> None:
    provider = hw()
    created = {r.change.key: r.data for r in provider.apply_batch([create("a"), create("b")])}
    a, b = skey("a"), skey("b")
    fake.set_state(created[a]["service_id"], status="SUSPENDED", main_ip="198.51.100.77")
    fake.remove(created[b]["service_id"])
    fake.requests.clear()
    live = provider.read_recorded(created)
    assert [r.action for r in fake.requests] == ["get_instances"]
    assert set(live) == {a}  # b was terminated outside penguinctl
    assert live[a]["status"] == "suspended" and live[a]["main_ip"] == "198.51.100.77"
    assert live[a]["ips"][0] == "198.51.100.77"
    assert "password" not in json.dumps(list(live.values()))
    assert provider.read_recorded({}) == {} and len(fake.requests) == 1


# -- crash safety ---------------------------------------------------------------------------------
def test_a_crash_after_ordering_never_orders_twice(fake, hw, journal, monkeypatch) -> None:
    crashing = hw()

    def crash(*args: Any) -> None:
        raise KeyboardInterrupt  # the process dies right after add_instance answered

    monkeypatch.setattr(crashing, "wait_until_active", crash)
    with pytest.raises(KeyboardInterrupt):
        crashing.apply_batch([create("mx1")])
    assert fake.orders == 1 and journal.get(skey("mx1"))["srvrname"] == "pc-acme-mx1"

    fresh = hw()  # the next run: a new process, the same journal
    [result] = fresh.apply_batch([create("mx1")])
    assert fake.add_instance_calls == 1 and fake.orders == 1 and len(fake.instances) == 1
    assert result.data["status"] == "active" and "adopted" in result.detail
    assert result.data["ordered_at"] == START.isoformat(timespec="seconds")
    assert journal.intents == {}


def test_an_intent_without_instance_waits_then_reports_a_lost_order(fake, hw, ft, journal) -> None:
    provider = hw()
    journal.mark(skey("mx1"), {"srvrname": "pc-acme-mx1", "ordered_at": ft.stamp()})
    ft.t += 300
    with pytest.raises(ProviderError) as info:
        provider.apply_batch([create("mx1")])
    assert str(info.value).startswith(
        f"server/acme/mx1: server mx1 was ordered at {START.isoformat(timespec='seconds')} and "
        "is not visible yet: re-run apply in a few minutes"
    )
    ft.t += 15 * 60
    with pytest.raises(ProviderError) as info:
        provider.apply_batch([create("mx1")])
    assert "the order seems lost" in str(info.value)
    assert "`penguinctl server forget-order mx1`" in (info.value.hint or "")
    assert fake.add_instance_calls == 0 and journal.get(skey("mx1")) is not None


def test_an_instance_in_error_aborts_at_once_with_its_display_status(fake, hw, ft) -> None:
    sid = fake.create_instance("pc-acme-mx1", status="error", disp_status="Error: no capacity")
    with pytest.raises(ProviderError) as info:
        hw().apply_batch([create("mx1")])
    assert f"instance {sid} (pc-acme-mx1) is error: Error: no capacity" in str(info.value)
    assert fake.orders == 0 and ft.sleeps == []


def test_polling_gives_up_after_the_timeout_and_a_rerun_picks_up(fake, hw, ft, journal) -> None:
    fake.build_polls = 1000
    provider = hw(poll_interval=30.0, poll_timeout=120.0)
    with pytest.raises(ProviderError) as info:
        provider.apply_batch([create("mx1")])
    assert "is still Building after 2 min" in str(info.value)
    assert "never orders twice" in (info.value.hint or "")
    assert sum(ft.sleeps) == 120.0 and journal.get(skey("mx1")) is not None
    fake.set_state(next(iter(fake.instances)), status="active", disp_status="Active")
    [result] = provider.apply_batch([create("mx1")])
    assert result.data["status"] == "active" and fake.orders == 1 and journal.intents == {}


def test_a_search_miss_is_confirmed_on_the_full_list(fake, hw) -> None:
    sid = fake.create_instance("pc-acme-mx1")
    fake.inject(200, action="get_instance_ids", body={"success": []})  # search ignores labels
    [result] = hw().apply_batch([create("mx1")])
    assert result.data["service_id"] == sid and fake.orders == 0


def test_two_instances_with_the_same_label_are_never_guessed(fake, hw) -> None:
    fake.create_instance("pc-acme-mx1")
    fake.create_instance("pc-acme-mx1")
    fake.create_instance("pc-acme-mx10")  # a prefix match of the search is not a match
    with pytest.raises(ProviderError, match="2 Hostwinds instances are labelled pc-acme-mx1"):
        hw().apply_batch([create("mx1")])
    assert fake.orders == 0


def test_the_state_store_journal_keeps_the_intent_across_a_crash(fake, hw, tmp_path) -> None:
    from penguinctl.state.db import make_engine, migrate
    from penguinctl.state.journal import Journal

    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(engine)
    try:
        store = Journal(engine, provider="server:hostwinds", actor="test")
        crashing = hw(journal_=store)
        crashing.wait_until_active = lambda *a: (_ for _ in ()).throw(KeyboardInterrupt())
        with pytest.raises(KeyboardInterrupt):
            crashing.apply_batch([create("mx1")])
        assert store.get(skey("mx1"))["srvrname"] == "pc-acme-mx1"
        [result] = hw(journal_=store).apply_batch([create("mx1")])
        assert fake.orders == 1 and store.get(skey("mx1")) is None
        assert result.data["status"] == "active"
    finally:
        engine.dispose()


# -- the client -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ([{"result": "success", "action": "Set rDNS", "message": "rDNS record updated."}], None),
        ({"serviceid": 7, "password": "x", "status": "up"}, {"serviceid": 7, "status": "up"}),
        ({"success": {"id": 1, "rid": 2}}, {"id": 1, "rid": 2}),
        ({"success": [{"serviceid": 7, "password": "p"}]}, [{"serviceid": 7}]),
        ({"success": True}, True),
    ],
)
def test_every_success_shape_is_normalised(fake, client_for, body, expected) -> None:
    client = client_for(fake.url)
    fake.inject(200, body=body)
    result = client.call("whatever")
    assert result == (body if expected is None else expected)


def test_list_actions_accept_bare_wrapped_and_keyed_lists(fake, client_for) -> None:
    client = client_for(fake.url)
    items = [{"serviceid": 7, "srvrname": "a", "password": "p"}]
    for body in (items, {"success": items}, {"7": {"srvrname": "a", "password": "p"}}):
        fake.inject(200, body=body)
        assert client.get_instances() == [{"serviceid": 7, "srvrname": "a"}]
    fake.inject(200, body={"success": {"901": {"id": 901, "rid": 1, "monthly": "4.99"}}})
    assert client.get_price_list() == [{"id": 901, "rid": 1, "monthly": "4.99"}]
    fake.inject(200, body=["192.0.2.5", {"ipaddress": "192.0.2.6", "rdns": "a.example"}])
    assert client.get_instance_ips(7) == [
        {"ip": "192.0.2.5"},
        {"ipaddress": "192.0.2.6", "rdns": "a.example", "ip": "192.0.2.6"},
    ]


def test_error_bodies_under_http_200_are_typed_and_never_retried(fake, client_for, ft) -> None:
    client = client_for(fake.url)
    with pytest.raises(HostwindsInvalidService, match=r"A valid serviceid is required\."):
        client.get_instance(123)
    fake.inject(200, body={"result": "error", "action": "X", "message": "Something odd"})
    with pytest.raises(HostwindsApiError, match="Hostwinds API x: Something odd"):
        client.call("x")
    fake.inject(200, body=b"<html>maintenance</html>")
    with pytest.raises(HostwindsProtocolError, match="not JSON"):
        client.get_instances()
    with pytest.raises(HostwindsApiError, match="Hourly products are disabled"):
        client.add_instance("ubuntu-22.04", 1, 1, "pc-x-y", "hourly")
    assert ft.sleeps == [] and fake.orders == 0


def test_a_wrong_key_is_not_authorized_with_the_allow_list_hint(fake, hw, journal, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    provider = hw(api_key="Wr0ngKey-abcdefghijklmnop")
    with pytest.raises(HostwindsAuthError) as info:
        provider.apply_batch([create("mx1")])
    exc = info.value
    assert exc.exit_code is ExitCode.PROVIDER and exc.status == 401
    assert "Hostwinds API get_instance_ids: HTTP 401: Not Authorized!" in str(exc)
    assert "HOSTWINDS_API_KEY" in exc.hint and "allow-listed by IPv4 address" in exc.hint
    assert len(fake.requests) == 1 and fake.orders == 0 and journal.marked == []
    assert all("Wr0ngKey" not in t for t in texts(exc)) and "Wr0ngKey" not in caplog.text


def test_the_api_key_and_root_passwords_never_leak(fake, hw, client_for, ft, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "penguinctl"):
        caplog.set_level(logging.DEBUG, logger=name)
    provider = hw()
    [created] = provider.apply_batch([create("mx1")])
    password = fake.instances[created.data["service_id"]]["password"]
    raised: list[BaseException] = []

    fake.inject(200, body=[{"result": "error", "message": f"bad key {KEY} for this IP"}])
    fake.inject(503, times=4)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/cloud/api.php"
    dead = client_for(closed, breaker_threshold=1)
    calls = [
        provider.client.get_instances,
        provider.client.get_instances,
        dead.get_instances,
        dead.get_instances,
        lambda: provider.apply_batch([create("mx2", location_id=42)]),
    ]
    for call in calls:
        with pytest.raises(HostwindsError) as info:
            call()
        raised.append(info.value)
    assert [type(e) for e in raised] == [
        HostwindsApiError,
        HostwindsUnavailable,
        HostwindsConnectionError,
        HostwindsCircuitOpen,
        HostwindsApiError,
    ]
    assert "bad key ****** for this IP" in str(raised[0])
    loggers = {r.name.split(".")[0] for r in caplog.records}
    assert {"httpx", "httpcore", "penguinctl"} <= loggers  # everything logged at DEBUG
    shown = [t for e in raised for t in texts(e)]
    shown += [caplog.text, repr(provider), repr(provider.client), repr(dead)]
    shown += [json.dumps(created.data)]
    assert not any(KEY in s for s in shown)
    assert not any(password in s for s in shown)
    assert all(e.__cause__ is None for e in raised)


def test_the_provider_builds_its_own_client(fake) -> None:
    provider = HostwindsProvider(api_key=KEY, base_url=fake.url, journal=MemoryJournal())
    try:
        assert provider.name == "server:hostwinds" and provider.max_parallel == 2
        assert provider.client.get_instances() == [] and KEY not in repr(provider)
    finally:
        provider.close()
    default = HostwindsProvider(api_key=KEY)
    assert default.client.base_url == DEFAULT_BASE_URL and KEY not in repr(default.client)
    default.close()
    with pytest.raises(ProviderError, match="no Hostwinds API key"):
        HostwindsProvider(api_key=" ")
    with pytest.raises(ProviderError, match="not an http"):
        HostwindsClient(KEY, base_url="ftp://example.net/api.php")


def test_the_default_transport_goes_out_over_ipv4(fake) -> None:
    client = HostwindsClient(KEY, base_url=fake.url, rate_limit=None)
    try:
        assert client.get_instances() == []
        transport = client._http._transport
        assert isinstance(transport, httpx.HTTPTransport)
        assert transport._pool._local_address == "0.0.0.0"
    finally:
        client.close()
