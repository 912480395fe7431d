"""Spec documents and their typed models: the valid example, and one fixture per error case.

Each file in tests/specs/errors/ is loaded together with tests/specs/base.yaml (the documents it
refers to) and lists the issues it must produce in ``# expect: LINE:COL message`` comments: the
test checks every issue's exact line and column, and that its message contains the text given.
"""

from __future__ import annotations

import re
from datetime import timedelta
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest
from pydantic import ValidationError

from penguinctl.errors import Location, SpecError
from penguinctl.spec import Duration, SecretRef, SpecSet, load_specs
from penguinctl.spec.models import (
    CloudflareDns,
    Dmarc,
    DomainSpec,
    Endpoint,
    Mailbox,
    Rfc2136Dns,
    ServerSpec,
    ZonefileDns,
)

SPECS = Path(__file__).parent / "specs"
BASE = SPECS / "base.yaml"
VALID = SPECS / "valid" / "acme.yaml"
ERROR_CASES = sorted((SPECS / "errors").glob("*.yaml"))
_EXPECT = re.compile(r"# expect: (\d+):(\d+) (.+)")


def _expected(case: Path) -> list[tuple[int, int, str]]:
    found = []
    for line in case.read_text(encoding="utf-8").splitlines():
        match = _EXPECT.match(line)
        if match:
            text = match.group(3).replace("{base}", str(BASE))
            found.append((int(match.group(1)), int(match.group(2)), text))
    return found


@pytest.fixture(scope="module")
def valid() -> SpecSet:
    return load_specs([VALID])


def test_every_error_case_declares_its_issues() -> None:
    assert len(ERROR_CASES) >= 40
    for case in ERROR_CASES:
        assert _expected(case), f"{case.name} has no '# expect:' line"


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda path: path.stem)
def test_error_case(case: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_specs([BASE, case])
    issues = info.value.issues
    assert {issue.location.file for issue in issues} == {str(case)}
    got = [(issue.location.line, issue.location.col) for issue in issues]
    expected = _expected(case)
    assert got == [(line, col) for line, col, _ in expected], [str(i) for i in issues]
    for issue, (_, _, text) in zip(issues, expected, strict=True):
        assert text in issue.message


def test_base_context_is_valid() -> None:
    specs = load_specs([BASE])
    assert sorted(specs.tenants) == ["acme"]
    assert sorted(specs.servers) == ["mx1"]


# -- the valid example of product.md section 3 -------------------------------------------------
def test_valid_spec_loads_every_kind(valid: SpecSet) -> None:
    assert list(valid.tenants) == ["acme"]
    assert list(valid.servers) == ["mx1"]
    assert list(valid.dns_providers) == ["primary"]
    assert list(valid.domains) == ["acme-mail.example"]
    assert list(valid.backup_policies) == ["nightly"]
    assert [doc.kind for doc in valid.documents] == [
        "Tenant",
        "Server",
        "DnsProvider",
        "Domain",
        "BackupPolicy",
    ]
    assert valid.files == [VALID.resolve()]


def test_valid_spec_metadata_and_origin(valid: SpecSet) -> None:
    domain = valid.domains["acme-mail.example"]
    assert domain.metadata.name == "acme-mail.example"  # written Acme-Mail.Example.
    assert domain.metadata.tenant == "acme"
    assert domain.metadata.labels == {"team": "growth"}
    assert domain.location == Location(str(VALID), 30, 1)
    assert domain.source_dir == VALID.parent.resolve()
    assert valid.tenants["acme"].metadata.tenant is None
    assert valid.tenants["acme"].metadata.labels == {}
    assert str(domain) == "domain acme-mail.example"


def test_valid_spec_typed_values(valid: SpecSet) -> None:
    tenant = valid.tenants["acme"].spec
    assert (tenant.plan, tenant.contact) == ("professional", "ops@acme.example")

    server = valid.servers["mx1"].spec
    assert server.provider == "external"
    assert server.external is not None
    assert server.external.ips == [IPv4Address("203.0.113.7"), IPv6Address("2001:db8::7")]
    assert server.hostwinds is None and server.static is None
    assert server.hostname == "mail.acme-mail.example"
    assert server.mail.stack == "mailu" and server.mail.version == "2024.06"
    assert server.submission == Endpoint(host="smtp.example", port=587, security="starttls")
    assert server.imap == Endpoint(host="imap.example", port=993, security="tls")
    assert server.backup == "nightly"

    dns = valid.dns_providers["primary"].spec
    assert isinstance(dns, ZonefileDns)
    assert dns.directory == "./zones" and dns.ttl == 3600
    assert dns.nameservers == ["ns1.acme.example", "ns2.acme.example"]

    domain = valid.domains["acme-mail.example"].spec
    assert domain.dmarc.policy == "none"
    assert domain.dmarc.rua == ["mailto:dmarc@acme-mail.example"]
    assert domain.dkim.rotate_every == timedelta(days=180)
    assert str(domain.dkim.rotate_every) == "180d"
    assert domain.spf.include == ["_spf.google.com"]
    assert domain.tracking is not None and domain.tracking.host == "track"
    assert domain.mta_sts is not None and domain.mta_sts.max_age == 604800
    assert domain.tls_rpt is not None
    assert domain.tls_rpt.rua == "mailto:tls-reports@acme-mail.example"
    john, sara = domain.mailboxes
    assert (john.local, john.display_name, john.daily_limit, john.password) == (
        "john",
        "John Smith",
        40,
        None,
    )
    assert sara.local == "sara"  # written Sara
    assert sara.password == SecretRef("env", "SARA_SMTP_PASSWORD")
    assert sara.address("acme-mail.example") == "sara@acme-mail.example"

    policy = valid.backup_policies["nightly"].spec
    assert policy.schedule == "30 2 * * *"
    assert (policy.retention.daily, policy.retention.weekly, policy.retention.monthly) == (7, 4, 6)


def test_location_of_nested_fields(valid: SpecSet) -> None:
    domain = valid.domains["acme-mail.example"]
    at = valid.location_of
    assert at(domain, "spec", "server") == Location(str(VALID), 34, 3)
    assert at(domain, "spec", "mailboxes", 1, "password") == Location(str(VALID), 44, 62)
    # Missing fields fall back to the nearest enclosing key or item.
    assert at(domain, "spec", "mailboxes", 1, "nothing") == Location(str(VALID), 44, 7)
    assert at(domain, "spec", "mailboxes", 7) == Location(str(VALID), 42, 3)
    assert at(domain) == domain.location
    assert domain.location_of("metadata", "name") == Location(str(VALID), 32, 12)


def test_model_dump_round_trips(valid: SpecSet) -> None:
    domain = valid.domains["acme-mail.example"].spec
    dumped = domain.model_dump(mode="json")
    assert dumped["dkim"]["rotate_every"] == "180d"
    assert dumped["mailboxes"][1]["password"] == "env:SARA_SMTP_PASSWORD"
    assert DomainSpec.model_validate(dumped) == domain
    server = valid.servers["mx1"].spec
    assert server.model_dump(mode="json")["external"]["ips"] == ["203.0.113.7", "2001:db8::7"]
    assert ServerSpec.model_validate(server.model_dump(mode="json")) == server


# -- model details -------------------------------------------------------------------------------
def test_domain_defaults() -> None:
    spec = DomainSpec.model_validate({"server": "mx1", "dns": "primary"})
    assert spec.dmarc == Dmarc(policy="none", rua=[], pct=100)
    assert spec.dkim.rotate_every == Duration("180d")
    assert (spec.dkim.algorithm, spec.dkim.bits) == ("rsa", 2048)
    assert (spec.spf.include, spec.spf.all) == ([], "~all")
    assert spec.tracking is None and spec.mta_sts is None and spec.tls_rpt is None
    assert spec.mailboxes == []


def test_dmarc_rua_takes_one_or_many() -> None:
    assert Dmarc.model_validate({"rua": "d@x.example"}).rua == ["mailto:d@x.example"]
    many = Dmarc.model_validate({"rua": ["mailto:a@x.example!10m", "B@X.Example"]})
    assert many.rua == ["mailto:a@x.example!10m", "mailto:B@x.example"]


def test_dns_provider_union_and_defaults() -> None:
    from pydantic import TypeAdapter

    from penguinctl.spec.models import DnsProviderSpec

    adapter: TypeAdapter[object] = TypeAdapter(DnsProviderSpec)
    rfc = adapter.validate_python(
        {"type": "rfc2136", "server": "ns1.example.com", "tsig": {"name": "k", "secret": "env:K"}}
    )
    assert isinstance(rfc, Rfc2136Dns)
    assert rfc.port == 53 and rfc.tsig is not None and rfc.tsig.algorithm == "hmac-sha256"
    cf = adapter.validate_python({"type": "cloudflare", "api_token": "vault:dns/cf#token"})
    assert isinstance(cf, CloudflareDns)
    assert (cf.api_token.scheme, cf.api_token.path, cf.api_token.key) == (
        "vault",
        "dns/cf",
        "token",
    )


def test_server_blocks_must_match_provider() -> None:
    base = {"hostname": "mail.example.com"}
    ok = ServerSpec.model_validate(
        {
            **base,
            "provider": "hostwinds",
            "hostwinds": {"location_id": 1, "template": "u", "rid": 2},
        }
    )
    assert ok.hostwinds is not None and ok.hostwinds.billingcycle == "monthly"
    static = ServerSpec.model_validate(
        {**base, "provider": "static", "static": {"address": "mx.example.com"}}
    )
    assert static.static is not None
    # unset: the ssh config's User/Port for the address, else root and 22 (remote.servers)
    assert (static.static.ssh_user, static.static.ssh_port) == (None, None)
    assert static.submission == Endpoint(host="mail.example.com", port=587, security="starttls")
    assert static.imap == Endpoint(host="mail.example.com", port=993, security="tls")
    with pytest.raises(ValidationError):
        ServerSpec.model_validate({**base, "provider": "static", "external": {"ips": ["1.2.3.4"]}})
    with pytest.raises(ValidationError):
        ServerSpec.model_validate({**base, "provider": "external", "external": {"ips": []}})


def test_models_are_frozen_and_reject_unknown_fields() -> None:
    mailbox = Mailbox(local="john")
    with pytest.raises(ValidationError):
        mailbox.local = "jane"  # type: ignore[misc,unused-ignore]
    with pytest.raises(ValidationError):
        Mailbox.model_validate({"local": "john", "quota": 5})


def test_secret_value_never_echoed() -> None:
    secret = "Tr0ub4dor&3-correct-horse"
    with pytest.raises(SpecError) as info:
        load_specs([BASE, SPECS / "errors" / "secret_plain.yaml"])
    assert secret not in str(info.value)
    assert all(secret not in issue.message for issue in info.value.issues)
    with pytest.raises(ValidationError) as error:
        Mailbox.model_validate({"local": "john", "password": secret})
    assert secret not in str(error.value.errors(include_input=False))
