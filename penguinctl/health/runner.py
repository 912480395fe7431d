"""Which checks run for which targets, and running them concurrently.

A server gets: FCrDNS of each sending IP; SMTP banner + STARTTLS on 25 and 587, TLS on 465 and
993 with the certificate's expiry; each IP against the IP block lists; over SSH (servers
penguinctl reaches) MailU containers and disk; backup freshness (the last successful backup
older than ``stale_hours``, 25, fails). A domain gets: its DNS records as ``dns verify`` checks
them (FCrDNS there only when its server is not checked too) and the domain block lists.

Every check is one task on a thread pool; a task that raises becomes an ``error`` result, so one
broken check never hides the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from penguinctl import clock
from penguinctl.health import dnsbl, tlsprobe
from penguinctl.health.results import Result

DNS_STATUS = {
    "ok": "ok",
    "unexpected": "warn",
    "invalid": "fail",
    "missing": "fail",
    "mismatch": "fail",
    "error": "error",
}
FAMILIES = ("dns", "fcrdns", "tls", "dnsbl", "remote", "backup")


@dataclass
class Config:
    resolver: Any  # penguinctl.dns.query.Resolver: NS discovery, SPF includes, PTR
    dnsbl_resolver: Any
    nameservers: list[Any] = field(default_factory=list)  # authoritative override
    ip_lists: Sequence[str] = field(default_factory=dnsbl.ip_lists)
    domain_lists: Sequence[str] = field(default_factory=dnsbl.domain_lists)
    connect: str | None = None  # address the TLS/SMTP probes connect to
    ports: dict[int, int] = field(default_factory=dict)  # 25 -> 2525 ...
    cafile: str | None = None
    timeout: float = 8.0
    root: str = "/mailu"
    project: str = "mailu"
    stale_hours: float = 25.0  # for servers whose BackupPolicy has no schedule
    # server name -> the cron schedule of its BackupPolicy (from the recorded spec, or -f)
    backup_schedules: dict[str, str] = field(default_factory=dict)
    # server -> why its backup repository is on the server itself (policy named, or backed up)
    backup_on_server: dict[str, str] = field(default_factory=dict)
    backup_grace: timedelta = timedelta(hours=3)
    skip: frozenset[str] = frozenset()
    workers: int = 16
    now: Callable[[], datetime] = clock.now


@dataclass
class Targets:
    servers: list[Any]  # backup.targets.Target
    domains: list[tuple[str, str, dict]]  # (tenant, domain, data)
    rows: list[Any]  # every resource row (dns verify's expectations need them)


def server_ips(data: dict[str, Any]) -> list[str]:
    ips = data.get("ips")
    if isinstance(ips, list) and ips:
        return [str(i) for i in ips]
    ext = data.get("external") or {}
    if ext.get("ips"):
        return [str(i) for i in ext["ips"]]
    static = data.get("static") or {}
    return [str(static["address"])] if static.get("address") else []


class Runner:
    def __init__(self, app: Any, config: Config) -> None:
        self.app = app
        self.config = config

    # -- tasks -----------------------------------------------------------------------------------
    def tasks(self, targets: Targets) -> list[Callable[[], list[Result]]]:
        cfg, skip = self.config, self.config.skip
        out: list[Callable[[], list[Result]]] = []
        checked_servers = {t.name for t in targets.servers}
        for t in targets.servers:
            base = {"target_kind": "server", "target": t.name, "tenant": t.tenant}
            host = str(t.data.get("hostname") or t.name)
            ips = server_ips(t.data)
            if "fcrdns" not in skip:
                out += [self._bind(self._fcrdns, base, host, ip) for ip in ips]
            if "tls" not in skip:
                probe = tlsprobe.Probe(
                    connect=cfg.connect or (ips[0] if ips else host),
                    server_name=host,
                    timeout=cfg.timeout,
                    cafile=cfg.cafile,
                    now=cfg.now,
                )
                for port, kind in ((25, "smtp"), (587, "smtp"), (465, "smtps"), (993, "imaps")):
                    out.append(self._bind(self._tls, base, probe, port, kind))
            if "dnsbl" not in skip:
                out += [
                    self._bind(self._dnsbl, base, ip, zone) for ip in ips for zone in cfg.ip_lists
                ]
            if "remote" not in skip and t.endpoint is not None:
                out.append(self._bind(self._remote, base, t))
            if "backup" not in skip and t.endpoint is not None:
                out.append(self._bind(self._freshness, base, t))
                if t.name in cfg.backup_on_server:
                    why = cfg.backup_on_server[t.name]
                    out.append(lambda base=base, why=why: [Result(
                        check="backup:offsite", subject="repository", status="fail",
                        detail=f"{why}: a lost server loses its backups too", **base)])  # fmt: skip
        if targets.domains and "dns" not in skip:
            out.append(lambda: self._dns(targets, checked_servers))
        if "dnsbl" not in skip:
            for tenant, domain, _data in targets.domains:
                base = {"target_kind": "domain", "target": domain, "tenant": tenant}
                out += [self._bind(self._dnsbl, base, domain, z) for z in cfg.domain_lists]
        return out

    @staticmethod
    def _bind(fn, *args) -> Callable[[], list[Result]]:
        return lambda: fn(*args)

    def run(self, targets: Targets, progress: Callable[[int, int], None] | None = None):
        tasks = self.tasks(targets)
        results: list[Result] = []
        with ThreadPoolExecutor(max_workers=max(1, self.config.workers)) as pool:
            futures = {pool.submit(task): task for task in tasks}
            for done, fut in enumerate(as_completed(futures), 1):
                try:
                    results.extend(fut.result())
                except Exception as exc:  # one broken check never hides the others
                    results.append(
                        Result(
                            "server",
                            "?",
                            "",
                            "internal",
                            "",
                            "error",
                            f"{type(exc).__name__}: {exc}",
                        )
                    )
                if progress:
                    progress(done, len(tasks))
        order = {"server": 0, "domain": 1}
        results.sort(key=lambda r: (order.get(r.target_kind, 2), r.target, r.check, r.subject))
        return results

    # -- checks ----------------------------------------------------------------------------------
    def _fcrdns(self, base: dict, host: str, ip: str) -> list[Result]:
        from penguinctl.dns.verify import Verifier

        c = Verifier(self.config.resolver)._fcrdns(host, ip)
        status = DNS_STATUS.get(c.status, "fail")
        return [Result(check="fcrdns", subject=ip, status=status, detail=c.detail, **base,
                       data={"expected": c.expected, "found": c.found})]  # fmt: skip

    def _tls(self, base: dict, probe: tlsprobe.Probe, port: int, kind: str) -> list[Result]:
        actual = self.config.ports.get(port, port)
        res = Result(check=f"{kind}:{port}", subject=f"{probe.connect}:{actual}", status="ok",
                     **base)  # fmt: skip
        if kind == "imaps":
            return tlsprobe.imaps(probe, actual, base=res)
        return tlsprobe.smtp(probe, actual, implicit=kind == "smtps", base=res)

    def _dnsbl(self, base: dict, value: str, zone: str) -> list[Result]:
        return [dnsbl.check(self.config.dnsbl_resolver, value, zone, **base)]

    def _remote(self, base: dict, target) -> list[Result]:
        from penguinctl.backup.targets import connect
        from penguinctl.health import remote

        with connect(self.app, target, timeout=60) as conn:
            return remote.check(conn, root=self.config.root, project=self.config.project, base=base)

    def _freshness(self, base: dict, target) -> list[Result]:
        from penguinctl.backup import records

        last = records.last_success(self.app.db, target.name)
        res = Result(check="backup", subject="last successful backup", status="ok", **base)
        if last is None:
            res.status = "fail"
            res.detail = "never backed up (run `penguinctl backup run`)"
            return [res]
        now = self.config.now()
        age = (now - last).total_seconds() / 3600
        res.data = {"last": last.isoformat(), "age_hours": round(age, 1)}
        schedule = self.config.backup_schedules.get(target.name)
        if schedule:
            return [self._fresh_by_schedule(res, last, now, schedule, age)]
        if age > self.config.stale_hours:
            res.status = "fail"
            res.detail = (
                f"last successful backup {age:.0f} h ago (over {self.config.stale_hours:g} h)"
            )
        else:
            res.detail = f"{age:.1f} h ago"
        return [res]

    def _fresh_by_schedule(
        self, res: Result, last: datetime, now: datetime, schedule: str, age: float
    ) -> Result:
        """Fresh when a backup succeeded after the policy's latest tick that is older than
        the grace (a weekly policy is not stale on day 3; a nightly one is on day 2)."""
        from penguinctl.spec.cron import latest_at

        grace = self.config.backup_grace
        expected = latest_at(schedule, now - grace)
        res.data.update(schedule=schedule, expected_after=expected.isoformat())
        if last < expected:
            res.status = "fail"
            res.detail = (
                f"last successful backup {age:.0f} h ago: none since the scheduled run of "
                f"{expected:%Y-%m-%d %H:%M} UTC ('{schedule}', {grace.total_seconds() / 3600:g} h "
                "grace)"
            )
        else:
            res.detail = f"{age:.1f} h ago (schedule '{schedule}')"
        return res

    def _dns(self, targets: Targets, checked_servers: set[str]) -> list[Result]:
        from penguinctl.dns.expectations import build_expectations
        from penguinctl.dns.verify import Verifier

        names = [d for _, d, _ in targets.domains]
        tenants = {d: t for t, d, _ in targets.domains}
        servers = {d: data.get("server") for _, d, data in targets.domains}
        exps = build_expectations(
            targets.rows,
            names,
            secrets=self.app.secrets(),
            resolver=self.config.resolver,
            override=self.config.nameservers,
        )
        out: list[Result] = []
        for exp in exps:
            # FCrDNS belongs to the server: asked there when the server is checked too
            fcrdns = servers.get(exp.domain) not in checked_servers
            verifier = Verifier(self.config.resolver, timeout=min(self.config.timeout, 3.0),
                                fcrdns=fcrdns)  # fmt: skip
            report = verifier.verify_one(exp)
            for c in report.checks:
                check = "fcrdns" if c.type == "PTR" else f"dns:{c.type}"
                out.append(
                    Result(
                        "domain",
                        exp.domain,
                        tenants.get(exp.domain, ""),
                        check,
                        c.name,
                        DNS_STATUS.get(c.status, "fail"),
                        c.detail or c.status,
                        data={"expected": c.expected, "found": c.found},
                    )
                )
        return out


def load_targets(app, names: Sequence[str] | None) -> Targets:
    """Servers and domains named (every recorded one when ``names`` is None)."""
    from penguinctl.backup.targets import Target, endpoint_of
    from penguinctl.errors import UsageError
    from penguinctl.state import repo
    from penguinctl.state.db import session_scope

    with session_scope(app.db) as session:
        rows = [r for r in repo.list_resources(session) if r.status != "pending"]
    servers = {r.name: r for r in rows if r.kind == "server"}
    routes = {n: (r.tenant or "", dict(r.data or {})) for n, r in servers.items()}
    domains = {r.name: r for r in rows if r.kind == "domain"}
    if names is None:
        s_names, d_names = sorted(servers), sorted(domains)
    else:
        s_names, d_names, unknown = [], [], []
        for n in dict.fromkeys(x.lower().rstrip(".") if "." in x else x for x in names):
            if n in servers:
                s_names.append(n)
            elif n in domains:
                d_names.append(n)
            else:
                unknown.append(n)
        if unknown:
            raise UsageError(
                f"not a recorded server or domain: {', '.join(unknown[:5])}",
                hint="see `penguinctl get servers` and `penguinctl get domains`",
            )
    return Targets(
        servers=[
            Target(
                servers[n].tenant,
                n,
                dict(servers[n].data or {}),
                endpoint_of(n, servers[n].data or {}, routes, tenant=servers[n].tenant or ""),
            )
            for n in s_names
        ],
        domains=[(domains[n].tenant, n, dict(domains[n].data or {})) for n in d_names],
        rows=rows,
    )
