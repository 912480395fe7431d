"""The Domains pages: one row per domain (server-side paging, filter, search) and a domain's page.

Paging reads one page of ``resources`` rows (``LIMIT``/``OFFSET`` over the unique (tenant, kind,
name) index); the records, keys and latest check results are then read for that page's domains
only, so a page costs the same with 30 domains or 30,000. Every query takes ``scope``: a tenant
name (its rows only) or None (the platform: every tenant).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from penguinctl.health.tables import check_results
from penguinctl.state.columns import aware
from penguinctl.state.models import AuditEvent, ResourceRow

PAGE_SIZE = 50
STATUSES = ("ok", "warn", "fail", "unknown")
FILTERS = ("all", "problems", "rotating", "unchecked")
_R = ResourceRow.__table__
_C = check_results


def _scoped(stmt: Any, scope: str | None, column: Any = None) -> Any:
    return (
        stmt
        if scope is None
        else stmt.where((column if column is not None else _R.c.tenant) == scope)
    )


@dataclass
class Cell:
    """One coloured cell: a short text, a status (ok|warn|fail|unknown) and a longer title."""

    text: str
    status: str = "unknown"
    title: str = ""


@dataclass
class DomainRow:
    name: str
    tenant: str
    server: str
    cells: dict[str, Cell] = field(default_factory=dict)

    @property
    def worst(self) -> str:
        order = {"fail": 3, "warn": 2, "unknown": 1, "ok": 0}
        return max((c.status for c in self.cells.values()), key=order.get, default="unknown")


COLUMNS = ("MX", "SPF", "DKIM", "DMARC", "PTR", "MTA-STS", "TLS-RPT", "Blocklists")


def _check_status(status: str) -> str:
    return {"ok": "ok", "warn": "warn", "warning": "warn"}.get(status, "fail")


def _filtered(scope: str | None, q: str, status: str) -> Any:
    stmt = _scoped(sa.select(_R.c.name, _R.c.tenant, _R.c.data).where(_R.c.kind == "domain"), scope)
    q = q.strip().lower()[:200]
    if q:
        stmt = stmt.where(_R.c.name.contains(q, autoescape=True))
    if status == "problems":
        latest = (
            sa.select(sa.func.max(_C.c.id))
            .where(_C.c.target_kind == "domain")
            .group_by(_C.c.target, _C.c.check, _C.c.subject)
        )
        bad = sa.select(_C.c.target).where(_C.c.id.in_(latest), _C.c.status != "ok")
        stmt = stmt.where(_R.c.name.in_(bad))
    elif status == "unchecked":
        checked = sa.select(_C.c.target).where(_C.c.target_kind == "domain")
        stmt = stmt.where(_R.c.name.not_in(checked))
    elif status == "rotating":
        k = _R.alias("k")
        rotating = (
            sa.select(sa.literal(1))
            .select_from(k)
            .where(
                k.c.kind == "dkim",
                k.c.tenant == _R.c.tenant,
                k.c.name.startswith(_R.c.name + "/"),
                sa.cast(k.c.data, sa.String).not_like('%"phase": "active"%'),
            )
        )
        stmt = stmt.where(rotating.exists())
    return stmt


def page(
    engine: sa.Engine,
    scope: str | None,
    *,
    q: str = "",
    status: str = "all",
    page_no: int = 1,
    now: datetime,
    size: int = PAGE_SIZE,
) -> dict[str, Any]:
    """One page of the domain table: ``{"rows", "total", "page", "pages"}``."""
    status = status if status in FILTERS else "all"
    stmt = _filtered(scope, q, status)
    with engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(stmt.subquery())).scalar_one()
        pages = max(1, -(-total // size))
        page_no = min(max(1, page_no), pages)
        found = conn.execute(
            stmt.order_by(_R.c.name, _R.c.tenant).limit(size).offset((page_no - 1) * size)
        ).all()
        rows = build_rows(conn, [(r.name, r.tenant, r.data or {}) for r in found], now)
    return {"rows": rows, "total": total, "page": page_no, "pages": pages, "size": size}


_SLOTS = PAGE_SIZE


def _related_statement() -> Any:
    """Record and key rows of up to ``_SLOTS`` domains: built once with bound parameters (a
    statement rebuilt per page costs more than the query), one name range per domain, which
    the (tenant, kind, name) index serves."""
    slots = [
        sa.and_(
            _R.c.tenant == sa.bindparam(f"t{i}"),
            _R.c.kind == kind,
            _R.c.name >= sa.bindparam(f"lo{i}"),
            _R.c.name < sa.bindparam(f"hi{i}"),
        )
        for i in range(_SLOTS)
        for kind in ("dnsrecord", "dkim")
    ]
    return sa.select(_R.c.kind, _R.c.tenant, _R.c.name, _R.c.data, _R.c.created_at).where(
        sa.or_(*slots)
    )


_RELATED = _related_statement()


def _related(conn: Any, kind: str, domains: list[tuple[str, str]]) -> list[Any]:
    return [r for r in _related_all(conn, domains) if r.kind == kind]


def _related_all(conn: Any, domains: list[tuple[str, str]]) -> list[Any]:
    out: list[Any] = []
    for start in range(0, len(domains), _SLOTS):
        chunk = domains[start : start + _SLOTS]
        params: dict[str, str] = {}
        for i in range(_SLOTS):
            if i < len(chunk):
                domain, tenant = chunk[i]
                params.update({f"t{i}": tenant, f"lo{i}": f"{domain}/", f"hi{i}": f"{domain}0"})
            else:  # an empty range
                params.update({f"t{i}": "", f"lo{i}": "", f"hi{i}": ""})
        out += conn.execute(_RELATED, params).all()
    return out


def latest_checks(conn: Any, targets: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The latest result of every (check, subject) of each target."""
    if not targets:
        return {}
    latest = (
        sa.select(sa.func.max(_C.c.id))
        .where(_C.c.target.in_(targets))
        .group_by(_C.c.target, _C.c.check, _C.c.subject)
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for r in conn.execute(sa.select(_C).where(_C.c.id.in_(latest))).mappings():
        out.setdefault(r["target"], []).append(dict(r))
    return out


def _spf_lookups(value: str) -> int:
    """DNS lookups the record itself asks for (include, a, mx, ptr, exists, redirect)."""
    n = 0
    for term in value.split()[1:]:
        term = term.lstrip("+-~?").lower()
        lookups = ("include:", "exists:", "redirect=", "a:", "a/", "mx:", "mx/", "ptr:")
        if term.startswith(lookups) or term in ("a", "mx", "ptr"):
            n += 1
    return n


def build_rows(conn: Any, domains: list[tuple[str, str, dict]], now: datetime) -> list[DomainRow]:
    from penguinctl import rotation

    pairs = [(d, t) for d, t, _ in domains]
    records: dict[tuple[str, str], dict[str, dict]] = {}
    keys: dict[tuple[str, str], list[Any]] = {}
    for r in _related_all(conn, pairs):
        if r.kind == "dnsrecord":
            records.setdefault((r.tenant, r.name.split("/", 1)[0]), {})[r.name] = r.data or {}
        else:
            keys.setdefault((r.tenant, r.name.split("/", 1)[0]), []).append(r)
    checks = latest_checks(conn, [d for d, _ in pairs])
    out = []
    for name, tenant, data in domains:
        recs = records.get((tenant, name), {})
        row = DomainRow(name, tenant, str(data.get("server", "")))
        found = {c["check"] + "|" + c["subject"]: c for c in checks.get(name, [])}

        def checked(prefix: str, subject_start: str = "", *, found_=found) -> Any:
            hits = [
                c
                for k, c in found_.items()
                if k.startswith(prefix) and c["subject"].startswith(subject_start)
            ]
            return hits

        def cell(text: str, hits: list[dict], recorded: bool, title: str) -> Cell:
            if hits:
                worst = max(
                    (_check_status(h["status"]) for h in hits),
                    key={"ok": 0, "warn": 1, "fail": 2}.get,
                )
                detail = "; ".join(
                    f"{h['check']} {h['subject']}: {h['detail']}"[:160] for h in hits[:3]
                )
                return Cell(text, worst, f"{title} (last check: {detail})")
            if recorded:
                return Cell(text, "unknown", f"{title} (recorded; not checked yet)")
            return Cell(text or "none", "unknown", f"{title} (not recorded)")

        mx = recs.get(f"{name}/@/MX", {}).get("values") or []
        row.cells["MX"] = cell(
            ", ".join(v.split()[-1].rstrip(".") for v in mx)[:60] or "none",
            checked("dns:MX"),
            bool(mx),
            "MX record",
        )
        spf = next(
            (
                v
                for v in recs.get(f"{name}/@/TXT", {}).get("values") or []
                if v.startswith("v=spf1")
            ),
            "",
        )
        row.cells["SPF"] = cell(
            f"{_spf_lookups(spf)}/10 lookups" if spf else "none",
            [h for h in checked("dns:TXT") if h["subject"].rstrip(".") == name],
            bool(spf),
            spf[:200] or "SPF",
        )
        dk = rotation.DomainKeys(
            domain=name,
            tenant=tenant,
            data=data,
            server=None,
            dns=None,
            keys=sorted(
                (
                    rotation.Key(
                        tenant=k.tenant,
                        selector=k.data.get("selector", ""),
                        phase=k.data.get("phase") or "active",
                        since=_since(k),
                        created=aware(k.created_at),
                        data=k.data,
                    )
                    for k in keys.get((tenant, name), [])
                ),
                key=lambda k: (k.created, k.selector),
            ),
            records=recs,
        )
        active = dk.active
        nxt = rotation.steps(dk)[:1]
        if active is not None:
            age = (now - active.created).days
            text = f"{active.selector} · {active.phase} · {age}d"
            step = f"; next: {nxt[0].action} {nxt[0].due.date().isoformat()}" if nxt else ""
            status_hits = [h for h in checked("dns:TXT") if "._domainkey" in h["subject"]]
            c = cell(text, status_hits, True, f"DKIM key {active.selector}, {age} days old{step}")
            if dk.in_progress and c.status == "ok":
                c.status = "warn"
            if nxt:
                c.text += f" · {nxt[0].action} {nxt[0].due.date().isoformat()}"
            row.cells["DKIM"] = c
        else:
            row.cells["DKIM"] = Cell("no active key", "fail" if dk.keys else "unknown", "DKIM")
        dmarc = (data.get("dmarc") or {}).get("policy") or "none"
        row.cells["DMARC"] = cell(
            f"p={dmarc}",
            [h for h in checked("dns:TXT") if h["subject"].startswith("_dmarc")],
            bool(recs.get(f"{name}/_dmarc/TXT")),
            "DMARC policy",
        )
        row.cells["PTR"] = cell("FCrDNS", checked("fcrdns"), False, "PTR / forward-confirmed rDNS")
        row.cells["MTA-STS"] = cell(
            "on" if recs.get(f"{name}/_mta-sts/TXT") else "off",
            [h for h in checked("dns:TXT") if h["subject"].startswith("_mta-sts")],
            bool(recs.get(f"{name}/_mta-sts/TXT")),
            "MTA-STS",
        )
        row.cells["TLS-RPT"] = cell(
            "on" if recs.get(f"{name}/_smtp._tls/TXT") else "off",
            [h for h in checked("dns:TXT") if h["subject"].startswith("_smtp._tls")],
            bool(recs.get(f"{name}/_smtp._tls/TXT")),
            "TLS-RPT",
        )
        listed = checked("dnsbl:")
        bad = [h for h in listed if h["status"] != "ok"]
        row.cells["Blocklists"] = (
            Cell(f"listed on {len(bad)}", "fail", "; ".join(h["check"][6:] for h in bad)[:300])
            if bad
            else Cell(f"clean ({len(listed)})", "ok", "not listed")
            if listed
            else Cell("not checked", "unknown", "no blocklist check yet")
        )
        out.append(row)
    return out


def _since(k: Any) -> datetime:
    since = (k.data or {}).get("phase_since")
    return aware(datetime.fromisoformat(since)) if since else aware(k.created_at)


def detail(engine: sa.Engine, scope: str | None, name: str, now: datetime) -> dict[str, Any] | None:
    """A domain's page: its row, records, keys, check history and rotation history."""
    with engine.connect() as conn:
        found = conn.execute(
            _scoped(sa.select(_R).where(_R.c.kind == "domain", _R.c.name == name), scope)
        ).first()
        if found is None:
            return None
        row = build_rows(conn, [(found.name, found.tenant, found.data or {})], now)[0]
        recs = [r for r in _related(conn, "dnsrecord", [(found.name, found.tenant)])]
        records = sorted(
            ({"name": r.name.split("/", 1)[1], **(r.data or {})} for r in recs),
            key=lambda r: (r["name"], r.get("type", "")),
        )
        keys = [
            {
                "selector": k.data.get("selector"),
                "phase": k.data.get("phase"),
                "since": _since(k),
                "created": aware(k.created_at),
                "bits": k.data.get("bits"),
                "algorithm": k.data.get("algorithm"),
            }
            for k in _related(conn, "dkim", [(found.name, found.tenant)])
        ]
        history = [
            dict(r) | {"checked_at": aware(r["checked_at"])}
            for r in conn.execute(
                sa.select(_C)
                .where(_C.c.target == found.name, _C.c.tenant == found.tenant)
                .order_by(_C.c.id.desc())
                .limit(200)
            ).mappings()
        ]
        a = AuditEvent.__table__.c
        rotations = [
            dict(r) | {"ts": aware(r["ts"])}
            for r in conn.execute(
                sa.select(AuditEvent.__table__)
                .where(
                    a.action.startswith("dkim."),
                    a.tenant == found.tenant,
                    a.resource.contains(f"/{found.name}/", autoescape=True),
                )
                .order_by(a.id.desc())
                .limit(100)
            ).mappings()
        ]
    return {
        "domain": found.name,
        "tenant": found.tenant,
        "data": found.data or {},
        "row": row,
        "records": records,
        "keys": sorted(keys, key=lambda k: k["created"]),
        "history": history,
        "timeline": timeline(history),
        "rotations": rotations,
    }


def timeline(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check history grouped by run, newest first: when, worst status, counts, problems."""
    runs: dict[int, dict[str, Any]] = {}
    for h in history:
        run = runs.setdefault(
            h["run_id"],
            {"run_id": h["run_id"], "at": h["checked_at"], "counts": {}, "problems": []},
        )
        st = _check_status(h["status"])
        run["counts"][st] = run["counts"].get(st, 0) + 1
        if st != "ok":
            run["problems"].append(f"{h['check']} {h['subject']}: {h['detail']}"[:200])
    out = []
    for run in sorted(runs.values(), key=lambda r: r["run_id"], reverse=True):
        run["status"] = (
            "fail" if run["counts"].get("fail") else "warn" if run["counts"].get("warn") else "ok"
        )
        out.append(run)
    return out
