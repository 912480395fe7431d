"""Live verification of a sending domain's DNS (``penguinctl dns verify``).

Every record penguinctl published (as recorded in the state store) is asked of **each** of the
zone's authoritative servers; a record is ``ok`` only when every server answers it exactly, so
``--wait`` means "propagated to all of them". Statuses, worst last:

- ``ok``: the servers answer exactly the expected values;
- ``unexpected``: the expected values are there, and something else too (a second SPF record, an
  MX to another host, a second DMARC record);
- ``invalid``: published as expected, but it fails a standards check (SPF over 10 lookups, a
  DMARC tag error, a DKIM key that is not the one in the secrets backend);
- ``missing``: the name or the record type is not there;
- ``mismatch``: a different value is published;
- ``error``: the server did not answer properly (timeout, REFUSED, not authoritative).

Besides the records: the mail host resolves to the sending IPs (when it lives outside the zone),
and each sending IP has forward-confirmed reverse DNS (its PTR names the mail host, which
resolves back to it), asked of the recursive resolver.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from penguinctl.dns import lint
from penguinctl.dns.query import Answer, Nameserver, Resolver, ask
from penguinctl.dns.records import Record, in_zone

STATUS_RANK = {"ok": 0, "unexpected": 1, "invalid": 2, "missing": 3, "mismatch": 4, "error": 5}
WORKERS = 32


@dataclass
class Check:
    name: str  # owner relative to the zone ("@", "_dmarc"), a host name, or an IP for PTR
    type: str  # MX, A, AAAA, CNAME, TXT, SPF, DKIM, DMARC, PTR
    status: str
    expected: list[str] = field(default_factory=list)
    found: list[str] = field(default_factory=list)
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "status": self.status,
            "expected": self.expected,
            "found": self.found,
            "detail": self.detail,
        }


@dataclass
class Expectation:
    """What one domain should look like, from the state store and the secrets backend."""

    domain: str
    records: list[Record]
    servers: list[Nameserver]
    mail_host: str | None = None
    sending_ips: list[str] = field(default_factory=list)
    # selector -> public key held by the secrets backend (None: no key there)
    dkim_keys: dict[str, str | None] = field(default_factory=dict)
    problem: str = ""  # why it cannot be verified at all (no authoritative servers found)


@dataclass
class DomainReport:
    domain: str
    servers: list[str]
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "ok": self.ok,
            "servers": self.servers,
            "checks": [c.to_json() for c in self.checks],
        }


def _kind(rec: Record) -> str:
    if rec["type"] != "TXT":
        return rec["type"]
    if rec["name"] == "@":
        return "SPF"
    if rec["name"].endswith("._domainkey"):
        return "DKIM"
    if rec["name"] == "_dmarc":
        return "DMARC"
    return "TXT"


def _fqdn(zone: str, name: str) -> str:
    return f"{zone}." if name == "@" else f"{name}.{zone}."


def compare(kind: str, expected: Sequence[str], answer: Answer) -> Check:
    """The status of one record from one server's answer (name filled in by the caller)."""
    exp = sorted(expected)
    if answer.status == "ERROR":
        return Check("", kind, "error", exp, [], answer.error)
    if not answer.exists:
        what = "no such name" if answer.status == "NXDOMAIN" else "no record of this type"
        return Check("", kind, "missing", exp, [], what)
    found = list(answer.values)
    relevant = [v for v in found if v.lower().startswith("v=spf1")] if kind == "SPF" else found
    want, have = set(exp), set(relevant)
    if not have:
        return Check("", kind, "missing", exp, found, "no SPF record among the TXT records")
    if want == have:
        return Check("", kind, "ok", exp, sorted(have))
    if want < have:
        extra = sorted(have - want)
        why = {
            "SPF": f"{len(have)} SPF records: receivers treat that as a permanent error",
            "MX": "mail is also routed elsewhere: " + ", ".join(extra),
            "DMARC": f"{len(have)} DMARC records: receivers ignore DMARC then",
            "DKIM": f"{len(have)} key records at one selector: verifiers may fail",
        }.get(kind, "also published: " + ", ".join(extra))
        return Check("", kind, "unexpected", exp, sorted(have), why)
    return Check("", kind, "mismatch", exp, sorted(have), "published value differs")


def _worst(per_server: list[tuple[Nameserver, Check]]) -> Check:
    _, worst = max(per_server, key=lambda p: STATUS_RANK[p[1].status])
    if worst.ok:
        return worst
    bad = [ns for ns, c in per_server if c.status == worst.status]
    if len(per_server) > 1:
        where = "all servers" if len(bad) == len(per_server) else ", ".join(map(str, bad))
        worst.detail = f"{worst.detail} (at {where})" if worst.detail else f"at {where}"
    return worst


class Verifier:
    """Runs the checks of many domains concurrently (``WORKERS`` threads)."""

    def __init__(
        self,
        resolver: Resolver,
        *,
        timeout: float = 2.0,
        retries: int = 2,
        fcrdns: bool = True,
        workers: int = WORKERS,
    ) -> None:
        self.resolver = resolver
        self.timeout = timeout
        self.retries = retries
        self.fcrdns = fcrdns
        self.workers = workers

    def verify(
        self,
        expectations: Sequence[Expectation],
        progress: Callable[[int], None] | None = None,
    ) -> list[DomainReport]:
        def one(exp: Expectation) -> DomainReport:
            report = self.verify_one(exp)
            if progress:
                progress(1)
            return report

        if len(expectations) <= 1:
            return [one(e) for e in expectations]
        workers = max(1, min(self.workers, len(expectations)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dns-verify") as pool:
            return list(pool.map(one, expectations))

    # -- one domain ----------------------------------------------------------------------------
    def verify_one(self, exp: Expectation) -> DomainReport:
        servers = [str(s) for s in exp.servers]
        if exp.problem or not exp.servers:
            check = Check("@", "NS", "error", detail=exp.problem or "no authoritative servers")
            return DomainReport(exp.domain, servers, [check])
        checks: list[Check] = []
        for rec in sorted(exp.records, key=lambda r: (r["name"] != "@", r["name"], r["type"])):
            kind = _kind(rec)
            fqdn = _fqdn(exp.domain, rec["name"])
            per_server = []
            for ns in exp.servers:
                answer = ask(ns, fqdn, rec["type"], timeout=self.timeout, retries=self.retries)
                per_server.append((ns, compare(kind, rec["values"], answer)))
            check = _worst(per_server)
            check.name = rec["name"]
            if check.ok:
                self._content(check, exp)
            checks.append(check)
        if exp.mail_host and exp.sending_ips and not in_zone(exp.mail_host, exp.domain):
            checks.append(self._mail_host(exp))
        if self.fcrdns and exp.mail_host:
            checks.extend(self._fcrdns(exp.mail_host, ip) for ip in exp.sending_ips)
        return DomainReport(exp.domain, servers, checks)

    def _content(self, check: Check, exp: Expectation) -> None:
        """Standards checks of a record that is published as expected."""
        value = check.found[0] if check.found else ""
        problems: list[lint.LintProblem] = []
        if check.type == "SPF":
            result = lint.check_spf(value, lookup_txt=self.resolver.txt, domain=exp.domain)
            problems = list(result)
            check.detail = result.summary
        elif check.type == "DMARC":
            problems = lint.check_dmarc(value)
        elif check.type == "DKIM":
            problems = [p for p in lint.check_dkim_key(value) if p.code != "dkim-revoked"]
            selector = check.name.removesuffix("._domainkey")
            published = lint.dkim_public_key(value)
            if published:  # a revoked key (empty p=) has nothing to compare
                held = exp.dkim_keys.get(selector)
                if held is None:
                    check.status = "invalid"
                    check.detail = "the secrets backend holds no key for this selector"
                    return
                if held != published:
                    check.status = "invalid"
                    check.detail = "the published key is not the key in the secrets backend"
                    return
            else:
                check.detail = "revoked (empty p=)"
        errors = [p for p in problems if p.level == "error"]
        notes = [p.message for p in (errors or problems)]
        if errors:
            check.status = "invalid"
        if notes:
            check.detail = "; ".join(filter(None, [check.detail, *notes[:2]]))

    def _mail_host(self, exp: Expectation) -> Check:
        host = exp.mail_host or ""
        addrs, err = self.resolver.addresses(host)
        want = sorted(exp.sending_ips)
        if err and not addrs:
            return Check(host, "A", "error", want, [], err)
        if not addrs:
            return Check(host, "A", "missing", want, [], "the mail host does not resolve")
        missing = sorted(set(want) - set(addrs))
        if missing:
            return Check(
                host, "A", "mismatch", want, sorted(addrs), "not the server: " + ", ".join(missing)
            )
        return Check(host, "A", "ok", want, sorted(addrs))

    def _fcrdns(self, mail_host: str, ip: str) -> Check:
        host = mail_host.lower().rstrip(".") + "."
        ptr = self.resolver.ptr(ip)
        if ptr.status == "ERROR":
            return Check(ip, "PTR", "error", [host], [], f"PTR lookup: {ptr.error}")
        if not ptr.exists:
            return Check(ip, "PTR", "missing", [host], [], "no reverse DNS for the sending IP")
        names = list(ptr.values)
        if host not in names:
            return Check(
                ip, "PTR", "mismatch", [host], names, "the PTR does not name the mail host"
            )
        addrs, err = self.resolver.addresses(host)
        if ip not in addrs:
            why = f"{host} does not resolve back to {ip}" + (f" ({err})" if err else "")
            return Check(ip, "PTR", "mismatch", [host], names, why)
        if len(names) > 1:
            return Check(ip, "PTR", "unexpected", [host], names, "several PTR names")
        return Check(ip, "PTR", "ok", [host], names, "forward-confirmed")
