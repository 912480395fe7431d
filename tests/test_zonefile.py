"""Zone files: rendering, parsing (fast path and dnspython agree), serials, atomic writes, and the
``zonefile`` DNS provider."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import dns.rdatatype
import dns.zone
import pytest
from daemons import NOT_APPLICABLE, checkzone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from penguinctl.dkim import generate_rsa
from penguinctl.dns.records import DomainDnsInput, build_records, record_name
from penguinctl.dns.zonefile import (
    DEFAULT_NAMESERVERS,
    ZoneParseError,
    _dnspython_parse,
    hostmaster_rname,
    next_serial,
    parse_zone,
    read_zone,
    render_zone,
    stale_temp_files,
    write_atomic,
)
from penguinctl.errors import ProviderError
from penguinctl.plan.changes import Action, Change
from penguinctl.providers.dns.zonefile import ZonefileProvider
from penguinctl.resources import COMPUTED, ResourceKey

SERIAL = 2026112300


@pytest.fixture(scope="module")
def dkim_key() -> str:
    return generate_rsa(2048).public_b64


def _keyed(records) -> dict:
    return {(r["name"], r["type"]): r for r in records}


def _domain_records(domain: str, dkim_key: str, **over) -> list[dict]:
    args = {
        "domain": domain,
        "mail_host": f"mail.{domain}",
        "sending_ips": ["203.0.113.7", "2001:db8::7"],
        "dkim": [("pm202611", dkim_key)],
        "dmarc_rua": [f"dmarc@{domain}"],
    }
    args.update(over)
    return build_records(DomainDnsInput(**args))


# -- rendering -------------------------------------------------------------------------------
def test_render_layout(dkim_key):
    recs = _domain_records("acme.example", dkim_key, tracking=("track", "t.example"))
    text = render_zone("acme.example", recs, serial=SERIAL)
    lines = text.splitlines()
    assert lines[0].startswith("; Managed by penguinctl")
    assert "$ORIGIN acme.example." in lines
    assert "$TTL 3600" in lines
    soa = next(line for line in lines if "\tSOA\t" in line)
    assert soa.split("\t")[-1] == (
        f"ns1.penguinctl.invalid. hostmaster.acme.example. {SERIAL} 3600 600 1209600 300"
    )
    ns = [line.split("\t")[-1] for line in lines if "\tNS\t" in line]
    assert ns == list(DEFAULT_NAMESERVERS)
    body = [line for line in lines if line and not line.startswith((";", "$"))][3:]
    owners = [(line.split("\t")[0], line.split("\t")[3]) for line in body]
    assert owners == sorted(owners, key=lambda o: (o[0] != "@", o[0], o[1]))
    assert text.endswith("\n")


def test_dkim_txt_is_one_rr_of_255_octet_strings(dkim_key, tmp_path):
    recs = _domain_records("acme.example", dkim_key)
    text = render_zone("acme.example", recs, serial=SERIAL)
    dkim_lines = [line for line in text.splitlines() if line.startswith("pm202611._domainkey")]
    assert len(dkim_lines) == 1
    path = tmp_path / "acme.example.zone"
    path.write_text(text)
    zone = dns.zone.from_file(str(path), origin="acme.example", relativize=False)
    rdataset = zone.get_rdataset("pm202611._domainkey.acme.example.", "TXT")
    assert rdataset is not None and len(rdataset) == 1  # ONE RR
    (rr,) = list(rdataset)
    assert len(rr.strings) >= 2 and all(len(s) <= 255 for s in rr.strings)
    assert b"".join(rr.strings).decode() == f"v=DKIM1; k=rsa; p={dkim_key}"
    assert parse_zone(path, "acme.example")[("pm202611._domainkey", "TXT")]["values"] == [
        f"v=DKIM1; k=rsa; p={dkim_key}"
    ]


def test_txt_escaping_round_trips_through_dnspython():
    tricky = 'say "hi" \\ back; tab\there é€ \x00\x7f' + "x" * 300
    rec = {"zone": "acme.example", "name": "odd", "type": "TXT", "ttl": 60, "values": [tricky]}
    text = render_zone("acme.example", [rec], serial=SERIAL)
    zone = dns.zone.from_text(text, origin="acme.example", relativize=False)
    (rr,) = list(zone.get_rdataset("odd.acme.example.", "TXT"))
    assert b"".join(rr.strings).decode() == tricky
    assert parse_zone(text, "acme.example") == {("odd", "TXT"): rec}


def test_render_refuses_computed_foreign_and_empty_records():
    rec = {"zone": "acme.example", "name": "x", "type": "TXT", "ttl": 60, "values": [COMPUTED]}
    with pytest.raises(ValueError, match="not known yet"):
        render_zone("acme.example", [rec], serial=SERIAL)
    with pytest.raises(ValueError, match="belongs to"):
        render_zone("other.example", [{**rec, "values": ["a"]}], serial=SERIAL)
    with pytest.raises(ValueError, match="no values"):
        render_zone("acme.example", [{**rec, "values": []}], serial=SERIAL)


def test_hostmaster_rname():
    assert hostmaster_rname("hostmaster@acme.example") == "hostmaster.acme.example."
    assert hostmaster_rname("first.last@Acme.Example.") == "first\\.last.acme.example."
    assert hostmaster_rname("dns.acme.example") == "dns.acme.example."
    with pytest.raises(ValueError):
        hostmaster_rname("@acme.example")


def test_three_domains_pass_namedcheckzone(dkim_key, tmp_path):
    zones = {
        # mail host inside the zone: A/AAAA records make the MX resolvable
        "acme-mail.example": _domain_records(
            "acme-mail.example", dkim_key, tracking=("track", "track.penguinctl.example")
        ),
        # mail host in another zone, custom nameservers and hostmaster with a dot
        "acme-outreach.example": _domain_records(
            "acme-outreach.example", dkim_key, mail_host="mail.acme-mail.example"
        ),
        # everything optional
        "acme-growth.example": _domain_records(
            "acme-growth.example",
            dkim_key,
            spf_include=["spf.penguinctl.example"],
            mta_sts=("testing", 604800, "mta-sts.penguinctl.example"),
            tls_rpt_rua="tlsrpt@acme-mail.example",
            dmarc_pct=10,
            dmarc_policy="quarantine",
        ),
    }
    options = {
        "acme-outreach.example": {
            "nameservers": ["ns1.dns-host.example", "ns2.dns-host.example."],
            "hostmaster": "first.last@acme-mail.example",
        }
    }
    for origin, recs in zones.items():
        path = tmp_path / f"{origin}.zone"
        write_atomic(path, render_zone(origin, recs, serial=SERIAL, **options.get(origin, {})))
        checkzone(origin, path)
        assert parse_zone(path, origin) == _keyed(recs)


# -- parsing ---------------------------------------------------------------------------------
_label = st.from_regex(r"[a-z0-9_][a-z0-9_-]{0,14}", fullmatch=True)
_owner = st.one_of(st.just("@"), st.lists(_label, min_size=1, max_size=3).map(".".join))
_host = st.lists(
    st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True), min_size=2, max_size=4
).map(lambda labels: ".".join(labels) + ".")
_txt = st.one_of(
    st.text(max_size=40),
    st.text(max_size=700),
    st.text(alphabet='"\\; ()$@\t', max_size=300),
    st.text(alphabet=st.characters(codec="utf-8", min_codepoint=0x80), min_size=80, max_size=200),
)
_values = {
    "A": st.ip_addresses(v=4).map(str),
    "AAAA": st.ip_addresses(v=6).map(str),
    "MX": st.tuples(st.integers(0, 65535), _host).map(lambda t: f"{t[0]} {t[1]}"),
    "CNAME": _host,
    "TXT": _txt,
}


@st.composite
def record_sets(draw) -> list[dict]:
    owners = draw(st.lists(_owner, min_size=1, max_size=6, unique=True))
    records = []
    for owner in owners:
        if owner != "@" and draw(st.integers(0, 5)) == 0:
            types = ["CNAME"]
        else:
            types = draw(
                st.lists(
                    st.sampled_from(["A", "AAAA", "MX", "TXT"]), min_size=1, max_size=4, unique=True
                )
            )
        for rtype in types:
            max_values = 1 if rtype == "CNAME" else 3
            values = draw(st.lists(_values[rtype], min_size=1, max_size=max_values, unique=True))
            ttl = draw(st.integers(0, 2**31 - 1))
            records.append(
                {
                    "zone": "prop.example",
                    "name": owner,
                    "type": rtype,
                    "ttl": ttl,
                    "values": sorted(values),
                }
            )
    return records


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record_sets())
def test_rendered_zone_parses_back_exactly(records):
    text = render_zone("prop.example", records, serial=SERIAL)
    assert parse_zone(text, "prop.example") == _keyed(records)
    # the fast path and dnspython agree
    assert read_zone(text, "prop.example") == _dnspython_parse(text, "prop.example")


HAND_WRITTEN = r"""
$ORIGIN acme.example.
$TTL 300
@   IN SOA ns1.dns.example. admin\.ops.acme.example. (
        2026010101 ; serial
        7200 900 604800 60 )
    IN NS ns1.dns.example.
@ 300 in ns ns2.dns.example. ; second
@ 300 IN MX 10 mail
mail 300 IN A 192.0.2.1
mail 200 IN A 192.0.2.2
Mail.acme.example. 300 IN AAAA 2001:DB8::1
_dmarc IN TXT v=DMARC1\059\032p=none
long 1h IN TXT "a" "b" "\099"
srv 300 IN SRV 0 5 5060 sip.acme.example.
sub 300 IN NS ns.elsewhere.example.
"""


def test_hand_written_zone_parses_like_dnspython():
    data = read_zone(HAND_WRITTEN, "acme.example")
    assert data == _dnspython_parse(HAND_WRITTEN, "acme.example")
    assert data.serial == 2026010101
    assert data.soa == ("ns1.dns.example.", "admin\\.ops.acme.example.", 7200, 900, 604800, 60)
    assert data.nameservers == ["ns1.dns.example.", "ns2.dns.example."]
    recs = data.records
    assert recs[("@", "MX")]["values"] == ["10 mail.acme.example."]
    assert recs[("mail", "A")] == {
        "zone": "acme.example",
        "name": "mail",
        "type": "A",
        "ttl": 200,
        "values": ["192.0.2.1", "192.0.2.2"],
    }
    assert recs[("mail", "AAAA")]["values"] == ["2001:db8::1"]
    assert recs[("_dmarc", "TXT")]["values"] == ["v=DMARC1; p=none"]
    assert recs[("long", "TXT")] == {
        "zone": "acme.example",
        "name": "long",
        "type": "TXT",
        "ttl": 3600,
        "values": ["abc"],
    }
    assert recs[("srv", "SRV")]["values"] == ["0 5 5060 sip.acme.example."]
    assert recs[("sub", "NS")]["values"] == ["ns.elsewhere.example."]


@pytest.mark.parametrize(
    "text",
    [
        "@ 300 IN SOA ns. h. 1 2 3 4 5\n@ 300 IN NS ns.\n@ 300 IN MX 10 a.b.\n",
        "$ORIGIN acme.example.\n@ 300 IN SOA ns. h. 1 2 3 4 5\n@ 300 IN NS ns.\n"
        'MiXeD 300 IN TXT "x"\nmixed.ACME.example. 100 IN TXT "y"\n',
        "$ORIGIN acme.example.\n@ 300 IN SOA ns. h. 1 2 3 4 5\n@ 300 IN NS ns.\n"
        'a 300 IN TXT "\\195\\169" "\\"" "\\\\" "\\x"\n',
        "$ORIGIN acme.example.\n@ 300 IN SOA ns. h. 1 2 3 4 5\n@ 300 IN NS ns.\n"
        "@ 300 IN MX 0 .\nc 300 IN CNAME @\n",
    ],
)
def test_fast_path_agrees_with_dnspython(text):
    assert read_zone(text, "acme.example") == _dnspython_parse(text, "acme.example")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("garbage here\n", None),
        ("$ORIGIN acme.example.\n@ 300 IN NS ns.\n", "SOA"),
        (
            "$ORIGIN acme.example.\n@ 300 IN SOA ns. h. 1 2 3 4 5\n@ 300 IN NS ns.\n"
            'a 300 IN CNAME x.\na 300 IN TXT "t"\n',
            "CNAME",
        ),
        (
            "$ORIGIN acme.example.\n@ 300 IN SOA ns. h. 1 2 3 4 5\n@ 300 IN NS ns.\n"
            f'a 300 IN TXT "{"x" * 256}"\n',
            None,
        ),
        (
            "$ORIGIN acme.example.\n@ 300 IN SOA ns. h. 1 2 3 4 5\n@ 300 IN NS ns.\n"
            "a 300 IN A 300.1.1.1\n",
            None,
        ),
    ],
)
def test_invalid_zones_raise_zone_parse_error(text, match):
    with pytest.raises(ZoneParseError, match=match):
        parse_zone(text, "acme.example")


# -- serials and files -----------------------------------------------------------------------
def test_next_serial():
    day = date(2026, 11, 23)
    assert next_serial(None, day) == 2026112300
    assert next_serial(2025010105, day) == 2026112300
    assert next_serial(2026112300, day) == 2026112301
    assert next_serial(2026112399, day) == 2026112400  # still greater
    assert next_serial(2030010100, day) == 2030010101  # a serial from the future still grows
    assert next_serial(7, day) == 2026112300
    with pytest.raises(ValueError):
        next_serial(2**32 - 1, day)


@given(
    st.one_of(st.none(), st.integers(0, 4_000_000_000)),
    st.dates(date(2000, 1, 1), date(2200, 12, 31)),
)
def test_next_serial_always_grows(old, day):
    new = next_serial(old, day)
    assert old is None or new > old
    assert new >= int(day.strftime("%Y%m%d")) * 100


def test_write_atomic(tmp_path, monkeypatch):
    old_umask = os.umask(0o077)
    try:
        path = tmp_path / "a.example.zone"
        write_atomic(path, "one\n")
        write_atomic(path, "two\n")
    finally:
        os.umask(old_umask)
    assert path.read_text() == "two\n"
    assert (
        stat.S_IMODE(path.stat().st_mode) == 0o640
    )  # group-readable for the DNS server, whatever the umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.example.zone"]

    def boom(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="No space"):
        write_atomic(path, "three\n")
    assert path.read_text() == "two\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.example.zone"]


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(proc.stdout)


def test_stale_temp_files(tmp_path):
    dead = tmp_path / f".a.example.zone.{_dead_pid()}.k2j4h5g6.tmp"
    mine = tmp_path / f".b.example.zone.{os.getpid()}.abcdefgh.tmp"
    other = tmp_path / ".hidden.tmp"
    for p in (dead, mine, other):
        p.write_text("x")
    assert stale_temp_files(tmp_path) == [dead]


# -- the zonefile provider -------------------------------------------------------------------
class Day:
    """A settable clock for serials."""

    def __init__(self, day: date) -> None:
        self.day = day

    def __call__(self) -> date:
        return self.day


def _key(rec: dict) -> ResourceKey:
    return ResourceKey("dnsrecord", "acme", record_name(rec["zone"], rec["name"], rec["type"]))


def _creates(records) -> list[Change]:
    return [Change(Action.CREATE, _key(r), "dns:zones", None, r) for r in records]


def _provider(directory: Path, clock: Day | None = None, **kw) -> ZonefileProvider:
    kw.setdefault("nameservers", None)
    kw.setdefault("hostmaster", None)
    return ZonefileProvider("dns:zones", directory, today=clock or Day(date(2026, 11, 23)), **kw)


@pytest.fixture
def records(dkim_key) -> list[dict]:
    return _domain_records("acme.example", dkim_key, tracking=("track", "t.example"))


def test_provider_create_update_delete(tmp_path, records):
    clock = Day(date(2026, 11, 23))
    prov = _provider(tmp_path / "zones", clock)
    path = tmp_path / "zones" / "acme.example.zone"

    results = prov.apply_batch(_creates(records))
    assert [r.data for r in results] == records
    assert [r.change.key for r in results] == [_key(r) for r in records]
    assert parse_zone(path, "acme.example") == _keyed(records)
    assert read_zone(path, "acme.example").serial == 2026112300
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o750  # made by the provider
    checkzone("acme.example", path)

    spf = records[3]
    assert spf["name"] == "@" and spf["type"] == "TXT"
    new_spf = {**spf, "values": ["v=spf1 ip4:203.0.113.8 -all"]}
    res = prov.apply_batch([Change(Action.UPDATE, _key(spf), "dns:zones", spf, new_spf)])
    assert res[0].data == new_spf
    assert parse_zone(path, "acme.example")[("@", "TXT")] == new_spf
    assert read_zone(path, "acme.example").serial == 2026112301
    clock.day = date(2026, 11, 24)

    track = records[-1]
    assert track["type"] == "CNAME"
    res = prov.apply_batch([Change(Action.DELETE, _key(track), "dns:zones", track, None)])
    assert res[0].data is None
    assert ("track", "CNAME") not in parse_zone(path, "acme.example")
    assert read_zone(path, "acme.example").serial == 2026112400

    rest = [r for r in records if r is not track]
    deletes = [Change(Action.DELETE, _key(r), "dns:zones", r, None) for r in rest]
    assert all(r.data is None for r in prov.apply_batch(deletes))
    assert not path.exists()
    assert list((tmp_path / "zones").iterdir()) == []
    prov.apply_batch(deletes)  # deleting what is gone is fine


def test_reapplying_the_same_batch_leaves_the_file_alone(tmp_path, records):
    prov = _provider(tmp_path)
    batch = _creates(records)
    prov.apply_batch(batch)
    path = tmp_path / "acme.example.zone"
    before = path.read_bytes()
    st_before = path.stat()
    prov.apply_batch(batch)
    prov.apply_batch([Change(Action.UPDATE, c.key, c.provider, c.after, c.after) for c in batch])
    assert path.read_bytes() == before
    st_after = path.stat()
    assert (st_after.st_ino, st_after.st_mtime_ns) == (st_before.st_ino, st_before.st_mtime_ns)


def test_crash_after_write_before_state_commit_converges(tmp_path, records):
    batch = _creates(records)
    _provider(tmp_path).apply_batch(batch[:4])  # a first run died mid-way: part of the zone
    _provider(tmp_path).apply_batch(batch)  # ... then the whole batch, state never recorded
    path = tmp_path / "acme.example.zone"
    written = path.read_bytes()
    # a new process re-runs the same creates: all succeed, nothing changes on disk
    again = _provider(tmp_path)
    results = again.apply_batch(batch)
    assert [r.data for r in results] == records
    assert path.read_bytes() == written
    assert again.read([c.key for c in batch]) == {c.key: c.after for c in batch}


def test_read_sees_hand_edited_drift_and_keeps_foreign_records(tmp_path, records):
    prov = _provider(tmp_path)
    batch = _creates(records)
    prov.apply_batch(batch)
    keys = [c.key for c in batch]
    assert prov.read(keys) == {c.key: c.after for c in batch}

    path = tmp_path / "acme.example.zone"
    text = path.read_text()
    text = text.replace("v=DMARC1; p=none;", "v=DMARC1; p=reject;")
    text = "\n".join(line for line in text.splitlines() if "\tCNAME\t" not in line) + "\n"
    text += 'google-site-verification 300 IN TXT "token123"\n'
    path.write_text(text)

    live = prov.read([*keys, ResourceKey("dnsrecord", "acme", "other.example/@/MX")])
    dmarc_key = _key(records[5])
    assert live[dmarc_key]["values"] == ["v=DMARC1; p=reject; rua=mailto:dmarc@acme.example"]
    assert _key(records[-1]) not in live  # the CNAME was removed by hand
    assert ResourceKey("dnsrecord", "acme", "other.example/@/MX") not in live
    assert len(live) == len(records) - 1

    # the next apply fixes the managed records and keeps the hand-added one
    prov.apply_batch(
        [
            Change(Action.UPDATE, dmarc_key, "dns:zones", live[dmarc_key], records[5]),
            *_creates([records[-1]]),
        ]
    )
    parsed = parse_zone(path, "acme.example")
    assert parsed[("google-site-verification", "TXT")]["values"] == ["token123"]
    assert {k: v for k, v in parsed.items() if k[0] != "google-site-verification"} == _keyed(
        records
    )
    checkzone("acme.example", path)


def test_read_of_missing_zone_and_non_record_keys(tmp_path, records):
    prov = _provider(tmp_path / "nowhere")
    assert prov.read([_key(records[0]), ResourceKey("domain", "acme", "acme.example")]) == {}


def test_computed_value_is_refused_before_writing(tmp_path, records):
    pending = {**records[4], "values": [COMPUTED]}
    with pytest.raises(ProviderError, match="not known yet"):
        _provider(tmp_path).apply_batch(_creates([records[0], pending]))
    assert list(tmp_path.iterdir()) == []


def test_unparsable_zone_file_is_not_overwritten(tmp_path, records):
    path = tmp_path / "acme.example.zone"
    path.write_text("this is not a zone\n")
    prov = _provider(tmp_path)
    with pytest.raises(ProviderError) as info:
        prov.apply_batch(_creates(records))
    assert str(path) in str(info.value) and "named-checkzone" in str(info.value)
    assert path.read_text() == "this is not a zone\n"
    with pytest.raises(ProviderError, match="cannot be parsed"):
        prov.read([_key(records[0])])


def test_unwritable_directory_is_a_provider_error(tmp_path, records):
    blocker = tmp_path / "zones"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(ProviderError) as info:
        _provider(blocker).apply_batch(_creates(records))
    assert "zones" in str(info.value) and "may read and write" in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason=NOT_APPLICABLE + "root ignores file permissions")
def test_permission_denied_is_a_provider_error(tmp_path, records):
    zones = tmp_path / "zones"
    zones.mkdir()
    zones.chmod(0o500)
    try:
        with pytest.raises(ProviderError, match="Permission denied"):
            _provider(zones).apply_batch(_creates(records))
    finally:
        zones.chmod(0o700)


def test_nameservers_and_hostmaster_from_config(tmp_path, records):
    prov = _provider(
        tmp_path,
        nameservers=["ns1.dns.example", "ns2.dns.example"],
        hostmaster="dns@acme.example",
        default_ttl=600,
    )
    prov.apply_batch(_creates(records))
    data = read_zone(tmp_path / "acme.example.zone", "acme.example")
    assert data.nameservers == ["ns1.dns.example.", "ns2.dns.example."]
    assert data.soa[:2] == ("ns1.dns.example.", "dns.acme.example.")
    # changing the nameservers rewrites the zone (with a new serial) even with the same records
    other = _provider(tmp_path, nameservers=["ns3.dns.example"])
    other.apply_batch(_creates(records[:1]))
    data2 = read_zone(tmp_path / "acme.example.zone", "acme.example")
    assert data2.nameservers == ["ns3.dns.example."] and data2.serial == data.serial + 1


def test_batch_key_is_the_zone(records):
    prov = _provider(Path("/nonexistent"))
    keys = {prov.batch_key(c) for c in _creates(records)}
    assert keys == {("zone", "acme.example")}


def test_one_batch_spanning_two_zones_and_parallel_batches(tmp_path, dkim_key):
    prov = _provider(tmp_path)
    zones = [f"client{i:03d}.example" for i in range(24)]
    per_zone = {z: _domain_records(z, dkim_key, mail_host="mx.agency.example") for z in zones}
    prov.apply_batch(_creates(per_zone[zones[0]] + per_zone[zones[1]]))
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda z: prov.apply_batch(_creates(per_zone[z])), zones))
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{z}.zone" for z in zones]
    for z in zones:
        assert parse_zone(tmp_path / f"{z}.zone", z) == _keyed(per_zone[z])


def test_stale_temp_files_are_swept_on_first_apply(tmp_path, records):
    stale = tmp_path / f".acme.example.zone.{_dead_pid()}.abcdefgh.tmp"
    stale.write_text("half a zone")
    _provider(tmp_path).apply_batch(_creates(records))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acme.example.zone"]


def test_zone_parse_types_in_file_are_kept_verbatim(tmp_path, records):
    prov = _provider(tmp_path)
    prov.apply_batch(_creates(records))
    path = tmp_path / "acme.example.zone"
    path.write_text(
        path.read_text() + "srv 300 IN SRV 0 5 5060 sip.acme.example.\n"
        '@ 300 IN CAA 0 issue "letsencrypt.org"\n'
    )
    prov.apply_batch([Change(Action.DELETE, _key(records[-1]), "dns:zones", records[-1], None)])
    zone = dns.zone.from_file(str(path), origin="acme.example", relativize=False)
    assert zone.get_rdataset("srv.acme.example.", dns.rdatatype.SRV) is not None
    (caa,) = list(zone.get_rdataset("acme.example.", dns.rdatatype.CAA))
    assert caa.value == b"letsencrypt.org"
    checkzone("acme.example", path)


def test_permission_denied_on_write_and_read_names_the_file(tmp_path, records, monkeypatch):
    import penguinctl.providers.dns.zonefile as provider_module

    prov = _provider(tmp_path)
    prov.apply_batch(_creates(records[:2]))
    path = tmp_path / "acme.example.zone"

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(provider_module, "write_atomic", denied)
    with pytest.raises(ProviderError) as info:
        prov.apply_batch(_creates(records))
    assert f"cannot write {path}: Permission denied" in str(info.value)
    assert "may read and write" in str(info.value)

    path.unlink()
    path.mkdir()  # something that cannot be read as a file
    with pytest.raises(ProviderError, match=r"cannot read .*acme.example.zone"):
        _provider(tmp_path).read([_key(records[0])])


def test_invalid_record_values_are_refused_before_writing(tmp_path, records):
    prov = _provider(tmp_path)
    prov.apply_batch(_creates(records))
    path = tmp_path / "acme.example.zone"
    before = path.read_bytes()
    bad_a = {"zone": "acme.example", "name": "x", "type": "A", "ttl": 60, "values": ["999.1.1.1"]}
    with pytest.raises(ProviderError, match="not a valid zone"):
        prov.apply_batch(_creates([bad_a]))
    # a CNAME where other data already lives (the A record of the mail host)
    clash = {**bad_a, "name": "mail", "type": "CNAME", "values": ["elsewhere.example."]}
    with pytest.raises(ProviderError, match="CNAME"):
        prov.apply_batch(_creates([clash]))
    assert path.read_bytes() == before
