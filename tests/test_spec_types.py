"""Value types of the spec: durations, secret references, names and addresses, cron."""

from __future__ import annotations

import pickle
from datetime import timedelta
from pathlib import Path

import pytest

from penguinctl.spec import Duration, SecretRef, names
from penguinctl.spec.cron import check_cron
from penguinctl.spec.refs import MESSAGE


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("24h", 86400), ("7d", 604800), ("2w", 1209600), ("0s", 0)],
)
def test_duration_parses(text: str, seconds: int) -> None:
    duration = Duration(text)
    assert duration == timedelta(seconds=seconds)
    assert isinstance(duration, timedelta)
    assert str(duration) == text
    assert pickle.loads(pickle.dumps(duration)).text == text


@pytest.mark.parametrize("text", ["", "7", "d", "1.5d", "7 days", "-1d", "7D", "1y", "1d2h"])
def test_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="a duration is a whole number"):
        Duration(text)


@pytest.mark.parametrize(
    ("text", "scheme", "path", "key"),
    [
        ("vault:dns/tsig#secret", "vault", "dns/tsig", "secret"),
        ("env:SARA_SMTP_PASSWORD", "env", "SARA_SMTP_PASSWORD", None),
        ("file:./secrets/token.txt", "file", "./secrets/token.txt", None),
        ("keystore:providers/cloudflare", "keystore", "providers/cloudflare", None),
    ],
)
def test_secret_ref_parses(text: str, scheme: str, path: str, key: str | None) -> None:
    ref = SecretRef.parse(text)
    assert (ref.scheme, ref.path, ref.key) == (scheme, path, key)
    assert str(ref) == text
    assert SecretRef.parse(str(ref)) == ref


@pytest.mark.parametrize(
    "text",
    ["hunter2", "vault:path/only", "vault:#key", "env:1BAD", "env:", "file:", "s3:bucket/x", ""],
)
def test_secret_ref_rejects_without_echo(text: str) -> None:
    with pytest.raises(ValueError) as info:
        SecretRef.parse(text)
    assert str(info.value) == MESSAGE


def test_secret_ref_file_resolves_against_the_spec_directory(tmp_path: Path) -> None:
    assert SecretRef.parse("file:token").resolve_file(tmp_path) == tmp_path / "token"
    assert SecretRef.parse("file:/etc/token").resolve_file(tmp_path) == Path("/etc/token")
    with pytest.raises(ValueError):
        SecretRef.parse("env:X").resolve_file(tmp_path)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("Mail.Example.COM.", "mail.example.com"), ("xn--bcher-kva.example", "xn--bcher-kva.example")],
)
def test_dns_names(value: str, expected: str) -> None:
    assert names.check_dns_name(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "example",
        "-a.example",
        "a-.example",
        "a..example",
        "a.123",
        "bücher.example",
        "a_b.example",
        "x" * 64 + ".example",
        ("a." * 127) + "example",
    ],
)
def test_bad_dns_names(value: str) -> None:
    with pytest.raises(ValueError, match="is not a valid domain name"):
        names.check_dns_name(value)


def test_txt_domain_allows_service_labels() -> None:
    assert names.check_txt_domain("_spf.Google.com") == "_spf.google.com"


def test_local_parts_and_emails() -> None:
    assert names.check_local_part("John.Smith+cold") == "john.smith+cold"
    for bad in ["", ".john", "john.", "jo..hn", "jo hn", "a" * 65, "jöhn"]:
        with pytest.raises(ValueError):
            names.check_local_part(bad)
    assert names.check_email("Ops@ACME.example") == "Ops@acme.example"
    for bad in ["ops", "@acme.example", "ops@", "ops@acme", "a b@acme.example"]:
        with pytest.raises(ValueError, match="is not an e-mail address"):
            names.check_email(bad)


def test_report_uris() -> None:
    assert names.check_report_uri("d@x.example") == "mailto:d@x.example"
    assert names.check_report_uri("mailto:d@x.example!10m") == "mailto:d@x.example!10m"
    assert names.check_report_uri("https://r.example/tls", https=True) == "https://r.example/tls"
    for bad in ["https://r.example/tls", "mailto:", "d@x.example!ten"]:
        with pytest.raises(ValueError):
            names.check_report_uri(bad)


def test_hosts_and_names() -> None:
    assert names.check_host("203.0.113.7") == "203.0.113.7"
    assert names.check_host("2001:DB8::1") == "2001:db8::1"
    assert names.check_host("MX.example.com") == "mx.example.com"
    with pytest.raises(ValueError, match="neither an IP address nor a host name"):
        names.check_host("not a host")
    assert names.check_name("mx-1.eu_west") == "mx-1.eu_west"
    for bad in ["", "MX1", "-mx", "mx-", "a" * 64, "mx 1"]:
        with pytest.raises(ValueError, match="is not a valid name"):
            names.check_name(bad)


@pytest.mark.parametrize(
    "value", ["30 2 * * *", "*/15 * * * mon-fri", "0 0 1,15 jan-jun *", "0 0 * * 7", "@daily"]
)
def test_cron_accepts(value: str) -> None:
    assert check_cron(value) == value


def test_cron_ticks_through_croniter() -> None:
    from datetime import UTC, datetime

    from penguinctl.spec.cron import latest_at, longest_gap, next_after

    t = datetime(2026, 3, 6, 2, 30, tzinfo=UTC)  # a Friday
    assert next_after("30 2 * * *", t) == datetime(2026, 3, 7, 2, 30, tzinfo=UTC)
    assert latest_at("30 2 * * *", t) == t  # a tick at the instant itself counts
    assert latest_at("30 2 * * *", t.replace(minute=29)) == datetime(2026, 3, 5, 2, 30, tzinfo=UTC)
    assert longest_gap("30 2 * * mon-fri", t) == 3 * 86400  # the weekend
    assert check_cron("30  2 * *  MON") == "30 2 * * mon"  # normalised


@pytest.mark.parametrize(
    "value",
    [
        "",
        "* * * *",
        "* * * * * *",
        "60 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "*/0 * * * *",
        "0 0 31 2 *",  # never fires
        "* * * foo *",
        "@sometimes",
    ],
)
def test_cron_rejects(value: str) -> None:
    with pytest.raises(ValueError):
        check_cron(value)
