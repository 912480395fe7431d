"""The record set of a sending domain, TXT chunking and SPF lookup counting (pure functions)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from penguinctl.dns.records import (
    DomainDnsInput,
    build_records,
    dmarc_value,
    mta_sts_id,
    mta_sts_policy,
    record_name,
    spf_lookup_count,
    split_record_name,
    txt_chunks,
)
from penguinctl.resources import COMPUTED

KEY = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" + "x" * 342 + "IDAQAB"


def _full_input(**over) -> DomainDnsInput:
    base = {
        "domain": "acme.example",
        "mail_host": "mail.acme.example",
        "sending_ips": ["2001:DB8:0::7", "203.0.113.7"],
        "dkim": [("pm202611", KEY)],
        "dmarc_rua": ["dmarc@acme.example", "mailto:reports@dmarc.example"],
        "spf_include": ["spf.penguinctl.example", "_spf.google.com"],
        "tracking": ("track", "track.penguinctl.example"),
        "mta_sts": ("testing", 604800, "mta-sts.penguinctl.example"),
        "tls_rpt_rua": "tlsrpt@acme.example",
        "ttl": 1800,
    }
    base.update(over)
    return DomainDnsInput(**base)


def test_full_record_set_exact():
    policy = "version: STSv1\nmode: testing\nmx: mail.acme.example\nmax_age: 604800\n"
    sts_id = mta_sts_id(policy)
    assert len(sts_id) == 12 and int(sts_id, 16) >= 0

    def rec(name, rtype, *values):
        return {
            "zone": "acme.example",
            "name": name,
            "type": rtype,
            "ttl": 1800,
            "values": list(values),
        }

    assert build_records(_full_input()) == [
        rec("@", "MX", "10 mail.acme.example."),
        rec("mail", "A", "203.0.113.7"),
        rec("mail", "AAAA", "2001:db8::7"),
        rec(
            "@",
            "TXT",
            "v=spf1 ip4:203.0.113.7 ip6:2001:db8::7 include:spf.penguinctl.example "
            "include:_spf.google.com ~all",
        ),
        rec("pm202611._domainkey", "TXT", f"v=DKIM1; k=rsa; p={KEY}"),
        rec(
            "_dmarc",
            "TXT",
            "v=DMARC1; p=none; rua=mailto:dmarc@acme.example,mailto:reports@dmarc.example",
        ),
        rec("track", "CNAME", "track.penguinctl.example."),
        rec("_mta-sts", "TXT", f"v=STSv1; id={sts_id}"),
        rec("mta-sts", "CNAME", "mta-sts.penguinctl.example."),
        rec("_smtp._tls", "TXT", "v=TLSRPTv1; rua=mailto:tlsrpt@acme.example"),
    ]


def test_minimal_record_set_mail_host_outside_zone():
    inp = DomainDnsInput(
        domain="client1.example",
        mail_host="mx.agency-mail.example",
        sending_ips=["192.0.2.10"],
        dkim=[("pm202611", COMPUTED)],
        dmarc_rua=["dmarc@agency-mail.example"],
    )
    recs = build_records(inp)
    assert [(r["name"], r["type"]) for r in recs] == [
        ("@", "MX"),
        ("@", "TXT"),
        ("pm202611._domainkey", "TXT"),
        ("_dmarc", "TXT"),
    ]
    by = {(r["name"], r["type"]): r["values"] for r in recs}
    assert by[("@", "MX")] == ["10 mx.agency-mail.example."]
    assert by[("@", "TXT")] == ["v=spf1 ip4:192.0.2.10 ~all"]
    assert by[("pm202611._domainkey", "TXT")] == [COMPUTED]
    assert all(r["ttl"] == 3600 and r["zone"] == "client1.example" for r in recs)


def test_mail_host_at_apex_and_several_ips_per_family():
    inp = DomainDnsInput(
        domain="acme.example",
        mail_host="ACME.example.",
        sending_ips=["198.51.100.2", "198.51.100.1", "198.51.100.2"],
    )
    by = {(r["name"], r["type"]): r["values"] for r in build_records(inp)}
    assert by[("@", "A")] == ["198.51.100.1", "198.51.100.2"]
    assert ("@", "AAAA") not in by
    assert by[("@", "MX")] == ["10 acme.example."]
    assert by[("@", "TXT")] == ["v=spf1 ip4:198.51.100.1 ip4:198.51.100.2 ~all"]
    assert by[("_dmarc", "TXT")] == ["v=DMARC1; p=none"]


def test_dmarc_variants():
    assert dmarc_value("quarantine", ["a@x.example"], 10) == (
        "v=DMARC1; p=quarantine; rua=mailto:a@x.example; pct=10"
    )
    assert dmarc_value("reject", ["mailto:a@x.example", "a@x.example"]) == (
        "v=DMARC1; p=reject; rua=mailto:a@x.example"
    )
    with pytest.raises(ValueError):
        dmarc_value("monitor", [])
    with pytest.raises(ValueError):
        dmarc_value("none", [], 101)


def test_tls_rpt_https_and_no_mta_sts_host():
    recs = build_records(
        _full_input(
            tls_rpt_rua="https://reports.example/tlsrpt",
            mta_sts=("enforce", 86400, None),
        )
    )
    by = {(r["name"], r["type"]): r["values"] for r in recs}
    assert by[("_smtp._tls", "TXT")] == ["v=TLSRPTv1; rua=https://reports.example/tlsrpt"]
    assert ("mta-sts", "CNAME") not in by
    assert by[("_mta-sts", "TXT")][0].startswith("v=STSv1; id=")


def test_mta_sts_id_changes_only_with_the_policy():
    a = mta_sts_policy("testing", 604800, "mail.acme.example")
    assert a == "version: STSv1\nmode: testing\nmx: mail.acme.example\nmax_age: 604800\n"
    assert mta_sts_id(a) == mta_sts_id(mta_sts_policy("testing", 604800, "mail.acme.example."))
    assert mta_sts_id(a) != mta_sts_id(mta_sts_policy("enforce", 604800, "mail.acme.example"))
    with pytest.raises(ValueError):
        mta_sts_policy("strict", 1, "mail.acme.example")


def test_tracking_host_forms():
    by = {
        (r["name"], r["type"]): r["values"]
        for r in build_records(_full_input(tracking=("links.acme.example.", "t.example")))
    }
    assert by[("links", "CNAME")] == ["t.example."]
    with pytest.raises(ValueError, match="apex"):
        build_records(_full_input(tracking=("@", "t.example")))


def test_spf_all_and_lookup_limit():
    recs = build_records(_full_input(spf_all="-all", spf_include=[]))
    assert recs[3]["values"] == ["v=spf1 ip4:203.0.113.7 ip6:2001:db8::7 -all"]
    with pytest.raises(ValueError, match="SPF"):
        build_records(_full_input(spf_all="+all"))
    with pytest.raises(ValueError, match="11 DNS lookups"):
        build_records(_full_input(spf_include=[f"s{i}.example" for i in range(11)]))
    # ten is still fine
    build_records(_full_input(spf_include=[f"s{i}.example" for i in range(10)]))


@pytest.mark.parametrize(
    ("spf", "count"),
    [
        ("v=spf1 ip4:192.0.2.1 ip6:2001:db8::1 ~all", 0),
        ("v=spf1 a mx ptr ~all", 3),
        (
            "v=spf1 +a:mail.example/24 -mx:x.example ?include:a.example "
            "~exists:%{i}.x.example -all",
            4,
        ),
        ("v=spf1 include:_spf.google.com redirect=_spf.example", 2),
        ("v=spf1 IP4:1.2.3.4 INCLUDE:A.EXAMPLE all", 1),
        ("v=spf1 exp=explain.example ~all", 0),
        ("v=spf1 ~all", 0),
    ],
)
def test_spf_lookup_count(spf, count):
    assert spf_lookup_count(spf) == count


def test_record_name_round_trip():
    name = record_name("acme.example", "pm202611._domainkey", "TXT")
    assert name == "acme.example/pm202611._domainkey/TXT"
    assert split_record_name(name) == ("acme.example", "pm202611._domainkey", "TXT")


def test_txt_chunks_ascii():
    assert txt_chunks("") == [""]
    assert txt_chunks("a" * 255) == ["a" * 255]
    assert [len(c) for c in txt_chunks("a" * 256)] == [255, 1]
    assert [len(c) for c in txt_chunks("b" * 600)] == [255, 255, 90]


def test_txt_chunks_never_split_a_character():
    value = "a" * 254 + "é" + "z"  # é is two octets: it must start the second chunk
    assert txt_chunks(value) == ["a" * 254, "éz"]
    value = "€" * 100  # three octets each: 85 per chunk
    assert [len(c) for c in txt_chunks(value)] == [85, 15]


@given(st.text(max_size=1200))
def test_txt_chunks_property(value):
    chunks = txt_chunks(value)
    assert "".join(chunks) == value
    assert all(len(c.encode()) <= 255 for c in chunks)
    if len(value.encode()) > 255:
        assert all(c for c in chunks)
        assert all(len(c.encode()) > 251 for c in chunks[:-1])  # as full as UTF-8 allows
