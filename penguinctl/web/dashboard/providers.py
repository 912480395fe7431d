"""Recipient mailbox providers (Gmail, Microsoft, Yahoo, other) from the recipient domain's MX.

A page never waits on DNS: ``classify`` answers from well-known domain names and from a cache;
domains it cannot answer yet are queued for a background thread that resolves them (dnspython,
``TIMEOUT`` per lookup, at most ``QUEUE_MAX`` waiting) and counted as ``pending`` until then.
Answers are cached for ``TTL`` seconds (monotonic time), failures for a shorter while.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

PROVIDERS = ("Gmail", "Microsoft", "Yahoo", "other")
TIMEOUT = 2.0
TTL = 6 * 3600.0
FAIL_TTL = 600.0
CACHE_MAX = 50_000
QUEUE_MAX = 2_000

KNOWN = {
    "gmail.com": "Gmail",
    "googlemail.com": "Gmail",
    "outlook.com": "Microsoft",
    "hotmail.com": "Microsoft",
    "live.com": "Microsoft",
    "msn.com": "Microsoft",
    "yahoo.com": "Yahoo",
    "ymail.com": "Yahoo",
    "aol.com": "Yahoo",
    "rocketmail.com": "Yahoo",
}
MX_SUFFIXES = (
    ("google.com", "Gmail"),
    ("googlemail.com", "Gmail"),
    ("outlook.com", "Microsoft"),
    ("hotmail.com", "Microsoft"),
    ("yahoodns.net", "Yahoo"),
    ("yahoo.com", "Yahoo"),
    ("aol.com", "Yahoo"),
)


def from_mx(hosts: list[str]) -> str:
    for host in hosts:
        host = host.lower().rstrip(".")
        for suffix, provider in MX_SUFFIXES:
            if host == suffix or host.endswith("." + suffix):
                return provider
    return "other"


def _known(domain: str) -> str | None:
    if domain in KNOWN:
        return KNOWN[domain]
    head = domain.split(".", 1)[0]
    if head in ("yahoo", "hotmail", "outlook", "live") and "." in domain:
        return {"yahoo": "Yahoo"}.get(head, "Microsoft")
    return None


class Classifier:
    def __init__(self, resolver: Any = None) -> None:
        self._cache: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._queue: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._resolver = resolver

    def classify(self, domain: str) -> str | None:
        """The provider, or None (not known yet: queued for the background resolver)."""
        domain = domain.lower().rstrip(".")
        known = _known(domain)
        if known:
            return known
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(domain)
            if hit is not None and hit[1] > now:
                return hit[0]
            if len(self._queue) < QUEUE_MAX:
                self._queue[domain] = None
            self._start()
        self._wake.set()
        return None

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="mx-classifier", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            self._wake.wait(30)
            self._wake.clear()
            while True:
                with self._lock:
                    if not self._queue:
                        break
                    domain, _ = self._queue.popitem(last=False)
                provider, ok = self._lookup(domain)
                with self._lock:
                    self._cache[domain] = (provider, time.monotonic() + (TTL if ok else FAIL_TTL))
                    while len(self._cache) > CACHE_MAX:
                        self._cache.popitem(last=False)

    def _lookup(self, domain: str) -> tuple[str, bool]:
        import dns.exception
        import dns.resolver

        try:
            resolver = self._resolver or dns.resolver.Resolver()
            answer = resolver.resolve(domain, "MX", lifetime=TIMEOUT)
            return from_mx([str(r.exchange) for r in answer]), True
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return "other", True
        except (dns.exception.DNSException, OSError):
            return "other", False


_default: Classifier | None = None
_default_lock = threading.Lock()


def default() -> Classifier:
    global _default
    with _default_lock:
        if _default is None:
            _default = Classifier()
        return _default


def breakdown(counts: dict[str, int], classifier: Classifier | None = None) -> dict[str, int]:
    """Recipient-domain counts folded into providers (plus ``pending`` when not all are known)."""
    classifier = classifier or default()
    out = dict.fromkeys(PROVIDERS, 0)
    for domain, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        provider = classifier.classify(domain) if domain else "other"
        key = provider or "pending"
        out[key] = out.get(key, 0) + n
    return out
