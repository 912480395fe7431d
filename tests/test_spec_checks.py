"""Cross-document checks, and the acceptance case: every mistake of a directory in one error."""

from __future__ import annotations

from pathlib import Path

import pytest

from penguinctl.errors import SpecError
from penguinctl.spec import load_specs
from penguinctl.spec.checks import CHECKS, run_checks, spf_lookups

SPECS = Path(__file__).parent / "specs"
ACCEPTANCE = SPECS / "acceptance"
BASE = SPECS / "base.yaml"


def test_acceptance_five_mistakes_in_two_files_reported_at_once() -> None:
    with pytest.raises(SpecError) as info:
        load_specs([ACCEPTANCE])
    infra, domains = str(ACCEPTANCE / "infra.yaml"), str(ACCEPTANCE / "domains.yaml")
    got = [(i.location.file, i.location.line, i.location.col) for i in info.value.issues]
    assert got == [
        (domains, 5, 3),  # server 'mx2' is not defined
        (domains, 9, 8),  # mailbox 'john' twice
        (domains, 17, 10),  # rotate_every: 6mo
        (infra, 14, 5),  # ssh_port: twenty-two
        (infra, 22, 3),  # api_token: a value
    ]
    messages = [issue.message for issue in info.value.issues]
    assert messages[0] == (
        "domain acme-mail.example: server 'mx2' is not defined (defined servers: mx1); "
        "did you mean 'mx1'?"
    )
    assert messages[1] == (
        "domain acme-mail.example: mailbox 'john' is listed twice (first at line 8); remove one"
    )
    assert messages[2].startswith("domain acme-send.example: spec.dkim.rotate_every: a duration")
    assert messages[3].startswith("server mx1: spec.static.ssh_port: input should be a valid int")
    assert messages[4].startswith("dns provider cf: spec.api_token: secret fields take a reference")
    assert "cf-live-token" not in str(info.value) + "".join(messages)
    assert str(info.value).startswith(f"{domains}:5:3: domain acme-mail.example: server 'mx2'")
    assert "(and 4 more)" in str(info.value)


def test_files_given_one_by_one_give_the_same_issues() -> None:
    with pytest.raises(SpecError) as by_dir:
        load_specs([ACCEPTANCE])
    with pytest.raises(SpecError) as by_file:
        load_specs([ACCEPTANCE / "domains.yaml", ACCEPTANCE / "infra.yaml"])
    assert by_dir.value.issues == by_file.value.issues


def test_reference_checks_wait_for_complete_files(tmp_path: Path) -> None:
    # The server is in a file that fails to parse: no "server is not defined" noise.
    (tmp_path / "a.yaml").write_text(
        "apiVersion: penguinctl/v1\nkind: Domain\nmetadata: {name: a.example, tenant: acme}\n"
        "spec: {server: mx1, dns: primary}\n"
    )
    (tmp_path / "b.yaml").write_text("kind: Server\nmetadata: {name: mx1\n")
    with pytest.raises(SpecError) as info:
        load_specs([tmp_path])
    assert [i.location.file for i in info.value.issues] == [str(tmp_path / "b.yaml")]


def test_shared_server_and_dns_may_serve_any_tenant(tmp_path: Path) -> None:
    spec = tmp_path / "beta.yaml"
    spec.write_text(
        "apiVersion: penguinctl/v1\nkind: Tenant\nmetadata: {name: beta}\n---\n"
        "apiVersion: penguinctl/v1\nkind: Server\nmetadata: {name: shared}\n"
        "spec: {provider: static, static: {address: 198.51.100.1}, hostname: mx.shared.example}\n"
        "---\napiVersion: penguinctl/v1\nkind: Domain\n"
        "metadata: {name: beta.example, tenant: beta}\nspec: {server: shared, dns: primary}\n"
    )
    specs = load_specs([BASE, spec])
    assert specs.domains["beta.example"].spec.server == "shared"
    assert [d.name for d in specs.domains_of("beta")] == ["beta.example"]
    assert run_checks(specs) == []


def test_spf_lookup_counting() -> None:
    assert spf_lookups([]) == 0
    assert spf_lookups(["include:_spf.google.com", "ip4:192.0.2.1", "-all"]) == 1
    assert spf_lookups(["a", "mx:example.com", "a/24", "ptr", "exists:%{i}.x", "redirect=x"]) == 6
    assert spf_lookups(["ip6:2001:db8::/32", "~all", "+include:x.example"]) == 1


def test_ten_includes_are_fine(tmp_path: Path) -> None:
    spec = tmp_path / "d.yaml"
    includes = ", ".join(f"i{n}.example" for n in range(10))
    spec.write_text(
        "apiVersion: penguinctl/v1\nkind: Domain\nmetadata: {name: d.example, tenant: acme}\n"
        f"spec: {{server: mx1, dns: primary, spf: {{include: [{includes}]}}}}\n"
    )
    assert len(load_specs([BASE, spec]).domains["d.example"].spec.spf.include) == 10


def test_every_check_is_documented() -> None:
    for check in CHECKS:
        assert check.__doc__
