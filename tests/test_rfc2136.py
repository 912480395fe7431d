"""The rfc2136 DNS provider against a real BIND (``tests/bind.py``), on 127.0.0.1 only."""

from __future__ import annotations

import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.update
import pytest
from bind import HOST, BindServer, free_port, named_binary

from penguinctl.dkim import generate_rsa
from penguinctl.dns.records import DomainDnsInput, build_records, record_name
from penguinctl.errors import ProviderError
from penguinctl.plan.changes import Action, Change, ChangeResult
from penguinctl.providers.dns.rfc2136 import Rfc2136Provider
from penguinctl.resources import COMPUTED, ResourceKey

ZONES = ["alpha.example", "beta.example", "gamma.example"]
TENANT = "acme"


@pytest.fixture(scope="module")
def dkim_key() -> str:
    return generate_rsa().public_b64


@pytest.fixture
def bind(tmp_path: Path) -> Iterator[BindServer]:
    with BindServer(tmp_path / "bind", zones=ZONES) as server:
        yield server


def provider(server: BindServer, **kw: Any) -> Rfc2136Provider:
    opts: dict[str, Any] = {
        "server": HOST,
        "port": server.port,
        "tsig_name": server.key_name,
        "tsig_algorithm": server.algorithm,
        "tsig_secret": server.secret,
        "timeout": 2.0,
    }
    opts.update(kw)
    return Rfc2136Provider("dns:test", **opts)


def records(zone: str, public_key: str, **kw: Any) -> list[dict[str, Any]]:
    fields: dict[str, Any] = {
        "domain": zone,
        "mail_host": f"mail.{zone}",
        "sending_ips": ["192.0.2.10", "192.0.2.11", "2001:db8::10"],
        "dkim": [("pm202611", public_key)],
        "dmarc_rua": [f"dmarc@{zone}"],
        "tracking": ("track", "track.example.net"),
        "mta_sts": ("testing", 86400, "mta-sts.example.net"),
        "tls_rpt_rua": f"tls@{zone}",
    }
    fields.update(kw)
    return build_records(DomainDnsInput(**fields))


def key_of(rec: dict[str, Any]) -> ResourceKey:
    return ResourceKey("dnsrecord", TENANT, record_name(rec["zone"], rec["name"], rec["type"]))


def changes(
    recs: list[dict[str, Any]],
    action: Action = Action.CREATE,
    before: list[dict[str, Any]] | None = None,
) -> list[Change]:
    """Changes as the engine makes them: an update carries what it replaces (``before``)."""
    after = action is not Action.DELETE
    old = {key_of(r): r for r in before or []}
    return [
        Change(
            action, key_of(r), "dns:test", old.get(key_of(r)) if after else r, r if after else None
        )
        for r in recs
    ]


def apply(prov: Rfc2136Provider, chs: list[Change]) -> list[ChangeResult]:
    """Apply like the engine does: one ``apply_batch`` per batch key."""
    batches: dict[Any, list[Change]] = defaultdict(list)
    for c in chs:
        batches[prov.batch_key(c)].append(c)
    return [r for batch in batches.values() for r in prov.apply_batch(batch)]


def soa_serial(server: BindServer, zone: str) -> int:
    return server.query(zone, "SOA").answer[0][0].serial


def answer(server: BindServer, name: str, rdtype: str) -> list[Any]:
    resp = server.query(name, rdtype)
    rrset = resp.get_rrset(
        resp.answer, dns.name.from_text(name), 1, dns.rdatatype.from_text(rdtype)
    )
    return list(rrset) if rrset is not None else []


def test_publish_read_back_and_reapply(bind: BindServer, dkim_key: str) -> None:
    prov = provider(bind)
    recs = [r for zone in ZONES for r in records(zone, dkim_key)]
    results = apply(prov, changes(recs))
    assert [r.data for r in results] == recs

    # plain DNS queries see what a verifier sees
    zone = ZONES[0]
    assert [r.to_text() for r in answer(bind, zone, "MX")] == [f"10 mail.{zone}."]
    assert sorted(r.address for r in answer(bind, f"mail.{zone}", "A")) == [
        "192.0.2.10",
        "192.0.2.11",
    ]
    assert [r.address for r in answer(bind, f"mail.{zone}", "AAAA")] == ["2001:db8::10"]
    (spf,) = answer(bind, zone, "TXT")
    assert spf.strings == (b"v=spf1 ip4:192.0.2.10 ip4:192.0.2.11 ip6:2001:db8::10 ~all",)
    for z in ZONES:
        (dkim,) = answer(bind, f"pm202611._domainkey.{z}", "TXT")  # ONE RR, several strings
        assert len(dkim.strings) == 2 and all(len(s) <= 255 for s in dkim.strings)
        assert b"".join(dkim.strings).decode() == f"v=DKIM1; k=rsa; p={dkim_key}"
    (cname,) = answer(bind, f"track.{zone}", "CNAME")
    assert cname.target.to_text() == "track.example.net."

    # read() returns exactly the applied data: no spurious drift
    assert prov.read([key_of(r) for r in recs]) == {key_of(r): r for r in recs}

    # re-applying is harmless and changes nothing (the serial stays put)
    serials = [soa_serial(bind, z) for z in ZONES]
    apply(prov, changes(recs))
    assert [soa_serial(bind, z) for z in ZONES] == serials
    assert prov.read([key_of(r) for r in recs]) == {key_of(r): r for r in recs}


def test_update_replaces_the_rrset(bind: BindServer, dkim_key: str) -> None:
    prov = provider(bind)
    zone = ZONES[1]
    old = records(zone, dkim_key)
    apply(prov, changes(old))
    new = records(zone, dkim_key, spf_all="-all", sending_ips=["198.51.100.7"], ttl=600)
    dropped = [r for r in old if key_of(r) not in {key_of(n) for n in new}]
    assert [r["type"] for r in dropped] == ["AAAA"]
    apply(prov, changes(new, Action.UPDATE, before=old) + changes(dropped, Action.DELETE))
    assert prov.read([key_of(r) for r in old + new]) == {key_of(r): r for r in new}
    (spf,) = answer(bind, zone, "TXT")
    assert spf.strings == (b"v=spf1 ip4:198.51.100.7 -all",)
    assert [r.address for r in answer(bind, f"mail.{zone}", "A")] == ["198.51.100.7"]


def test_delete_is_idempotent_and_touches_only_owned_rrsets(
    bind: BindServer, dkim_key: str
) -> None:
    prov = provider(bind)
    zone = ZONES[2]
    recs = records(zone, dkim_key)
    apply(prov, changes(recs))
    foreign = dns.update.UpdateMessage(zone, keyring=bind.keyring())
    foreign.add("hand-made", 300, "TXT", '"keep me"')
    assert dns.query.tcp(foreign, HOST, port=bind.port, timeout=5).rcode() == dns.rcode.NOERROR

    gone, kept = recs[3:], recs[:3]
    results = apply(prov, changes(gone, Action.DELETE))
    assert all(r.data is None for r in results)
    apply(prov, changes(gone, Action.DELETE))  # already gone: quietly succeeds
    assert prov.read([key_of(r) for r in recs]) == {key_of(r): r for r in kept}
    assert answer(bind, f"_dmarc.{zone}", "TXT") == []
    assert [r.strings for r in answer(bind, f"hand-made.{zone}", "TXT")] == [(b"keep me",)]
    assert answer(bind, zone, "SOA") and answer(bind, zone, "NS")


def test_out_of_band_edit_shows_up_as_drift(bind: BindServer, dkim_key: str) -> None:
    prov = provider(bind)
    zone = ZONES[0]
    recs = records(zone, dkim_key)
    apply(prov, changes(recs))
    edit = dns.update.UpdateMessage(zone, keyring=bind.keyring())
    edit.replace("_dmarc", 120, "TXT", '"v=DMARC1; p=reject"')
    edit.delete("track", "CNAME")
    assert dns.query.tcp(edit, HOST, port=bind.port, timeout=5).rcode() == dns.rcode.NOERROR

    live = prov.read([key_of(r) for r in recs])
    dmarc = next(r for r in recs if r["name"] == "_dmarc")
    track = next(r for r in recs if r["name"] == "track")
    assert live[key_of(dmarc)] == {**dmarc, "ttl": 120, "values": ["v=DMARC1; p=reject"]}
    assert key_of(track) not in live
    assert {k: v for k, v in live.items() if k not in (key_of(dmarc),)} == {
        key_of(r): r for r in recs if r not in (dmarc, track)
    }


def test_read_falls_back_to_queries_when_axfr_is_refused(tmp_path: Path, dkim_key: str) -> None:
    with BindServer(tmp_path / "bind", zones=ZONES[:2], allow_transfer=False) as server:
        prov = provider(server)
        recs = [r for zone in ZONES[:2] for r in records(zone, dkim_key)]
        apply(prov, changes(recs))
        missing = ResourceKey("dnsrecord", TENANT, record_name(ZONES[0], "nope", "TXT"))
        live = prov.read([key_of(r) for r in recs] + [missing])
        assert live == {key_of(r): r for r in recs}
        assert "zone transfer" in server.log_tail(200) and "denied" in server.log_tail(200)


@pytest.mark.parametrize("algorithm", ["hmac-md5", "hmac-sha512"])
def test_other_tsig_algorithms(tmp_path: Path, dkim_key: str, algorithm: str) -> None:
    with BindServer(tmp_path / "bind", zones=ZONES[:1], algorithm=algorithm) as server:
        prov = provider(server)
        recs = records(ZONES[0], dkim_key)
        apply(prov, changes(recs))
        assert prov.read([key_of(r) for r in recs]) == {key_of(r): r for r in recs}


def test_wrong_tsig_secret_is_a_clear_error_without_the_secret(
    bind: BindServer, dkim_key: str
) -> None:
    wrong = "QUJD" + bind.secret[4:]
    prov = provider(bind, tsig_secret=wrong)
    recs = records(ZONES[0], dkim_key)
    for call in (lambda: apply(prov, changes(recs)), lambda: prov.read([key_of(recs[0])])):
        with pytest.raises(ProviderError) as info:
            call()
        text = str(info.value)
        assert ZONES[0] in text and f"{HOST}:{bind.port}" in text and "TSIG" in text
        assert wrong not in text and bind.secret not in text and wrong[4:20] not in text
    assert answer(bind, f"_dmarc.{ZONES[0]}", "TXT") == []


def test_invalid_secret_and_algorithm_are_rejected_up_front() -> None:
    with pytest.raises(ProviderError) as info:
        Rfc2136Provider("dns:x", server=HOST, tsig_name="k", tsig_secret="not*base64*secret")
    assert "not*base64" not in str(info.value)
    secret = "c2VjcmV0LWtleS1tYXRlcmlhbA=="
    prov = Rfc2136Provider("dns:x", server=HOST, tsig_name="k", tsig_secret=secret)
    assert secret not in repr(vars(prov)) and secret not in str(vars(prov))
    with pytest.raises(ProviderError, match="hmac-sha256"):
        Rfc2136Provider(
            "dns:x", server=HOST, tsig_name="k", tsig_algorithm="gss-tsig", tsig_secret="AAAA"
        )


def test_zone_the_server_does_not_serve(bind: BindServer, dkim_key: str) -> None:
    prov = provider(bind)
    recs = records("other.example", dkim_key)
    with pytest.raises(ProviderError, match=r"zone other\.example at 127\.0\.0\.1:\d+.*NOTAUTH"):
        apply(prov, changes(recs))
    with pytest.raises(ProviderError, match=r"does not serve zone other\.example \(REFUSED\)"):
        prov.read([key_of(recs[0])])


def test_unreachable_server_times_out_into_a_provider_error(dkim_key: str) -> None:
    port = free_port()  # nothing listens: TCP is refused, UDP gets no answer
    prov = Rfc2136Provider(
        "dns:x", server=HOST, port=port, tsig_name=None, tsig_secret=None, timeout=0.5, retries=1
    )
    start = time.monotonic()
    with pytest.raises(ProviderError, match=rf"no answer from 127\.0\.0\.1:{port} after 2"):
        prov.apply_batch(changes(records(ZONES[0], dkim_key)[:1]))
    assert time.monotonic() - start < 3


def test_udp_is_used_when_tcp_is_refused(bind: BindServer, dkim_key: str) -> None:
    """A UDP-only relay in front of BIND: nothing listens on its TCP port."""
    port = free_port()
    relay = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    relay.bind((HOST, port))
    relay.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = relay.recvfrom(65535)
            except TimeoutError:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
                up.settimeout(5)
                up.sendto(data, (HOST, bind.port))
                relay.sendto(up.recv(65535), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        prov = provider(bind, port=port)
        recs = records(ZONES[1], dkim_key)
        apply(prov, changes(recs))
        assert provider(bind).read([key_of(r) for r in recs]) == {key_of(r): r for r in recs}
        assert prov.read([key_of(r) for r in recs]) == {key_of(r): r for r in recs}  # queries
    finally:
        stop.set()
        thread.join(timeout=5)
        relay.close()


def test_large_batches_are_split_into_several_messages(
    bind: BindServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    prov = provider(bind)
    sent: list[int] = []
    update = prov._update
    monkeypatch.setattr(
        prov, "_update", lambda zone, ops, gone: (sent.append(len(ops)), update(zone, ops, gone))
    )
    zone = ZONES[2]
    value = "x" * 600  # three character-strings each
    recs = [
        {"zone": zone, "name": f"r{i}", "type": "TXT", "ttl": 300, "values": [value]}
        for i in range(150)  # about 95 kB of record data: more than one TCP message holds
    ]
    apply(prov, changes(recs))
    assert len(sent) >= 3 and sum(sent) == len(recs)
    assert prov.read([key_of(r) for r in recs]) == {key_of(r): r for r in recs}
    apply(prov, changes(recs, Action.DELETE))
    assert prov.read([key_of(r) for r in recs]) == {}


def test_bad_changes_are_refused_before_anything_is_sent() -> None:
    prov = Rfc2136Provider("dns:x", server=HOST, port=9, tsig_name=None, tsig_secret=None)
    rec = {"zone": "a.example", "name": "pm1._domainkey", "type": "TXT", "ttl": 60}
    for bad in (
        {**rec, "values": [COMPUTED]},
        {**rec, "name": "@", "type": "SOA", "values": ["a. b. 1 2 3 4 5"]},
        {**rec, "name": "@", "type": "NS", "values": ["ns.example."]},
        {**rec, "type": "MX", "values": ["not an mx"]},
    ):
        with pytest.raises(ProviderError):
            prov.apply_batch(changes([bad]))


def test_foreign_data_next_to_a_cname_is_an_error_not_a_silent_no_op(bind: BindServer) -> None:
    prov = provider(bind)
    zone = ZONES[1]
    foreign = dns.update.UpdateMessage(zone, keyring=bind.keyring())
    foreign.add("track", 300, "TXT", '"hand-made"')
    foreign.add("_dmarc", 300, "CNAME", "dmarc.example.net.")
    assert dns.query.tcp(foreign, HOST, port=bind.port, timeout=5).rcode() == dns.rcode.NOERROR
    cname = {"zone": zone, "name": "track", "type": "CNAME", "ttl": 300, "values": ["t.example."]}
    with pytest.raises(ProviderError, match=r"ignored the CNAME at track\.beta\.example"):
        prov.apply_batch(changes([cname]))
    dmarc = {"zone": zone, "name": "_dmarc", "type": "TXT", "ttl": 300, "values": ["v=DMARC1"]}
    with pytest.raises(ProviderError, match=r"YXRRSET.*CNAME"):
        prov.apply_batch(changes([dmarc]))
    assert answer(bind, f"_dmarc.{zone}", "TXT") == []

    # a record of penguinctl's own changing type: the delete goes first, in the same message
    owned_cname = {**dmarc, "type": "CNAME", "values": ["dmarc.example.net."]}
    prov.apply_batch(changes([dmarc]) + changes([owned_cname], Action.DELETE))
    assert prov.read([key_of(dmarc), key_of(owned_cname)]) == {key_of(dmarc): dmarc}


def test_a_missing_named_skips_or_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        named_binary("named-penguinctl-missing")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="bind9"):
        named_binary("named-penguinctl-missing")


def test_foreign_apex_txt_values_are_left_alone(bind: BindServer, dkim_key: str) -> None:
    """A co-managed zone: the apex TXT RRset also holds a site-verification token. penguinctl
    publishes, changes and deletes its SPF value only, and never reads the token as drift."""
    zone = ZONES[0]
    upd = dns.update.UpdateMessage(zone, keyring=bind.keyring())
    upd.add("@", 300, "TXT", '"google-site-verification=abc123"')
    assert dns.query.tcp(upd, HOST, port=bind.port, timeout=5).rcode() == 0
    prov = provider(bind)

    def apex() -> set[str]:
        return {b"".join(rd.strings).decode() for rd in answer(bind, zone, "TXT")}

    recs = records(zone, dkim_key)
    apply(prov, changes(recs))
    spf = next(r for r in recs if r["name"] == "@" and r["type"] == "TXT")
    assert apex() == {"google-site-verification=abc123", spf["values"][0]}
    assert prov.read([key_of(spf)]) == {key_of(spf): spf}  # the token is not drift

    changed = records(zone, dkim_key, spf_include=["_spf.example.net"])
    new_spf = next(r for r in changed if r["name"] == "@" and r["type"] == "TXT")
    apply(prov, [Change(Action.UPDATE, key_of(new_spf), "dns:test", spf, new_spf)])
    assert apex() == {"google-site-verification=abc123", new_spf["values"][0]}

    apply(prov, [Change(Action.DELETE, key_of(new_spf), "dns:test", new_spf, None)])
    assert apex() == {"google-site-verification=abc123"}
    assert prov.read([key_of(new_spf)]) == {}


def test_connections_are_reused_and_a_closed_one_is_replaced(
    bind: BindServer, dkim_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reads and updates share kept TCP connections instead of one per message; a kept
    connection the server closed meanwhile (idle timeout, restart) is replaced at once."""
    opened: list[socket.socket] = []
    real = socket.create_connection

    def counting(*args: Any, **kw: Any) -> socket.socket:
        opened.append(real(*args, **kw))
        return opened[-1]

    monkeypatch.setattr(socket, "create_connection", counting)
    prov = provider(bind)
    recs = [r for zone in ZONES for r in records(zone, dkim_key)]
    apply(prov, changes(recs))  # one after another: one connection for three zones
    assert len(opened) == 1
    keys = [key_of(r) for r in recs]
    assert prov.read(keys) == {key_of(r): r for r in recs}  # parallel transfers
    assert len(opened) <= 1 + len(ZONES)
    n = len(opened)
    for sock, _ in prov._conns._idle:  # as if the server had closed them all
        sock.shutdown(socket.SHUT_RDWR)
    serials = [soa_serial(bind, z) for z in ZONES]
    assert prov.read(keys) == {key_of(r): r for r in recs}
    apply(prov, changes(recs))
    assert [soa_serial(bind, z) for z in ZONES] == serials
    assert len(opened) > n  # replaced, and no error surfaced
    prov.close()
    assert all(s.fileno() == -1 for s in opened)
