"""The cloudflare DNS provider against a local HTTP double of the v4 API (``fakes.cloudflare``),
over real HTTP on 127.0.0.1: publish, read back, minimal updates, deletes, drift, pagination,
authentication, retries and error messages."""

from __future__ import annotations

import logging
import socket
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fakes.cloudflare import FakeCloudflare

from penguinctl.dkim import generate_rsa
from penguinctl.dns.records import DomainDnsInput, build_records, record_name
from penguinctl.errors import ExitCode, ProviderError
from penguinctl.plan.changes import Action, Change
from penguinctl.providers.dns.cloudflare import CloudflareProvider, decode_txt, encode_txt
from penguinctl.providers.dns.cloudflare_client import (
    DEFAULT_BASE_URL,
    MAX_RETRY_AFTER,
    CloudflareAuthError,
    CloudflareClient,
    CloudflareConnectionError,
    CloudflareError,
    CloudflareNotFound,
    CloudflareRateLimited,
    CloudflareServerError,
    TokenBucket,
)
from penguinctl.resources import COMPUTED, ResourceKey

TOKEN = "cf-test-token-Zq7xW2mN9pL4vR8s"
ZONES = ("alpha.example", "beta.example")
TENANT = "acme"
Rec = dict[str, Any]


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    return generate_rsa().public_b64, generate_rsa().public_b64


@pytest.fixture
def fake() -> Iterator[FakeCloudflare]:
    with FakeCloudflare(token=TOKEN, zones=ZONES) as server:
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def cf(fake: FakeCloudflare, sleeps: list[float]) -> Iterator[Callable[..., CloudflareProvider]]:
    made: list[CloudflareProvider] = []

    def make(token: str = TOKEN, base_url: str | None = None, **kw: Any) -> CloudflareProvider:
        client = CloudflareClient(
            token, base_url=base_url or fake.url, rate_limit=None, sleep=sleeps.append, **kw
        )
        made.append(CloudflareProvider("dns:cf", token=token, client=client))
        return made[-1]

    yield make
    for provider in made:
        provider.close()


def records(zone: str, key: str, ips: tuple[str, ...] = ("192.0.2.10",), **kw: Any) -> list[Rec]:
    inp = DomainDnsInput(
        domain=zone,
        mail_host=f"mail.{zone}",
        sending_ips=[*ips, "2001:db8::10"],
        dkim=[("pm202607", key)],
        dmarc_rua=[f"dmarc@{zone}"],
        tracking=("track", "track.example.net"),
        mta_sts=("testing", 86400, "mta-sts.example.net"),
        tls_rpt_rua=f"tls@{zone}",
        **kw,
    )
    return build_records(inp)


def rkey(rec: Rec) -> ResourceKey:
    return ResourceKey("dnsrecord", TENANT, record_name(rec["zone"], rec["name"], rec["type"]))


def changes(action: Action, recs: list[Rec], before: list[Rec] | None = None) -> list[Change]:
    old = {rkey(r): r for r in before or []}
    after = (lambda r: None) if action is Action.DELETE else (lambda r: r)
    return [Change(action, rkey(r), "dns:cf", old.get(rkey(r)), after(r)) for r in recs]


def updates(old: list[Rec], new: list[Rec]) -> list[Change]:
    return changes(Action.UPDATE, [r for r in new if r not in old], before=old)


def methods(fake: FakeCloudflare) -> Counter[str]:
    return Counter(r.method for r in fake.writes())


def test_publish_two_zones_reads_back_equal_and_reapply_writes_nothing(fake, cf, keys) -> None:
    provider = cf()
    published = {zone: records(zone, keys[0]) for zone in ZONES}
    for recs in published.values():
        results = provider.apply_batch(changes(Action.CREATE, recs))
        assert [r.data for r in results] == recs
    every = [r for recs in published.values() for r in recs]
    assert provider.read([rkey(r) for r in every]) == {rkey(r): r for r in every}
    assert methods(fake) == {"POST": sum(len(r["values"]) for r in every)}

    stored = {(r["name"], r["type"]): r for r in fake.dump("alpha.example")}
    dkim = stored[("pm202607._domainkey.alpha.example", "TXT")]["content"]
    strings = dkim[1:-1].split('" "')
    assert dkim.startswith('"v=DKIM1; k=rsa; p=') and len(strings) >= 2
    assert all(len(s.encode()) <= 255 for s in strings) and "".join(strings).endswith(keys[0])
    mx = stored[("alpha.example", "MX")]
    assert (mx["content"], mx["priority"]) == ("mail.alpha.example", 10)
    assert not any(r["proxied"] for r in stored.values())

    fake.requests.clear()
    for recs in published.values():  # a re-run after a crash converges without writes
        provider.apply_batch(changes(Action.CREATE, recs))
    assert fake.writes() == []


def test_changed_values_are_updated_in_place(fake, cf, keys) -> None:
    provider = cf()
    old = records("alpha.example", keys[0], ips=("192.0.2.10", "192.0.2.11"))
    provider.apply_batch(changes(Action.CREATE, old))
    dkim_id = next(r["id"] for r in fake.dump("alpha.example") if "_domainkey" in r["name"])
    fake.requests.clear()

    new = records(
        "alpha.example", keys[1], ips=("192.0.2.10", "192.0.2.12"), dmarc_policy="quarantine"
    )
    provider.apply_batch(updates(old, new))
    # A (one value of two), SPF, DKIM, DMARC: one PUT each, never delete + create
    assert methods(fake) == {"PUT": 4}
    dkim = [r for r in fake.dump("alpha.example") if r["id"] == dkim_id]
    assert len(dkim) == 1 and decode_txt(dkim[0]["content"]).endswith(keys[1])
    assert provider.read([rkey(r) for r in new]) == {rkey(r): r for r in new}

    for ips, expected in (
        (("192.0.2.10", "192.0.2.13", "192.0.2.14"), {"PUT": 2, "POST": 1}),  # A grows, SPF
        (("192.0.2.10",), {"PUT": 1, "DELETE": 2}),  # A shrinks to one value, SPF
    ):
        fake.requests.clear()
        old, new = new, records("alpha.example", keys[1], ips=ips, dmarc_policy="quarantine")
        provider.apply_batch(updates(old, new))
        assert methods(fake) == expected
        assert provider.read([rkey(r) for r in new]) == {rkey(r): r for r in new}


def test_delete_removes_whole_rrsets_and_only_those(fake, cf, keys) -> None:
    provider = cf()
    recs = records("alpha.example", keys[0], ips=("192.0.2.10", "192.0.2.11"))
    provider.apply_batch(changes(Action.CREATE, recs))
    fake.add_record("alpha.example", {"type": "A", "name": "www", "content": "198.51.100.7"})
    fake.add_record("alpha.example", {"type": "TXT", "name": "@", "content": "google-x"})
    gone = [r for r in recs if r["type"] in ("A", "MX") or "_domainkey" in r["name"]]
    kept = [r for r in recs if r not in gone]
    fake.requests.clear()

    provider.apply_batch(changes(Action.DELETE, gone, before=gone))
    assert methods(fake) == {"DELETE": 4}  # 2 A values, MX, DKIM
    live = provider.read([rkey(r) for r in recs])
    assert set(live) == {rkey(r) for r in kept}
    names = {(r["name"], r["content"]) for r in fake.dump("alpha.example")}
    assert ("www.alpha.example", "198.51.100.7") in names
    assert ("alpha.example", "google-x") in names  # SPF's RRset was not asked to change
    assert len(fake.dump("beta.example")) == 0

    fake.requests.clear()
    provider.apply_batch(changes(Action.DELETE, gone, before=gone))
    assert fake.writes() == []


def test_out_of_band_edits_show_as_drift_and_apply_repairs_them(fake, cf, keys) -> None:
    provider = cf()
    recs = records("alpha.example", keys[0])
    provider.apply_batch(changes(Action.CREATE, recs))
    stored = {(r["name"], r["type"]): r for r in fake.dump("alpha.example")}
    fake.edit_record(
        "alpha.example",
        stored[("_dmarc.alpha.example", "TXT")]["id"],
        content='"v=DMARC1; p=reject"',
    )
    fake.edit_record(
        "alpha.example", stored[("mail.alpha.example", "A")]["id"], proxied=True, ttl=1
    )
    fake.add_record(
        "alpha.example", {"type": "A", "name": "mail", "content": "203.0.113.9", "ttl": 3600}
    )

    live = provider.read([rkey(r) for r in recs])
    by_name = {(r["name"], r["type"]): rkey(r) for r in recs}
    assert live[by_name[("_dmarc", "TXT")]]["values"] == ["v=DMARC1; p=reject"]
    a = live[by_name[("mail", "A")]]
    assert (a["ttl"], a["values"]) == (1, ["192.0.2.10", "203.0.113.9"])
    drifted = [r for r in recs if live[rkey(r)] != r]
    assert len(drifted) == 2

    fake.requests.clear()
    provider.apply_batch(updates(list(live.values()), drifted))
    assert methods(fake) == {"PUT": 2, "DELETE": 1}
    assert provider.read([rkey(r) for r in recs]) == {rkey(r): r for r in recs}
    assert not any(r["proxied"] for r in fake.dump("alpha.example"))


def test_reading_walks_every_page(fake, cf, keys) -> None:
    provider = cf()
    every = [r for zone in ZONES for r in records(zone, keys[0])]
    provider.apply_batch(changes(Action.CREATE, every))
    for i in range(23):
        fake.add_record("alpha.example", {"type": "A", "name": f"h{i}", "content": "192.0.2.99"})
    total = len(fake.dump("alpha.example"))
    fake.requests.clear()

    assert provider.read([rkey(r) for r in every]) == {rkey(r): r for r in every}
    alpha = f"/zones/{fake.zone_id('alpha.example')}/dns_records"
    pages = [int(r.query["page"]) for r in fake.requests if r.path == alpha]
    assert pages == list(range(1, -(-total // fake.max_per_page) + 1)) and len(pages) >= 6


def test_wrong_token_is_a_clear_error_without_the_token(fake, cf, keys, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "Wr0ngT0ken-abcdefghijklmnop"
    provider = cf(token=secret)
    recs = records("alpha.example", keys[0])
    for call in (
        lambda: provider.read([rkey(recs[0])]),
        lambda: provider.apply_batch(changes(Action.CREATE, recs)),
    ):
        with pytest.raises(CloudflareAuthError) as info:
            call()
        exc = info.value
        assert isinstance(exc, ProviderError) and exc.exit_code is ExitCode.PROVIDER
        text = str(exc)
        assert "HTTP 403" in text and "9109" in text and "alpha.example" in text
        assert "api_token of this DnsProvider has Zone.DNS edit permission" in text
        shown = [text, repr(exc), "".join(traceback.format_exception(exc)), repr(provider)]
        assert not any(secret in s for s in shown) and exc.__cause__ is None
    assert secret not in caplog.text and secret not in repr(provider.client)
    assert len(fake.requests) == 2 and fake.writes() == []  # never retried


def test_rate_limited_requests_are_retried_honouring_retry_after(fake, cf, keys, sleeps) -> None:
    provider = cf()
    recs = records("alpha.example", keys[0])
    fake.inject(429, headers={"Retry-After": "2"}, method="POST", times=2)
    provider.apply_batch(changes(Action.CREATE, recs))
    assert sleeps == [2.0, 2.0]
    assert [r.status for r in fake.writes()][:3] == [429, 429, 200]
    assert provider.read([rkey(r) for r in recs]) == {rkey(r): r for r in recs}

    sleeps.clear()
    fake.inject(429, headers={"Retry-After": "100000"}, times=4)
    with pytest.raises(CloudflareRateLimited) as info:
        provider.read([rkey(recs[0])])
    assert sleeps == [MAX_RETRY_AFTER] * 3  # capped, bounded
    assert "HTTP 429" in str(info.value) and "971" in str(info.value)
    assert "after 4 attempts" in str(info.value)


def test_server_errors_back_off_exponentially_then_give_up(fake, cf, keys, sleeps) -> None:
    provider = cf()
    recs = records("alpha.example", keys[0])
    provider.apply_batch(changes(Action.CREATE, recs))
    fake.inject(503, times=2, path_contains="dns_records")
    assert provider.read([rkey(r) for r in recs]) == {rkey(r): r for r in recs}
    assert sleeps == [0.5, 1.0]

    sleeps.clear()
    fake.requests.clear()
    fake.inject(502, times=10)
    with pytest.raises(CloudflareServerError) as info:
        provider.read([rkey(recs[0])])
    assert "HTTP 502" in str(info.value) and len(fake.requests) == 4
    assert sleeps == [0.5, 1.0, 2.0]


def test_client_errors_are_not_retried_and_carry_cloudflare_codes(fake, cf, keys, sleeps) -> None:
    provider = cf()
    recs = records("alpha.example", keys[0])
    body = {
        "success": False,
        "errors": [{"code": 9005, "message": "Content for A record is invalid."}],
        "messages": [],
        "result": None,
    }
    fake.inject(400, body=body, method="POST")
    with pytest.raises(CloudflareError) as info:
        provider.apply_batch(changes(Action.CREATE, recs))
    text = str(info.value)
    assert type(info.value) is CloudflareError and info.value.codes == [9005]
    assert "dns:cf: zone alpha.example: Cloudflare API POST /zones/" in text
    assert "HTTP 400: error 9005: Content for A record is invalid." in text
    assert [r.method for r in fake.writes()] == ["POST"] and sleeps == []

    bad_ttl = [{**recs[0], "ttl": 5}]
    with pytest.raises(CloudflareError, match="error 9021: Invalid TTL"):
        provider.apply_batch(changes(Action.CREATE, bad_ttl))


def test_unknown_zone_is_a_clear_error(fake, cf, keys) -> None:
    provider = cf()
    recs = records("gamma.example", keys[0])
    for call in (
        lambda: provider.read([rkey(recs[0])]),
        lambda: provider.apply_batch(changes(Action.CREATE, recs)),
    ):
        with pytest.raises(CloudflareNotFound) as info:
            call()
        assert "no zone gamma.example that this API token can see" in str(info.value)
        assert "add gamma.example to the Cloudflare account" in str(info.value)
    assert fake.writes() == []


def test_bad_record_data_fails_before_any_request(fake, cf, keys) -> None:
    provider = cf()
    recs = records("alpha.example", COMPUTED)
    with pytest.raises(ProviderError, match=r"not known yet \(\(known after apply\)\)"):
        provider.apply_batch(changes(Action.CREATE, recs))
    mx = next(r for r in records("alpha.example", keys[0]) if r["type"] == "MX")
    with pytest.raises(ProviderError, match="not valid MX data"):
        provider.apply_batch(changes(Action.CREATE, [{**mx, "values": ["mail.example."]}]))
    srv = {**mx, "type": "SRV", "values": ["0 5 5060 sip.example."]}
    with pytest.raises(ProviderError, match="publishes A, AAAA, CNAME, MX, TXT records"):
        provider.apply_batch(changes(Action.CREATE, [srv]))
    assert fake.requests == []


def test_timed_out_create_is_retried_without_duplicating(fake, cf, keys, sleeps) -> None:
    provider = cf(timeout=0.3)
    recs = records("alpha.example", keys[0])
    fake.inject(None, method="POST", delay=0.8, process_first=True)  # created, answered late
    provider.apply_batch(changes(Action.CREATE, recs))
    assert sleeps == [0.5]
    assert [r.status for r in fake.writes()][1] == 400  # the retry: 81058 identical record
    assert provider.read([rkey(r) for r in recs]) == {rkey(r): r for r in recs}
    assert len(fake.dump("alpha.example")) == sum(len(r["values"]) for r in recs)


def test_connection_failures_are_retried_then_reported(cf, sleeps) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = cf(base_url=f"http://127.0.0.1:{port}/client/v4")
    with pytest.raises(CloudflareConnectionError, match=r"cannot connect \(after 4 attempts\)"):
        provider.read([ResourceKey("dnsrecord", TENANT, "alpha.example/@/MX")])
    assert sleeps == [0.5, 1.0, 2.0]


def test_provider_builds_its_own_client(fake, keys) -> None:
    recs = records("beta.example", keys[0])[:4]  # the default rate limit (burst 10) applies
    provider = CloudflareProvider("dns:cf", token=TOKEN, base_url=fake.url)
    try:
        provider.apply_batch(changes(Action.CREATE, recs))
        assert provider.read([rkey(r) for r in recs]) == {rkey(r): r for r in recs}
    finally:
        provider.close()
    default = CloudflareProvider("dns:cf", token=TOKEN)
    assert default.client.base_url == DEFAULT_BASE_URL and TOKEN not in repr(default)
    default.close()
    with pytest.raises(ProviderError, match="no Cloudflare API token"):
        CloudflareProvider("dns:cf", token=" ")


@pytest.mark.parametrize(
    "value",
    ["", "v=spf1 -all", 'say "hi" \\ bye', "é" * 200, "x" * 255, "x" * 256, "y" * 511],
)
def test_txt_content_round_trips_in_255_octet_strings(value: str) -> None:
    content = encode_txt(value)
    assert content.startswith('"') and content.endswith('"')
    strings = [s.replace('\\"', '"').replace("\\\\", "\\") for s in content[1:-1].split('" "')]
    assert all(len(s.encode()) <= 255 for s in strings)
    assert decode_txt(content) == value
    # what Cloudflare returns: unquoted (entered so), several strings, RFC 1035 escapes
    assert decode_txt("v=spf1 -all") == "v=spf1 -all"
    assert decode_txt('"v=DKIM1; k=rsa; " "p=abc"') == "v=DKIM1; k=rsa; p=abc"
    assert decode_txt('"a\\"b" "\\065\\\\"') == 'a"bA\\'


def test_token_bucket_spaces_requests() -> None:
    now, waits = [0.0], []
    bucket = TokenBucket(4.0, 2, clock=lambda: now[0], sleep=waits.append)
    for _ in range(4):
        bucket.acquire()
    assert waits == [0.25, 0.5]
    now[0] = 10.0
    bucket.acquire()
    assert waits == [0.25, 0.5]


def test_foreign_apex_txt_values_are_left_alone(fake, cf, keys) -> None:
    """Only the SPF value of the apex TXT is penguinctl's: a verification token next to it is
    not drift, and is never rewritten or deleted."""
    provider = cf()
    zone = "alpha.example"
    fake.add_record(zone, {"type": "TXT", "name": "@", "content": '"site-verification=xyz"'})
    recs = records(zone, keys[0])
    provider.apply_batch(changes(Action.CREATE, recs))
    spf = next(r for r in recs if r["name"] == "@" and r["type"] == "TXT")
    assert provider.read([rkey(spf)]) == {rkey(spf): spf}

    def apex() -> set[str]:
        return {
            decode_txt(r["content"])
            for r in fake.dump(zone)
            if r["name"] == zone and r["type"] == "TXT"
        }

    assert apex() == {"site-verification=xyz", spf["values"][0]}
    new = records(zone, keys[0], spf_all="-all")
    new_spf = next(r for r in new if r["name"] == "@" and r["type"] == "TXT")
    provider.apply_batch([Change(Action.UPDATE, rkey(new_spf), "dns:cf", spf, new_spf)])
    assert apex() == {"site-verification=xyz", new_spf["values"][0]}
    provider.apply_batch([Change(Action.DELETE, rkey(new_spf), "dns:cf", new_spf, None)])
    assert apex() == {"site-verification=xyz"}
