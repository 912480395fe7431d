"""Standards checks of SPF, DMARC and DKIM key records (``penguinctl.dns.lint``; pure)."""

from __future__ import annotations

import base64
import ipaddress
import secrets
from collections.abc import Callable, Sequence

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from penguinctl.dkim import dkim_txt_value, generate_rsa
from penguinctl.dns import lint
from penguinctl.dns.lint import (
    DmarcRecord,
    LintProblem,
    RecordSyntaxError,
    SpfMechanism,
    SpfResult,
    check_dkim_key,
    check_dmarc,
    check_spf,
    dkim_public_key,
    parse_dkim_key,
    parse_dmarc,
    parse_spf,
)
from penguinctl.dns.records import dmarc_value, spf_value


def codes(problems: Sequence[LintProblem]) -> list[str]:
    return [p.code for p in problems]


def errors(problems: Sequence[LintProblem]) -> list[str]:
    return [p.code for p in problems if p.level == "error"]


def warnings(problems: Sequence[LintProblem]) -> list[str]:
    return [p.code for p in problems if p.level == "warning"]


class FakeDns:
    """A TXT (and MX / address) lookup table; names missing from it have no records."""

    def __init__(
        self,
        txt: dict[str, Sequence[str]] | None = None,
        mx: dict[str, Sequence[str]] | None = None,
        a: dict[str, Sequence[str]] | None = None,
        failing: Sequence[str] = (),
    ) -> None:
        self.tables = {"txt": txt or {}, "mx": mx or {}, "a": a or {}}
        self.failing = set(failing)
        self.calls: list[tuple[str, str]] = []

    def _lookup(self, kind: str) -> Callable[[str], list[str]]:
        def lookup(name: str) -> list[str]:
            self.calls.append((kind, name))
            if name in self.failing:
                raise LookupError(f"{kind.upper()} lookup of {name} failed: SERVFAIL")
            return list(self.tables[kind].get(name, []))

        return lookup

    @property
    def txt(self) -> Callable[[str], list[str]]:
        return self._lookup("txt")

    @property
    def mx(self) -> Callable[[str], list[str]]:
        return self._lookup("mx")

    @property
    def a(self) -> Callable[[str], list[str]]:
        return self._lookup("a")


# Google Workspace's published SPF tree (shape as published; the ranges are abbreviated).
GOOGLE = {
    "_spf.google.com": [
        "v=spf1 include:_netblocks.google.com include:_netblocks2.google.com "
        "include:_netblocks3.google.com ~all",
        "some-other-verification=abc",
    ],
    "_netblocks.google.com": [
        "v=spf1 ip4:35.190.247.0/24 ip4:64.233.160.0/19 ip4:66.102.0.0/20 "
        "ip4:66.249.80.0/20 ip4:72.14.192.0/18 ip4:74.125.0.0/16 ip4:108.177.8.0/21 "
        "ip4:173.194.0.0/16 ip4:209.85.128.0/17 ip4:216.58.192.0/19 ip4:216.239.32.0/19 ~all"
    ],
    "_netblocks2.google.com": [
        "v=spf1 ip6:2001:4860:4000::/36 ip6:2404:6800:4000::/36 ip6:2607:f8b0:4000::/36 "
        "ip6:2800:3f0:4000::/36 ip6:2a00:1450:4000::/36 ip6:2c0f:fb50:4000::/36 ~all"
    ],
    "_netblocks3.google.com": [
        "v=spf1 ip4:172.217.0.0/19 ip4:172.217.32.0/20 ip4:172.217.128.0/19 "
        "ip4:172.253.56.0/21 ip4:172.253.112.0/20 ip4:108.177.96.0/19 ip4:35.191.0.0/16 "
        "ip4:130.211.0.0/22 ~all"
    ],
}


# -- LintProblem -----------------------------------------------------------------------------
def test_lint_problem_is_frozen_and_prints_one_line():
    p = LintProblem("error", "spf-loop", "include:a.example loops back")
    with pytest.raises(AttributeError):
        p.level = "warning"  # type: ignore[misc]
    assert str(p) == "error: include:a.example loops back [spf-loop]"
    assert hash(p) == hash(LintProblem("error", "spf-loop", "include:a.example loops back"))


def test_record_syntax_error_is_a_value_error_with_all_problems():
    with pytest.raises(RecordSyntaxError) as info:
        parse_spf("v=spf1 ip4:300.1.1.1 a:nodot -all")
    exc = info.value
    assert isinstance(exc, ValueError)
    assert exc.code == "spf-bad-ip"
    assert codes(exc.problems) == ["spf-bad-ip", "spf-bad-domain"]
    assert "300.1.1.1" in str(exc)


# -- SPF syntax ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "record",
    [
        "v=spf1 -all",
        "v=spf1 ip4:203.0.113.7 ~all",
        "v=spf1 ip4:203.0.113.0/24 ip6:2001:db8::/32 ip6:2001:db8::7 -all",
        "v=spf1 ip4:0.0.0.0/32 ip6:::ffff:192.0.2.1/128 ?all",
        "v=spf1 a mx -all",
        "v=spf1 a:mail.example.com mx:example.com/24//64 a/28 mx//64 -all",
        "V=SPF1 IP4:192.0.2.1 INCLUDE:_SPF.EXAMPLE.COM -ALL",
        "v=spf1 +a +mx ~ip4:192.0.2.1 ?include:example.net -all",
        "v=spf1 include:_spf.google.com ~all",
        "v=spf1 include:spf.protection.outlook.com -all",
        "v=spf1 include:_spf.mailu.io include:_spf.sendgrid.net -all",
        "v=spf1 include:example.com. -all",
        "v=spf1 redirect=_spf.example.com",
        "v=spf1 exists:%{i}._spf.example.com -all",
        "v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d} -all",
        "v=spf1 include:%{d2}._spf.example.net exists:%{I}.%{V}.%{d}. -all",
        "v=spf1 exists:%{s}.%%.%_.%-.example.com -all",
        "v=spf1 -all exp=explain._spf.%{d}",
        "v=spf1 ip4:192.0.2.1 -all moo=cow.%{d}",
        "v=spf1",
        "v=spf1 ",
        "v=spf1   ip4:192.0.2.1    -all   ",
    ],
)
def test_valid_spf_records_parse(record):
    parse_spf(record)
    assert not errors(check_spf(record))


def test_parse_spf_structure():
    rec = parse_spf(
        "v=spf1 ip4:192.0.2.0/24 -ip6:2001:DB8::/48 a:mail.example.com/28//64 mx "
        "include:_spf.example.net ~all redirect=x.example exp=why.example"
    )
    ip4, ip6, a, mx, inc, all_ = rec.mechanisms
    assert ip4 == SpfMechanism(
        "+",
        "ip4",
        network=ipaddress.ip_network("192.0.2.0/24"),
        cidr4=24,
        text="ip4:192.0.2.0/24",
    )
    assert ip6.qualifier == "-" and ip6.network == ipaddress.ip_network("2001:db8::/48")
    assert ip6.cidr6 == 48 and ip6.cidr4 is None
    assert (a.domain, a.cidr4, a.cidr6) == ("mail.example.com", 28, 64)
    assert (mx.domain, mx.cidr4, mx.cidr6) == (None, None, None)
    assert inc.domain == "_spf.example.net" and inc.costs_lookup
    assert all_.qualifier == "~" and not all_.costs_lookup
    assert rec.all is all_
    assert (rec.redirect, rec.exp) == ("x.example", "why.example")
    assert rec.effective_redirect is None  # all wins over redirect
    assert rec.own_lookups == 3  # a, mx, include; redirect is ignored


def test_parse_spf_ip4_host_bits_and_default_prefix():
    rec = parse_spf("v=spf1 ip4:192.0.2.77/24 ip4:192.0.2.1 -all")
    assert rec.mechanisms[0].network == ipaddress.ip_network("192.0.2.0/24")
    assert rec.mechanisms[1].network == ipaddress.ip_network("192.0.2.1/32")
    assert rec.mechanisms[1].cidr4 is None


def test_parse_spf_unknown_modifier_is_kept():
    rec = parse_spf("v=spf1 -all Moo=cow ra=x")
    assert rec.modifiers == (("Moo", "cow"), ("ra", "x"))
    assert warnings(check_spf("v=spf1 -all moo=cow")) == ["spf-unknown-modifier"]


@pytest.mark.parametrize(
    ("record", "code"),
    [
        ("", "spf-not-spf"),
        ("spf1 -all", "spf-not-spf"),
        ("v=spf2 -all", "spf-not-spf"),
        ("v=spf10 -all", "spf-not-spf"),
        ("v=spf1-all", "spf-not-spf"),
        (" v=spf1 -all", "spf-not-spf"),
        ("v=spf1\t-all", "spf-not-spf"),
        ("v=DMARC1; p=none", "spf-not-spf"),
        ("v=spf1 ip4:192.0.2.1/33 -all", "spf-bad-cidr"),
        ("v=spf1 ip4:192.0.2.1/024 -all", "spf-bad-cidr"),
        ("v=spf1 ip4:192.0.2.1/ -all", "spf-bad-cidr"),
        ("v=spf1 ip4:192.0.2.1/x -all", "spf-bad-cidr"),
        ("v=spf1 ip4:192.0.2.1//32 -all", "spf-bad-cidr"),
        ("v=spf1 ip6:2001:db8::/129 -all", "spf-bad-cidr"),
        ("v=spf1 a/33 -all", "spf-bad-cidr"),
        ("v=spf1 mx//129 -all", "spf-bad-cidr"),
        ("v=spf1 a:example.com/ -all", "spf-bad-cidr"),
        ("v=spf1 a:example.com/24/64 -all", "spf-bad-cidr"),
        ("v=spf1 mx:example.com/-1 -all", "spf-bad-cidr"),
        ("v=spf1 ip4:192.0.2.256 -all", "spf-bad-ip"),
        ("v=spf1 ip4:192.0.2 -all", "spf-bad-ip"),
        ("v=spf1 ip4:01.2.3.4 -all", "spf-bad-ip"),
        ("v=spf1 ip4:2001:db8::1 -all", "spf-bad-ip"),
        ("v=spf1 ip6:192.0.2.1 -all", "spf-bad-ip"),
        ("v=spf1 ip6:fe80::1%eth0 -all", "spf-bad-ip"),
        ("v=spf1 ip6:2001:db8:::1 -all", "spf-bad-ip"),
        ("v=spf1 ip4 -all", "spf-bad-ip"),
        ("v=spf1 ip4: -all", "spf-bad-ip"),
        ("v=spf1 include -all", "spf-missing-domain"),
        ("v=spf1 exists -all", "spf-missing-domain"),
        ("v=spf1 include/24 -all", "spf-bad-argument"),
        ("v=spf1 all:example.com", "spf-bad-argument"),
        ("v=spf1 -all/0", "spf-bad-argument"),
        ("v=spf1 ptr/24 -all", "spf-bad-argument"),
        ("v=spf1 a-b -all", "spf-bad-argument"),
        ("v=spf1 include: -all", "spf-bad-domain"),
        ("v=spf1 include:localhost -all", "spf-bad-domain"),
        ("v=spf1 include:example..com -all", "spf-bad-domain"),
        ("v=spf1 include:.example.com -all", "spf-bad-domain"),
        ("v=spf1 a:192.0.2.1 -all", "spf-bad-domain"),
        ("v=spf1 include:example.com/24 -all", "spf-bad-domain"),
        ("v=spf1 include:example.-com -all", "spf-bad-domain"),
        ("v=spf1 include:" + "a" * 64 + ".example.com -all", "spf-bad-domain"),
        ("v=spf1 include:" + ".".join(["abcdefgh"] * 30) + ".com -all", "spf-bad-domain"),
        ("v=spf1 redirect=", "spf-bad-domain"),
        ("v=spf1 redirect=nodot", "spf-bad-domain"),
        ("v=spf1 exists:%{x}.example.com -all", "spf-bad-macro"),
        ("v=spf1 exists:%{c}.example.com -all", "spf-bad-macro"),
        ("v=spf1 exists:%{r}.example.com -all", "spf-bad-macro"),
        ("v=spf1 exists:%{t}.example.com -all", "spf-bad-macro"),
        ("v=spf1 exists:%{d0}.example.com -all", "spf-bad-macro"),
        ("v=spf1 exists:%{i.example.com -all", "spf-bad-macro"),
        ("v=spf1 exists:%{}.example.com -all", "spf-bad-macro"),
        ("v=spf1 exists:%{ir:}.example.com -all", "spf-bad-macro"),
        ("v=spf1 exists:%i.example.com -all", "spf-bad-macro"),
        ("v=spf1 include:example.com% -all", "spf-bad-macro"),
        ("v=spf1 -all moo=%{x}", "spf-bad-macro"),
        ("v=spf1 ipv4:192.0.2.1 -all", "spf-bad-term"),
        ("v=spf1 ip:192.0.2.1 -all", "spf-bad-term"),
        ("v=spf1 ~al", "spf-bad-term"),
        ("v=spf1 +-all", "spf-bad-term"),
        ("v=spf1 -redirect=example.com", "spf-bad-term"),
        ("v=spf1 :example.com -all", "spf-bad-term"),
        ("v=spf1 =x -all", "spf-bad-term"),
        ("v=spf1 ip4:192.0.2.1\t-all", "spf-bad-term"),
        ("v=spf1 include:exämple.com -all", "spf-bad-term"),
        ("v=spf1 redirect=a.example redirect=b.example", "spf-duplicate-modifier"),
        ("v=spf1 -all exp=a.example EXP=b.example", "spf-duplicate-modifier"),
    ],
)
def test_invalid_spf(record, code):
    problems = check_spf(record)
    assert code in errors(problems)
    with pytest.raises(RecordSyntaxError) as info:
        parse_spf(record)
    assert code in codes(info.value.problems)


def test_not_spf_returns_only_that_problem():
    result = check_spf("hello world")
    assert codes(result) == ["spf-not-spf"]
    assert result.lookups == 0 and result.exact


def test_spf_all_problems_reported_together():
    result = check_spf("v=spf1 ip4:1.2.3.4/33 a:foo mx//129 ptr include:bar.com +all")
    assert codes(result) == [
        "spf-bad-cidr",
        "spf-bad-domain",
        "spf-bad-cidr",
        "spf-ptr",
        "spf-pass-all",
    ]
    assert result.lookups == 2  # ptr and include (the broken terms are not evaluated)
    assert not result.exact  # include not followed


def test_spf_macro_p_and_ptr_are_warnings():
    assert warnings(check_spf("v=spf1 ptr -all")) == ["spf-ptr"]
    assert warnings(check_spf("v=spf1 ptr:example.com -all")) == ["spf-ptr"]
    assert warnings(check_spf("v=spf1 exists:%{p}.example.com -all")) == ["spf-ptr"]
    assert parse_spf("v=spf1 ptr -all").mechanisms[0].costs_lookup


def test_spf_pass_all_is_an_error_but_valid_syntax():
    assert errors(check_spf("v=spf1 +all")) == ["spf-pass-all"]
    assert errors(check_spf("v=spf1 all")) == ["spf-pass-all"]
    assert parse_spf("v=spf1 all").all is not None
    assert not check_spf("v=spf1 ?all") and not check_spf("v=spf1 ~all")


def test_spf_terms_after_all_are_ignored_and_not_counted():
    result = check_spf("v=spf1 a -all include:a.example mx ip4:192.0.2.1")
    assert warnings(result) == ["spf-terms-after-all"]
    assert "3 mechanism(s) after '-all'" in result[0].message
    assert result.lookups == 1 and result.exact


def test_spf_redirect_with_all_is_ignored():
    result = check_spf("v=spf1 redirect=_spf.example.com -all")
    assert warnings(result) == ["spf-redirect-ignored"]
    assert result.lookups == 0 and result.exact
    result = check_spf("v=spf1 redirect=_spf.example.com")
    assert result.lookups == 1 and not result.exact
    assert not result


def test_spf_modifier_spelled_like_a_mechanism():
    result = check_spf("v=spf1 include=_spf.example.com -all")
    assert errors(result) == ["spf-mechanism-as-modifier"]
    assert "include:_spf.example.com" in result[0].message
    parse_spf("v=spf1 include=_spf.example.com -all")  # valid syntax, ignored by receivers


def test_spf_two_records_merged():
    result = check_spf("v=spf1 ip4:192.0.2.1 ~all v=spf1 include:_spf.google.com ~all")
    assert "spf-merged-records" in errors(result)
    assert "spf-terms-after-all" in warnings(result)


def test_spf_no_all_warning_only_at_top_level():
    assert warnings(check_spf("v=spf1 ip4:192.0.2.1")) == ["spf-no-all"]
    dns = FakeDns({"inc.example": ["v=spf1 ip4:192.0.2.9"]})
    assert not check_spf("v=spf1 include:inc.example -all", dns.txt)


def test_spf_broad_networks_warn_only_when_they_authorise():
    assert warnings(check_spf("v=spf1 ip4:0.0.0.0/0 -all")) == ["spf-broad-network"]
    assert warnings(check_spf("v=spf1 ip6:::/0 -all")) == ["spf-broad-network"]
    assert warnings(check_spf("v=spf1 a/0 -all")) == ["spf-broad-network"]
    assert warnings(check_spf("v=spf1 mx//8 -all")) == ["spf-broad-network"]
    assert not check_spf("v=spf1 -ip4:0.0.0.0/0 ~all")
    assert not check_spf("v=spf1 ip4:10.0.0.0/8 ip6:2001:db8::/16 -all")


def test_spf_long_record_warns_over_450_octets():
    ips = " ".join(f"ip4:192.0.2.{i}" for i in range(1, 40))
    record = f"v=spf1 {ips} -all"
    assert len(record) > 450
    result = check_spf(record)
    assert warnings(result) == ["spf-record-long"]
    short = "v=spf1 " + " ".join(f"ip4:192.0.2.{i}" for i in range(1, 20)) + " -all"
    assert 255 < len(short) <= 450
    assert not check_spf(short)  # over 255 is fine: several strings in one RR


def test_penguinctl_generated_spf_is_clean():
    value = spf_value(["203.0.113.7", "2001:db8::7"], ["spf.penguinctl.example"], "~all")
    assert not parse_spf(value).redirect
    dns = FakeDns({"spf.penguinctl.example": ["v=spf1 ip4:198.51.100.0/24 -all"]})
    result = check_spf(value, dns.txt, domain="acme.example")
    assert result == [] and result.lookups == 1 and result.exact
    assert result.summary == "1/10 DNS lookups"


# -- SPF lookups -----------------------------------------------------------------------------
def test_google_include_counts_four_lookups():
    dns = FakeDns(GOOGLE)
    result = check_spf("v=spf1 include:_spf.google.com ~all", lookup_txt=dns.txt)
    assert isinstance(result, SpfResult) and isinstance(result, list)
    assert result == []
    assert (result.lookups, result.void_lookups, result.exact) == (4, 0, True)
    assert result.summary == "4/10 DNS lookups"
    assert [name for _, name in dns.calls] == [
        "_spf.google.com",
        "_netblocks.google.com",
        "_netblocks2.google.com",
        "_netblocks3.google.com",
    ]


def test_without_lookup_txt_the_count_is_a_lower_bound():
    result = check_spf("v=spf1 include:_spf.google.com ~all")
    assert result == [] and result.lookups == 1 and not result.exact
    assert result.summary == "at least 1/10 DNS lookups"
    # no include/redirect: the top-level count is the whole count
    result = check_spf("v=spf1 a mx ptr:example.com exists:%{i}.example.com -all")
    assert result.lookups == 4 and result.exact


def test_top_level_over_the_limit_without_lookups():
    record = "v=spf1 " + " ".join(f"a:h{i}.example.com" for i in range(11)) + " -all"
    result = check_spf(record)
    assert errors(result) == ["spf-too-many-lookups"]
    assert result.lookups == 11 and result.exact
    assert "11 DNS lookups" in result[0].message
    includes = "v=spf1 " + " ".join(f"include:s{i}.example.com" for i in range(11)) + " -all"
    result = check_spf(includes)
    assert "at least 11 DNS lookups" in result[0].message


def test_twelve_lookup_chain():
    dns = FakeDns(
        {
            "_spf.acme.example": [
                "v=spf1 include:esp1.example include:esp2.example redirect=more.example"
            ],
            "esp1.example": ["v=spf1 a mx include:esp1b.example -all"],
            "esp1b.example": ["v=spf1 ip4:192.0.2.0/24 exists:%{i}.rbl.example -all"],
            "esp2.example": ["v=spf1 include:esp2b.example ~all"],
            "esp2b.example": ["v=spf1 ptr:esp2.example ~all"],
            "more.example": ["v=spf1 mx:more.example a:x.more.example ~all"],
        }
    )
    result = check_spf(
        "v=spf1 ip4:203.0.113.7 include:_spf.acme.example ~all", dns.txt, domain="acme.example"
    )
    # include _spf(1) + esp1(1) + a,mx,esp1b(3) + exists(1) + esp2(1) + esp2b(1) + ptr(1)
    # + redirect(1) + mx,a(2) = 12
    assert result.lookups == 12 and result.exact
    assert errors(result) == ["spf-too-many-lookups"]
    assert "12 DNS lookups, more than the 10" in result[-1].message
    assert "in esp2b.example: 'ptr:esp2.example'" in next(
        p.message for p in result if p.code == "spf-ptr"
    )
    assert result.summary == "12/10 DNS lookups"
    assert check_spf("v=spf1 include:_spf.acme.example ~all", dns.txt, max_lookups=12) == [
        p for p in result if p.code == "spf-ptr"
    ]


def test_exactly_ten_lookups_is_fine():
    dns = FakeDns({f"s{i}.example": [f"v=spf1 ip4:192.0.2.{i} -all"] for i in range(10)})
    record = "v=spf1 " + " ".join(f"include:s{i}.example" for i in range(10)) + " -all"
    result = check_spf(record, dns.txt)
    assert result == [] and result.lookups == 10


def test_include_loop_is_detected():
    dns = FakeDns(
        {
            "a.example": ["v=spf1 include:b.example -all"],
            "b.example": ["v=spf1 include:c.example -all"],
            "c.example": ["v=spf1 include:A.example. -all"],
        }
    )
    result = check_spf("v=spf1 include:a.example -all", dns.txt)
    loop = [p for p in result if p.code == "spf-loop"]
    assert len(loop) == 1 and loop[0].level == "error"
    assert "a.example -> b.example -> c.example -> a.example" in loop[0].message
    assert result.lookups == 4


def test_self_redirect_loop_with_own_domain():
    dns = FakeDns({"acme.example": ["v=spf1 redirect=acme.example"]})
    result = check_spf("v=spf1 redirect=acme.example", dns.txt, domain="ACME.example.")
    assert errors(result) == ["spf-loop"]
    assert "acme.example -> acme.example" in result[0].message


def test_diamond_is_not_a_loop_and_is_looked_up_once():
    dns = FakeDns(
        {
            "a.example": ["v=spf1 include:shared.example -all"],
            "b.example": ["v=spf1 include:shared.example -all"],
            "shared.example": ["v=spf1 ip4:192.0.2.1 -all"],
        }
    )
    result = check_spf("v=spf1 include:a.example include:b.example -all", dns.txt)
    assert result == [] and result.lookups == 4
    assert dns.calls.count(("txt", "shared.example")) == 1


def test_exponential_include_tree_stops():
    txt: dict[str, list[str]] = {}
    for i in range(40):
        nxt = f"include:l{i + 1}.example include:m{i + 1}.example"
        txt[f"l{i}.example"] = [f"v=spf1 {nxt} -all"]
        txt[f"m{i}.example"] = [f"v=spf1 {nxt} -all"]
    dns = FakeDns(txt)
    result = check_spf("v=spf1 include:l0.example -all", dns.txt)
    assert errors(result) == ["spf-too-many-lookups"]
    assert not result.exact and "at least" in result[-1].message
    assert len(dns.calls) < 100


def test_include_target_without_spf_is_a_permerror_and_void():
    dns = FakeDns({"txt-only.example": ["google-site-verification=abc"]})
    result = check_spf("v=spf1 include:gone.example include:txt-only.example -all", dns.txt)
    assert codes(result) == ["spf-include-no-record", "spf-include-no-record"]
    assert "include:gone.example has no SPF record" in result[0].message
    assert result.void_lookups == 1  # txt-only.example answered with a record
    assert result.lookups == 2 and result.exact


def test_redirect_target_without_spf():
    result = check_spf("v=spf1 redirect=_spf.gone.example", FakeDns().txt)
    assert errors(result) == ["spf-redirect-no-record"]
    assert result.void_lookups == 1


def test_target_with_two_spf_records():
    dns = FakeDns({"two.example": ["v=spf1 -all", "v=spf1 ip4:192.0.2.1 -all", "v=spf10 x"]})
    result = check_spf("v=spf1 include:two.example -all", dns.txt)
    assert errors(result) == ["spf-multiple-records"]
    assert "two.example publishes 2 SPF records" in result[0].message


def test_void_lookups_over_the_limit():
    dns = FakeDns()
    record = "v=spf1 include:v1.example include:v2.example include:v3.example -all"
    result = check_spf(record, dns.txt)
    assert result.void_lookups == 3
    assert "spf-too-many-void-lookups" in errors(result)
    result = check_spf(record, dns.txt, max_void=3)
    assert "spf-too-many-void-lookups" not in codes(result)


def test_void_a_and_mx_lookups_with_hooks():
    dns = FakeDns(mx={"acme.example": ["10 mail.acme.example."]}, a={"x.example": ["192.0.2.1"]})
    result = check_spf(
        "v=spf1 a mx a:x.example a:gone.example mx:gone.example -all",
        domain="acme.example",
        lookup_mx=dns.mx,
        lookup_a=dns.a,
    )
    assert codes(result) == [
        "spf-void-lookup",
        "spf-void-lookup",
        "spf-void-lookup",
        "spf-too-many-void-lookups",
    ]
    assert "'a': acme.example has no A/AAAA records" in result[0].message
    assert result.void_lookups == 3
    assert result.lookups == 5


def test_macro_targets_are_not_looked_up():
    dns = FakeDns()
    result = check_spf(
        "v=spf1 a:%{d}.example.com include:%{ir}._spf.example.com -all",
        dns.txt,
        lookup_a=dns.a,
    )
    assert result == [] and result.lookups == 2 and not result.exact
    assert dns.calls == []


def test_mx_with_too_many_hosts():
    hosts = [f"10 mx{i}.example." for i in range(11)]
    dns = FakeDns(mx={"big.example": hosts, "ok.example": hosts[:10]})
    result = check_spf("v=spf1 mx:big.example mx:ok.example -all", lookup_mx=dns.mx)
    assert errors(result) == ["spf-mx-too-many-hosts"]
    assert "big.example has 11 MX hosts" in result[0].message


def test_mx_hook_used_for_nested_bare_mx():
    dns = FakeDns({"esp.example": ["v=spf1 mx -all"]}, mx={})
    result = check_spf("v=spf1 include:esp.example -all", dns.txt, lookup_mx=dns.mx)
    assert codes(result) == ["spf-void-lookup"]
    assert result[0].message.startswith("in esp.example: 'mx': esp.example has no MX")
    assert ("mx", "esp.example") in dns.calls


def test_lookup_failure_is_a_warning_and_makes_the_count_a_bound():
    dns = FakeDns({"ok.example": ["v=spf1 -all"]}, failing=["down.example"])
    result = check_spf("v=spf1 include:ok.example include:down.example -all", dns.txt)
    assert codes(result) == ["spf-lookup-failed"]
    assert result[0].level == "warning"
    assert result[0].message == "TXT lookup of down.example failed: SERVFAIL"
    assert result.lookups == 2 and not result.exact
    assert result.summary == "at least 2/10 DNS lookups"


def test_nested_errors_are_prefixed_with_their_domain():
    dns = FakeDns({"bad.example": ["v=spf1 ip4:192.0.2.1/40 +all"]})
    result = check_spf("v=spf1 include:bad.example -all", dns.txt)
    assert errors(result) == ["spf-bad-cidr", "spf-pass-all"]
    assert all(p.message.startswith("in bad.example: ") for p in result)


def test_lookups_of_nested_record_after_all_are_not_followed():
    dns = FakeDns({"inc.example": ["v=spf1 -all include:never.example"]})
    result = check_spf("v=spf1 include:inc.example -all", dns.txt)
    assert warnings(result) == ["spf-terms-after-all"]
    assert ("txt", "never.example") not in dns.calls
    assert result.lookups == 1


def test_check_spf_matches_records_lookup_count_at_top_level():
    from penguinctl.dns.records import spf_lookup_count

    for record in [
        "v=spf1 a mx include:x.example ip4:192.0.2.1 -all",
        "v=spf1 redirect=x.example",
        "v=spf1 exists:%{i}.x.example ptr -all",
    ]:
        assert check_spf(record).lookups == spf_lookup_count(record)


# -- DMARC -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "record",
    [
        "v=DMARC1; p=none; rua=mailto:dmarc@acme.example",
        "v=DMARC1; p=quarantine; pct=10; rua=mailto:postmaster@acme.example",
        "v=DMARC1;p=reject;rua=mailto:a@x.example,mailto:b@y.example;",
        "v=DMARC1 ; p = reject ; sp = none ; adkim = s ; aspf = r ; rua = mailto:a@x.example",
        "v=DMARC1; p=reject; rua=mailto:a@x.example!10m, mailto:b@y.example!500; "
        "ruf=mailto:f@x.example!1G; fo=0:1:d:s; rf=afrf; ri=3600; pct=0",
        "v=DMARC1; p=Reject; rua=mailto:a@x.example; fo=1",
        "v=DMARC1; p=none; np=reject; psd=n; t=y; rua=mailto:d@x.example",
    ],
)
def test_valid_dmarc(record):
    assert check_dmarc(record) == []
    assert isinstance(parse_dmarc(record), DmarcRecord)


def test_parse_dmarc_fills_defaults():
    rec = parse_dmarc("v=DMARC1; p=Quarantine; rua=mailto:a@x.example")
    assert rec == DmarcRecord(
        policy="quarantine",
        subdomain_policy="quarantine",
        rua=("mailto:a@x.example",),
        tags=(("v", "DMARC1"), ("p", "Quarantine"), ("rua", "mailto:a@x.example")),
    )
    assert (rec.pct, rec.adkim, rec.aspf, rec.fo, rec.rf, rec.ri) == (
        100,
        "r",
        "r",
        ("0",),
        ("afrf",),
        86400,
    )


def test_parse_dmarc_values():
    rec = parse_dmarc(
        "v=DMARC1; p=reject; sp=none; pct=25; adkim=S; aspf=s; "
        "rua=mailto:a@x.example!10m , mailto:b@y.example; ruf=mailto:f@x.example; "
        "fo=1 : D; ri=3600"
    )
    assert (rec.policy, rec.subdomain_policy, rec.pct) == ("reject", "none", 25)
    assert (rec.adkim, rec.aspf) == ("s", "s")
    assert rec.rua == ("mailto:a@x.example!10m", "mailto:b@y.example")
    assert rec.ruf == ("mailto:f@x.example",)
    assert rec.fo == ("1", "d") and rec.ri == 3600


def test_penguinctl_generated_dmarc_is_clean():
    for value in [
        dmarc_value("none", ["dmarc@acme.example"]),
        dmarc_value("quarantine", ["postmaster@acme.example", "mailto:r@dmarc.example"], 10),
        dmarc_value("reject", ["dmarc@acme.example"], 100),
    ]:
        assert check_dmarc(value) == []
    assert warnings(check_dmarc(dmarc_value("none", ["https://reports.example/dmarc"]))) == [
        "dmarc-uri-not-mailto"
    ]
    assert warnings(check_dmarc(dmarc_value("none", []))) == ["dmarc-no-rua"]


@pytest.mark.parametrize(
    ("record", "code"),
    [
        ("", "dmarc-not-dmarc"),
        ("p=none; rua=mailto:a@x.example", "dmarc-not-dmarc"),
        ("v=spf1 -all", "dmarc-not-dmarc"),
        ("p=none; v=DMARC1", "dmarc-version-not-first"),
        ("v=DMARC2; p=none", "dmarc-bad-version"),
        ("v=dmarc1; p=none", "dmarc-bad-version"),
        ("v=DMARC1", "dmarc-missing-p"),
        ("v=DMARC1; rua=mailto:a@x.example", "dmarc-missing-p"),
        ("v=DMARC1; rua=mailto:a@x.example; p=none", "dmarc-p-not-second"),
        ("v=DMARC1; p=monitor", "dmarc-bad-policy"),
        ("v=DMARC1; p=none; sp=block", "dmarc-bad-policy"),
        ("v=DMARC1; p=none; pct=101", "dmarc-bad-pct"),
        ("v=DMARC1; p=none; pct=-1", "dmarc-bad-pct"),
        ("v=DMARC1; p=none; pct=50%", "dmarc-bad-pct"),
        ("v=DMARC1; p=none; pct=12.5", "dmarc-bad-pct"),
        ("v=DMARC1; p=none; adkim=strict", "dmarc-bad-alignment"),
        ("v=DMARC1; p=none; aspf=x", "dmarc-bad-alignment"),
        ("v=DMARC1; p=none; rua=dmarc@acme.example", "dmarc-bad-uri"),
        ("v=DMARC1; p=none; rua=mailto:a@x.example,", "dmarc-bad-uri"),
        ("v=DMARC1; p=none; rua=mailto:a@x.example!10x", "dmarc-bad-uri"),
        ("v=DMARC1; p=none; rua=mailto:a@x.example!", "dmarc-bad-uri"),
        ("v=DMARC1; p=none; rua=mailto:nobody", "dmarc-bad-uri"),
        ("v=DMARC1; p=none; rua=mailto:a@localhost", "dmarc-bad-uri"),
        ("v=DMARC1; p=none; ruf=mailto:a b@x.example", "dmarc-bad-uri"),
        ("v=DMARC1; p=none; fo=2", "dmarc-bad-fo"),
        ("v=DMARC1; p=none; fo=0,1", "dmarc-bad-fo"),
        ("v=DMARC1; p=none; fo=", "dmarc-empty-value"),
        ("v=DMARC1; p=none; rf=iodef", "dmarc-bad-rf"),
        ("v=DMARC1; p=none; ri=-5", "dmarc-bad-ri"),
        ("v=DMARC1; p=none; ri=1d", "dmarc-bad-ri"),
        ("v=DMARC1; p=none; ri=4294967296", "dmarc-bad-ri"),
        ("v=DMARC1; p=none; psd=maybe", "dmarc-bad-value"),
        ("v=DMARC1; p=none; p=reject", "dmarc-duplicate-tag"),
        ("v=DMARC1; p=none; RUA=mailto:a@x.example; rua=mailto:b@x.example", "dmarc-duplicate-tag"),
        ("v=DMARC1; p=", "dmarc-empty-value"),
        ("v=DMARC1; p=none; rua=", "dmarc-empty-value"),
        ("v=DMARC1; p=none; garbage", "dmarc-bad-tag"),
        ("v=DMARC1; p=none; 1x=y", "dmarc-bad-tag"),
        ("v=DMARC1, p=none", "dmarc-bad-separator"),
        ("v=DMARC1; p=none rua=mailto:a@x.example", "dmarc-bad-separator"),
        ("v=DMARC1; p=none, sp=none", "dmarc-bad-separator"),
        ("v=DMARC1; p=none; rua=mailto:a@x.example, ruf=mailto:b@x.example", "dmarc-bad-separator"),
    ],
)
def test_invalid_dmarc(record, code):
    problems = check_dmarc(record)
    assert code in errors(problems), problems
    with pytest.raises(RecordSyntaxError) as info:
        parse_dmarc(record)
    assert code in codes(info.value.problems)


@pytest.mark.parametrize(
    ("record", "code"),
    [
        ("v=DMARC1; p=none; rua=mailto:a@x.example; foo=bar", "dmarc-unknown-tag"),
        ("v=DMARC1; p=none; rua=https://x.example/dmarc", "dmarc-uri-not-mailto"),
        ("v=DMARC1; p=none", "dmarc-no-rua"),
        ("v=DMARC1; p=none;; rua=mailto:a@x.example", "dmarc-empty-tag"),
    ],
)
def test_dmarc_warnings_do_not_stop_parsing(record, code):
    assert warnings(check_dmarc(record)) == [code]
    assert errors(check_dmarc(record)) == []
    parse_dmarc(record)


def test_dmarc_reports_every_problem():
    problems = check_dmarc(
        "v=DMARC1; rua=dmarc@x.example,https://x.example/r; p=bogus; pct=101; foo=bar; sp=; p=none"
    )
    assert codes(problems) == [
        "dmarc-bad-uri",
        "dmarc-uri-not-mailto",
        "dmarc-bad-policy",
        "dmarc-bad-pct",
        "dmarc-unknown-tag",
        "dmarc-empty-value",
        "dmarc-duplicate-tag",
        "dmarc-p-not-second",
    ]
    assert "write mailto:dmarc@x.example" in problems[0].message


# -- DKIM ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rsa2048() -> str:
    return generate_rsa(2048).public_b64


def _rsa_public(bits: int, fmt=serialization.PublicFormat.SubjectPublicKeyInfo) -> str:
    """A public key of ``bits`` bits (a random odd modulus: public keys need no primes, and
    ``cryptography`` will not generate keys under 1024 bits)."""
    n = secrets.randbits(bits) | (1 << (bits - 1)) | 1
    key = rsa.RSAPublicNumbers(65537, n).public_key()
    return base64.b64encode(key.public_bytes(serialization.Encoding.DER, fmt)).decode()


def _ed25519(fmt: str) -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    if fmt == "raw":
        der = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        der = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    return base64.b64encode(der).decode()


def test_generated_dkim_record_is_clean(rsa2048):
    value = dkim_txt_value(rsa2048)
    assert check_dkim_key(value) == []
    assert parse_dkim_key(value) == {"v": "DKIM1", "k": "rsa", "p": rsa2048}
    assert dkim_public_key(value) == rsa2048


def test_dkim_key_split_over_strings_and_folded(rsa2048):
    folded = " ".join(rsa2048[i : i + 60] for i in range(0, len(rsa2048), 60))
    value = f"v=DKIM1;  k=rsa;\tt=s;\r\n h=sha256;p={folded} ;"
    assert check_dkim_key(value) == []
    assert dkim_public_key(value) == rsa2048
    assert parse_dkim_key(value)["p"] == rsa2048


def test_dkim_minimal_and_optional_tags(rsa2048):
    assert check_dkim_key(f"p={rsa2048}") == []
    assert check_dkim_key(f"k=rsa; h=sha1:sha256; s=email; n=key for mail; p={rsa2048}") == []
    assert check_dkim_key(f"v=DKIM1; s=*:email; t=s; p={rsa2048}") == []


def test_dkim_revoked_is_a_distinct_state():
    for value in ["v=DKIM1; k=rsa; p=", "v=DKIM1; p= ;", "p="]:
        problems = check_dkim_key(value)
        assert codes(problems) == ["dkim-revoked"]
        assert problems[0].level == "warning"
        assert parse_dkim_key(value)["p"] == ""
        assert dkim_public_key(value) == ""


def test_dkim_public_key_helper(rsa2048):
    assert dkim_public_key("v=DKIM1; k=rsa") is None
    assert dkim_public_key("") is None
    assert dkim_public_key("garbage") is None
    assert dkim_public_key(f"p={rsa2048[:40]} \t {rsa2048[40:]}") == rsa2048
    assert dkim_public_key("p=abc; p=def") == "abc"  # the first; check_dkim_key flags it


def test_dkim_short_and_weak_rsa_keys():
    problems = check_dkim_key(f"v=DKIM1; k=rsa; p={_rsa_public(1024)}")
    assert codes(problems) == ["dkim-short-key"] and problems[0].level == "warning"
    problems = check_dkim_key(f"v=DKIM1; k=rsa; p={_rsa_public(512)}")
    assert codes(problems) == ["dkim-weak-key"] and problems[0].level == "error"
    assert "512 bits" in problems[0].message
    parse_dkim_key(f"p={_rsa_public(512)}")  # a weak key is not a syntax error


def test_dkim_pkcs1_key_warns():
    key = _rsa_public(2048, serialization.PublicFormat.PKCS1)
    assert codes(check_dkim_key(f"v=DKIM1; p={key}")) == ["dkim-pkcs1-key"]


def test_dkim_ed25519_keys():
    assert check_dkim_key(f"v=DKIM1; k=ed25519; p={_ed25519('raw')}") == []
    problems = check_dkim_key(f"v=DKIM1; k=ed25519; p={_ed25519('spki')}")
    assert errors(problems) == ["dkim-bad-key"]
    assert "raw 32-byte key" in problems[0].message
    problems = check_dkim_key(f"v=DKIM1; k=ed25519; p={_rsa_public(2048)}")
    assert errors(problems) == ["dkim-bad-key"]
    problems = check_dkim_key(f"v=DKIM1; p={_ed25519('spki')}")  # k defaults to rsa
    assert errors(problems) == ["dkim-key-type-mismatch"]
    assert "Ed25519" in problems[0].message


def test_dkim_ec_key_is_a_type_mismatch():
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    problems = check_dkim_key("p=" + base64.b64encode(der).decode())
    assert errors(problems) == ["dkim-key-type-mismatch"]


@pytest.mark.parametrize(
    ("record", "code"),
    [
        ("", "dkim-missing-key"),
        ("v=DKIM1; k=rsa", "dkim-missing-key"),
        ("v=DKIM1; k=rsa; P=abc", "dkim-missing-key"),
        ("k=rsa; v=DKIM1; p=", "dkim-version-not-first"),
        ("v=DKIM2; p=", "dkim-bad-version"),
        ("v=dkim1; p=", "dkim-bad-version"),
        ("v=DKIM1; k=dsa; p=", "dkim-bad-key-type"),
        ("v=DKIM1; k=RSA; p=", "dkim-bad-key-type"),
        ("v=DKIM1; k=; p=", "dkim-bad-key-type"),
        ("v=DKIM1; p=; p=", "dkim-duplicate-tag"),
        ("v=DKIM1; k=rsa; k=rsa; p=", "dkim-duplicate-tag"),
        ("v=DKIM1; garbage; p=", "dkim-bad-tag"),
        ("v=DKIM1; =x; p=", "dkim-bad-tag"),
        ("v=DKIM1; n=caf\u00e9; p=", "dkim-bad-value"),
        ("v=DKIM1; p=QUJD\u00a0RA==", "dkim-bad-value"),
        ("v=DKIM1; h=sha256:; p=", "dkim-bad-value"),
        ("v=DKIM1; p=not*base64!", "dkim-bad-base64"),
        ("v=DKIM1; p=QUJD", "dkim-bad-key"),
        ("v=DKIM1; p=QUJDRA=", "dkim-bad-base64"),
    ],
)
def test_invalid_dkim(record, code):
    problems = check_dkim_key(record)
    assert code in errors(problems), problems


@pytest.mark.parametrize(
    "record",
    [
        "",
        "v=DKIM1; k=rsa",
        "k=rsa; v=DKIM1; p=",
        "v=DKIM2; p=",
        "v=DKIM1; k=dsa; p=",
        "v=DKIM1; p=; p=",
        "v=DKIM1; garbage; p=",
        "v=DKIM1; p=not*base64!",
    ],
)
def test_parse_dkim_key_raises_on_syntax_errors(record):
    with pytest.raises(RecordSyntaxError):
        parse_dkim_key(record)


def test_dkim_bad_key_is_not_a_syntax_error():
    assert parse_dkim_key("v=DKIM1; p=QUJD") == {"v": "DKIM1", "p": "QUJD"}


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ("h=sha1", ["dkim-no-sha256"]),
        ("h=sha512:sha256", ["dkim-unknown-hash"]),
        ("s=web", ["dkim-unknown-service", "dkim-not-for-email"]),
        ("s=email:web", ["dkim-unknown-service"]),
        ("t=y", ["dkim-testing"]),
        ("t=y:s:x", ["dkim-unknown-flag", "dkim-testing"]),
        ("g=*", ["dkim-unknown-tag"]),
        ("K=rsa", ["dkim-unknown-tag"]),
    ],
)
def test_dkim_tag_semantics(rsa2048, tags, expected):
    problems = check_dkim_key(f"v=DKIM1; {tags}; p={rsa2048}")
    assert codes(problems) == expected


def test_dkim_messages_never_carry_a_whole_key(rsa2048):
    for value in [
        f"v=DKIM1; k=ed25519; p={rsa2048}",
        f"v=DKIM1; p={rsa2048[:-4]}!!!!",
        f"v=DKIM1; p={rsa2048}A",
        f"v=DKIM1; p={_rsa_public(512)}",
        f"v=DKIM1; p={_rsa_public(1024, serialization.PublicFormat.PKCS1)}",
    ]:
        problems = check_dkim_key(value)
        assert problems
        key = dkim_public_key(value) or ""
        for p in problems:
            assert key[:30] not in p.message
            assert len(p.message) < 200 and "\n" not in p.message


# -- the shape dns verify relies on ----------------------------------------------------------
def test_verify_integration_points(rsa2048):
    assert lint.SPF_MAX_LOOKUPS == 10
    result = check_spf("v=spf1 include:_spf.google.com ~all", lookup_txt=FakeDns(GOOGLE).txt)
    assert getattr(result, "lookups", None) == 4
    assert list(result) == []
    revoked = [p for p in check_dkim_key("v=DKIM1; k=rsa; p=") if p.code != "dkim-revoked"]
    assert revoked == [] and not dkim_public_key("v=DKIM1; k=rsa; p=")
    assert dkim_public_key(dkim_txt_value(rsa2048)) == rsa2048


# -- properties --------------------------------------------------------------------------------
SPF_CHARS = st.sampled_from(list("v=spf1 ipa4:6/.%{}-+~?_lxdmaex,;al0129\t\u00e9rt  "))
TAG_CHARS = st.sampled_from(list("v=DMARC1DKIM;pkh: sraut,!@.%0129-_ =\t\u00e9mailto+/QUJD"))


def _texts(chars) -> st.SearchStrategy[str]:
    return st.one_of(st.text(), st.text(chars, max_size=80))


def _problems_ok(problems: Sequence[LintProblem]) -> None:
    for p in problems:
        assert isinstance(p, LintProblem)
        assert p.level in ("error", "warning")
        assert p.code and p.code == p.code.lower() and " " not in p.code
        assert p.message and "\n" not in p.message and "\r" not in p.message


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_texts(SPF_CHARS), _texts(SPF_CHARS).map(lambda s: "v=spf1 " + s)))
def test_spf_parsers_never_raise_anything_else(text):
    try:
        rec = parse_spf(text)
    except RecordSyntaxError as exc:
        assert exc.problems
    else:
        assert rec.text == text
    result = check_spf(text)
    _problems_ok(result)
    assert result.lookups >= 0


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_texts(TAG_CHARS), _texts(TAG_CHARS).map(lambda s: "v=DMARC1; p=none; " + s)))
def test_dmarc_parsers_never_raise_anything_else(text):
    try:
        parse_dmarc(text)
    except RecordSyntaxError as exc:
        assert exc.problems
    _problems_ok(check_dmarc(text))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_texts(TAG_CHARS), _texts(TAG_CHARS).map(lambda s: "v=DKIM1; k=rsa; p=" + s)))
def test_dkim_parsers_never_raise_anything_else(text):
    try:
        parse_dkim_key(text)
    except RecordSyntaxError as exc:
        assert exc.problems
    _problems_ok(check_dkim_key(text))
    key = dkim_public_key(text)
    assert key is None or not any(c in " \t\r\n" for c in key)


@given(st.binary(max_size=300))
def test_dkim_random_key_bytes(data):
    value = "v=DKIM1; p=" + base64.b64encode(data).decode()
    _problems_ok(check_dkim_key(value))
    assert parse_dkim_key(value)["p"] == base64.b64encode(data).decode()


_DOMAINS = [f"d{i}.example" for i in range(6)]
_TERM = st.one_of(
    st.sampled_from(["a", "mx", "ptr", "-all", "~all", "?all", "exists:%{i}.x.example"]),
    st.sampled_from(_DOMAINS).map(lambda d: f"include:{d}"),
    st.sampled_from(_DOMAINS).map(lambda d: f"redirect={d}"),
    st.builds(lambda a, b: f"ip4:192.0.{a}.0/{b}", st.integers(0, 255), st.integers(0, 32)),
    st.builds(lambda p: f"ip6:2001:db8::/{p}", st.integers(0, 128)),
    st.builds(lambda a, b: f"a/{a}//{b}", st.integers(0, 32), st.integers(0, 128)),
)
_RECORD = st.lists(_TERM, max_size=8).map(lambda terms: " ".join(["v=spf1", *terms]))


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    _RECORD,
    st.dictionaries(
        st.sampled_from(_DOMAINS),
        st.lists(st.one_of(_RECORD, st.just("other=txt")), max_size=2),
    ),
)
def test_spf_lookup_walk_never_raises(record, table):
    dns = FakeDns(table)
    result = check_spf(record, dns.txt)
    _problems_ok(result)
    dup = "spf-duplicate-modifier" in codes(result)
    if not dup:
        assert result.lookups >= parse_spf(record).own_lookups
    assert len(dns.calls) <= len(_DOMAINS)  # each name asked once


@given(_RECORD)
def test_wellformed_records_parse_and_count(record):
    try:
        rec = parse_spf(record)
    except RecordSyntaxError as exc:
        assert set(codes(exc.problems)) == {"spf-duplicate-modifier"}
        return
    result = check_spf(record)
    assert result.lookups == rec.own_lookups
    assert result.exact == (
        not any(m.name == "include" for m in rec.evaluated) and rec.effective_redirect is None
    )
