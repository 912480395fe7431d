"""Asking DNS: authoritative servers directly, or a recursive resolver. Used by ``dns verify`` and
by DKIM rotation ("published" means the zone's servers answer with the new key).

- ``Nameserver`` is an address and a port (``host[:port]`` or ``[v6]:port`` on the command line).
- ``ask(server, name, type)`` sends one non-recursive query over UDP (EDNS, 1232 octets), repeats
  it over TCP when the answer is truncated, and retries timeouts with backoff. The answer is an
  ``Answer``: ``NOERROR`` with values, ``NODATA``, ``NXDOMAIN``, or ``ERROR`` with the reason
  (``REFUSED``, "not authoritative", a timeout).
- ``Resolver`` wraps ``dns.resolver.Resolver`` (system configuration, or the given servers) for
  lookups that need recursion: NS discovery, SPF ``include:`` targets, PTR and forward-confirmed
  reverse DNS. Answers are cached for the run.
- Values come back in the shape of ``penguinctl.dns.records``: TXT character-strings joined, MX
  ``"10 host."``, names absolute with the trailing dot, addresses canonical; sorted, deduplicated.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.resolver
import dns.reversename

from penguinctl.errors import UsageError

UDP_PAYLOAD = 1232
BACKOFF = 0.2


@dataclass(frozen=True, order=True)
class Nameserver:
    address: str
    port: int = 53
    label: str = field(default="", compare=False)  # the name it was given as (ns1.example)

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        shown = f"{host}:{self.port}" if self.port != 53 else host
        return f"{self.label} ({shown})" if self.label and self.label != self.address else shown

    @classmethod
    def parse(cls, text: str) -> Nameserver:
        """``host``, ``host:port``, ``v6addr`` or ``[v6addr]:port``; a host name is resolved."""
        text = text.strip()
        host, port = text, 53
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            if rest:
                port = _port(rest.removeprefix(":"), text)
        elif text.count(":") == 1:
            host, _, p = text.partition(":")
            port = _port(p, text)
        if not host:
            raise UsageError(f"{text!r} is not a name server", hint="use HOST or HOST:PORT")
        try:
            return cls(str(ipaddress.ip_address(host)), port)
        except ValueError:
            pass
        try:
            info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except OSError:
            raise UsageError(
                f"cannot resolve name server {host!r}", hint="give its IP address instead"
            ) from None
        return cls(str(info[0][4][0]), port, host)


def _port(text: str, whole: str) -> int:
    if not text.isdecimal() or not 0 < int(text) < 65536:
        raise UsageError(f"{whole!r}: bad port", hint="use HOST:PORT with a port of 1-65535")
    return int(text)


@dataclass(frozen=True)
class Answer:
    status: str  # NOERROR | NODATA | NXDOMAIN | ERROR
    values: tuple[str, ...] = ()
    ttl: int | None = None
    error: str = ""

    @property
    def exists(self) -> bool:
        return self.status == "NOERROR" and bool(self.values)


def rdataset_values(rds: Iterable) -> list[str]:
    """Values of an RRset in the shape of ``penguinctl.dns.records`` (sorted, unique)."""
    values: set[str] = set()
    for rd in rds:
        if rd.rdtype == dns.rdatatype.TXT:
            values.add(b"".join(rd.strings).decode("utf-8", errors="replace"))
        elif rd.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            values.add(str(ipaddress.ip_address(rd.address)))
        else:
            values.add(rd.to_text().lower())
    return sorted(values)


def ask(
    server: Nameserver,
    name: str,
    rtype: str,
    *,
    timeout: float = 2.0,
    retries: int = 2,
) -> Answer:
    """One authoritative question to ``server`` (see the module docstring)."""
    qname = dns.name.from_text(name)
    rdtype = dns.rdatatype.from_text(rtype)
    query = dns.message.make_query(qname, rdtype, use_edns=0, payload=UDP_PAYLOAD)
    query.flags &= ~dns.flags.RD
    last = "timeout"
    for attempt in range(retries + 1):
        try:
            resp = dns.query.udp(query, server.address, timeout=timeout, port=server.port)
            if resp.flags & dns.flags.TC:
                resp = dns.query.tcp(query, server.address, timeout=timeout, port=server.port)
        except dns.exception.Timeout:
            last = f"no answer in {timeout:g} s"
            if attempt < retries:
                time.sleep(BACKOFF * 2**attempt)
            continue
        except (OSError, dns.exception.DNSException) as exc:
            return Answer("ERROR", error=getattr(exc, "strerror", None) or type(exc).__name__)
        return _answer(resp, qname, rdtype)
    return Answer("ERROR", error=f"{last} after {retries + 1} attempts")


def _answer(resp: dns.message.Message, qname: dns.name.Name, rdtype) -> Answer:
    rcode = resp.rcode()
    if rcode == dns.rcode.NXDOMAIN:
        return Answer("NXDOMAIN")
    if rcode != dns.rcode.NOERROR:
        return Answer("ERROR", error=dns.rcode.to_text(rcode))
    if not resp.flags & dns.flags.AA:
        return Answer("ERROR", error="not authoritative for this name")
    rrset = resp.get_rrset(resp.answer, qname, dns.rdataclass.IN, rdtype)
    if rrset is None:
        cname = resp.get_rrset(resp.answer, qname, dns.rdataclass.IN, dns.rdatatype.CNAME)
        if cname is not None:
            return Answer("ERROR", error=f"a CNAME to {cname[0].target} is at this name")
        return Answer("NODATA")
    return Answer("NOERROR", tuple(rdataset_values(rrset)), rrset.ttl)


class Resolver:
    """Recursive lookups with a per-run cache (see the module docstring)."""

    def __init__(
        self, servers: Sequence[Nameserver] = (), *, timeout: float = 3.0, lifetime: float = 8.0
    ) -> None:
        if servers:
            self._r = dns.resolver.Resolver(configure=False)
            self._r.nameservers = [s.address for s in servers]
            self._r.nameserver_ports = {s.address: s.port for s in servers}
        else:
            try:
                self._r = dns.resolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                raise UsageError(
                    "no system resolver is configured", hint="pass --resolver HOST[:PORT]"
                ) from None
        self._r.timeout = timeout
        self._r.lifetime = lifetime
        self._cache: dict[tuple[str, str], Answer] = {}
        self._lock = threading.Lock()
        self.described = ", ".join(str(s) for s in servers) or "the system resolver"

    def lookup(self, name: str, rtype: str) -> Answer:
        key = (name.lower().rstrip(".") + ".", rtype)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None:
            return hit
        try:
            ans = self._r.resolve(key[0], rtype, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            result = Answer("NXDOMAIN")
        except dns.resolver.NoNameservers as exc:
            result = Answer("ERROR", error=f"no server answered ({_short(exc)})")
        except dns.resolver.LifetimeTimeout:
            result = Answer("ERROR", error="timed out")
        except dns.exception.DNSException as exc:
            result = Answer("ERROR", error=_short(exc))
        else:
            if ans.rrset is None:
                result = Answer("NODATA")
            else:
                result = Answer("NOERROR", tuple(rdataset_values(ans.rrset)), ans.rrset.ttl)
        with self._lock:
            self._cache[key] = result
        return result

    def txt(self, name: str) -> list[str]:
        """TXT strings at ``name`` (empty when there are none); raises on lookup errors."""
        ans = self.lookup(name, "TXT")
        if ans.status == "ERROR":
            raise LookupError(f"TXT lookup of {name} failed: {ans.error}")
        return list(ans.values)

    def ptr(self, ip: str) -> Answer:
        return self.lookup(dns.reversename.from_address(ip).to_text(), "PTR")

    def addresses(self, host: str) -> tuple[list[str], str]:
        """A and AAAA of ``host``; the second item is an error text when a lookup failed."""
        found: list[str] = []
        errors = []
        for rtype in ("A", "AAAA"):
            ans = self.lookup(host, rtype)
            if ans.status == "ERROR":
                errors.append(f"{rtype}: {ans.error}")
            found.extend(ans.values)
        return found, "; ".join(errors)

    def nameservers(self, zone: str) -> list[Nameserver]:
        """The zone's NS hosts and their addresses, as found by this resolver."""
        ans = self.lookup(zone, "NS")
        if not ans.exists:
            return []
        out: list[Nameserver] = []
        for ns in ans.values:
            addrs, _ = self.addresses(ns)
            out.extend(Nameserver(a, 53, ns.rstrip(".")) for a in addrs)
        return sorted(set(out))


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]
