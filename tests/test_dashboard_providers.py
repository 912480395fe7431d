"""Recipients by provider (the campaign page): well-known domains are classified at once; other
domains are resolved by a background thread against a real BIND (MX at Google, Microsoft,
Yahoo, elsewhere, none) and counted as pending until then, so a page never waits on DNS; a
resolver that does not answer costs the page nothing either."""

from __future__ import annotations

import time

import dns.query
import dns.resolver
import dns.update
from bind import BindServer
from servekit import wait_for
from sshd import free_port

from penguinctl.web.dashboard.providers import Classifier, breakdown, from_mx

MX = {
    "corp-a.example": "10 aspmx.l.google.com.",
    "corp-b.example": "0 corp-b-example.mail.protection.outlook.com.",
    "corp-c.example": "1 mta5.am0.yahoodns.net.",
    "corp-d.example": "10 mx1.mail-host.net.",
}


def resolver_at(port: int, timeout: float = 1.0) -> dns.resolver.Resolver:
    res = dns.resolver.Resolver(configure=False)
    res.nameservers = ["127.0.0.1"]
    res.port = port
    res.lifetime = timeout
    return res


def test_providers_from_a_real_resolver_without_blocking(tmp_path) -> None:
    zones = [*MX, "empty.example"]
    with BindServer(tmp_path / "named", zones) as bind:
        for zone, value in MX.items():
            upd = dns.update.UpdateMessage(zone, keyring=bind.keyring())
            upd.add("@", 300, "MX", value)
            assert dns.query.tcp(upd, bind.host, timeout=5, port=bind.port).rcode() == 0
        classifier = Classifier(resolver_at(bind.port))
        counts = {
            "gmail.com": 5,
            "hotmail.co.uk": 2,
            "empty.example": 1,
            **{zone: 10 for zone in MX},
        }
        start = time.monotonic()
        first = breakdown(counts, classifier)
        assert time.monotonic() - start < 1.0  # answered from what it knows, not from DNS
        assert first["Gmail"] == 5 and first["Microsoft"] == 2 and first["pending"] == 41
        wait_for(
            lambda: "pending" not in breakdown(counts, classifier),
            timeout=30,
            what="the background MX lookups",
        )
        assert breakdown(counts, classifier) == {
            "Gmail": 15,
            "Microsoft": 12,
            "Yahoo": 10,
            "other": 11,  # corp-d + empty (no MX)
        }


def test_a_dead_resolver_costs_the_page_nothing() -> None:
    classifier = Classifier(resolver_at(free_port("127.0.0.1"), timeout=0.5))
    start = time.monotonic()
    assert breakdown({"nobody.example": 3, "yahoo.com": 1}, classifier) == {
        "Gmail": 0,
        "Microsoft": 0,
        "Yahoo": 1,
        "other": 0,
        "pending": 3,
    }
    assert time.monotonic() - start < 1.0
    # the failed lookup is remembered as "other" for a short while
    wait_for(
        lambda: classifier.classify("nobody.example") == "other",
        timeout=10,
        what="the failed lookup recorded",
    )


def test_mx_names() -> None:
    assert from_mx(["ALT1.ASPMX.L.GOOGLE.COM."]) == "Gmail"
    assert from_mx(["x.mail.protection.outlook.com"]) == "Microsoft"
    assert from_mx(["mx-eu.mail.am0.yahoodns.net."]) == "Yahoo"
    assert from_mx(["mx.notgoogle.com", "google.com.evil.example"]) == "other"
