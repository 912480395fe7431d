"""Recorded resources (tenants, servers, domains, mailboxes, DKIM keys, DNS records): the
summaries ``get`` prints and the API lists, and ``describe``'s whole record."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from penguinctl.errors import NotFound
from penguinctl.services.kinds import KINDS, kind_of  # noqa: F401 - re-exported
from penguinctl.state import compiled, repo
from penguinctl.state.compiled import Compiled, Steps
from penguinctl.state.models import ResourceRow


def _ts(row: Any) -> str | None:
    ts = getattr(row, "created_at", None)
    return ts.isoformat(timespec="seconds") if ts else None


def summary(kind: str, row: Any) -> dict[str, Any]:
    """The one-line view of a resource row (``get``'s columns)."""
    d = row.data or {}
    base = {"name": row.name, "tenant": row.tenant or None}
    if kind == "tenant":
        return {"name": row.name, "plan": d.get("plan"), "contact": d.get("contact")}
    if kind == "server":
        ips = d.get("ips")
        cost = d.get("monthly_cost")
        return {
            **base,
            "provider": d.get("provider"),
            "hostname": d.get("hostname"),
            "ips": ", ".join(ips) if isinstance(ips, list) else "",
            "status": d.get("status") or row.status,
            "monthly_cost": f"{cost:.2f}" if isinstance(cost, int | float) else None,
        }
    if kind == "domain":
        return {
            **base,
            "server": d.get("server"),
            "dns": d.get("dns"),
            "dmarc": (d.get("dmarc") or {}).get("policy"),
        }
    if kind == "mailbox":
        return {**base, "display_name": d.get("display_name"), "daily_limit": d.get("daily_limit")}
    if kind == "dkim":
        pub = d.get("public_key") or ""
        return {
            **base,
            "domain": d.get("domain"),
            "selector": d.get("selector"),
            "phase": d.get("phase") or "active",
            "bits": d.get("bits"),
            "created": _ts(row),
            "public_key": pub[:24] + "...",
        }
    if kind == "dnsrecord":
        return {
            "zone": d.get("zone"),
            "name": d.get("name"),
            "type": d.get("type"),
            "ttl": d.get("ttl"),
            "values": d.get("values"),
        }
    return {**base, **d}


def rows(session: Session, kind: str, name: str | None, tenant: str | None) -> list[Any]:
    return repo.list_resources(session, kind=kind, tenant=tenant, name=name)


def select(kind: str, *, tenant: str | None = None, name: str | None = None,
           where: dict[str, Any] | None = None) -> Any:  # fmt: skip
    """A Core select of ``kind``'s rows (for keyset pages: order by name, tenant)."""
    t = ResourceRow.__table__
    stmt = sa.select(t).where(t.c.kind == kind)
    if tenant is not None:
        stmt = stmt.where(t.c.tenant == tenant)
    if name is not None:
        stmt = stmt.where(t.c.name == name)
    return stmt


_T = ResourceRow.__table__


def list_select(kind: str, *, tenant: Any = None) -> tuple[Any, Any]:
    """A Core select of ``kind``'s rows for a list page, and the function rendering a row as
    ``summary`` does. Domains read only their summary fields from the JSON column (decoding
    whole documents dominated a 100-item page)."""
    if kind != "domain":
        return select(kind, tenant=tenant), lambda r: summary(kind, r)
    data = _T.c.data
    stmt = sa.select(
        _T.c.name,
        _T.c.tenant,
        data["server"].as_string().label("server"),
        data["dns"].as_string().label("dns"),
        data[("dmarc", "policy")].as_string().label("dmarc"),
    ).where(_T.c.kind == "domain")
    if tenant is not None:
        stmt = stmt.where(_T.c.tenant == tenant)

    def render(r: Any) -> dict[str, Any]:
        return {"name": r.name, "tenant": r.tenant or None, "server": r.server, "dns": r.dns,
                "dmarc": r.dmarc}  # fmt: skip

    return stmt, render


# built once (and compiled once per dialect: ``Compiled``): describe is the API's hottest
# read (a statement costs more to build than to run)
_ANY_ROW_STMT = (
    sa.select(_T)
    .where(_T.c.kind == sa.bindparam("kind"), _T.c.name == sa.bindparam("name"))
    .order_by(_T.c.tenant)
    .limit(1)
)
_ANY_ROW = Compiled(_ANY_ROW_STMT)
_ROW = Compiled(_ANY_ROW_STMT.where(_T.c.tenant == sa.bindparam("tenant")))
# a domain's keys and records are named "<domain>/...": a range on the unique index (tenant,
# kind, name) finds them; its mailboxes ("local@<domain>") are the tenant's mailboxes ending so.
# Two index searches in a UNION ALL: one OR over both made SQLite scan the tenant's every row.
# (kinds as literals: with bound kinds SQLite's planner picked the tenant index and scanned)
_KEYS_AND_RECORDS = sa.select(_T.c.id, _T.c.kind, _T.c.name, _T.c.data).where(
    _T.c.tenant == sa.bindparam("tenant"),
    _T.c.kind.in_([sa.literal_column("'dkim'"), sa.literal_column("'dnsrecord'")]),
    _T.c.name > sa.bindparam("lo"),
    _T.c.name < sa.bindparam("hi"),
)
_MAILBOXES = sa.select(_T.c.id, _T.c.kind, _T.c.name, _T.c.data).where(
    _T.c.tenant == sa.bindparam("tenant"),
    _T.c.kind == sa.literal_column("'mailbox'"),
    _T.c.name.like(sa.bindparam("mailbox")),
)
_RELATED = Compiled(sa.union_all(_KEYS_AND_RECORDS, _MAILBOXES))  # sorted by id here
# a tenant key's domain with everything related, in one round trip: the domain's own row is
# the one of kind "domain" (the related rows are keys, records and mailboxes)
_DOMAIN_COLUMNS = (_T.c.id, _T.c.kind, _T.c.name, _T.c.data, _T.c.provider, _T.c.status,
                   _T.c.created_at, _T.c.updated_at)  # fmt: skip


def _padded(stmt: Any) -> Any:
    return stmt.add_columns(
        sa.null().label("provider"),
        sa.null().label("status"),
        sa.null().label("created_at"),
        sa.null().label("updated_at"),
    )


_DOMAIN_WITH_RELATED = Compiled(
    sa.union_all(
        sa.select(*_DOMAIN_COLUMNS).where(
            _T.c.tenant == sa.bindparam("tenant"),
            _T.c.kind == sa.literal_column("'domain'"),
            _T.c.name == sa.bindparam("name"),
        ),
        _padded(_KEYS_AND_RECORDS),
        _padded(_MAILBOXES),
    )
)


def _related_params(tenant: str, name: str) -> dict[str, str]:
    return {"tenant": tenant, "lo": f"{name}/", "hi": f"{name}0", "mailbox": f"%@{name}"}


def describe(
    session: Session, kind: str, name: str, *, tenant: str | None = None
) -> dict[str, Any]:
    """Everything recorded about one resource (a domain: with its keys, mailboxes, records).
    ``tenant``: only that tenant's (another tenant's is not found, like a missing one)."""
    return compiled.run(describe_steps(kind, name, tenant=tenant), session)


def describe_steps(kind: str, name: str, *, tenant: str | None = None) -> Steps[dict[str, Any]]:
    """``describe`` as steps (``penguinctl.state.compiled``): the API runs them on its own
    connections."""
    related: list[Any] | None = None
    if kind == "domain" and tenant is not None:
        found = yield _DOMAIN_WITH_RELATED, {**_related_params(tenant, name), "name": name}
        mine = [r for r in found if r.kind == "domain"]
        row = mine[0] if mine else None
        related = sorted((r for r in found if r.kind != "domain"), key=lambda r: r.id)
        row_tenant = tenant
    elif tenant is None:
        found = yield _ANY_ROW, {"kind": kind, "name": name}
        row = found[0] if found else None
        row_tenant = row.tenant if row is not None else ""
    else:
        found = yield _ROW, {"kind": kind, "name": name, "tenant": tenant}
        row = found[0] if found else None
        row_tenant = tenant
    if row is None:
        raise NotFound(f"{kind} {name!r} is not recorded", hint=f"see `penguinctl get {kind}`")
    doc: dict[str, Any] = {
        "kind": kind,
        "name": row.name,
        "tenant": row_tenant or None,
        "provider": row.provider,
        "status": row.status,
        "created_at": _ts(row),
        "updated_at": row.updated_at.isoformat(timespec="seconds") if row.updated_at else None,
        "data": row.data,
    }
    if kind == "domain":
        if related is None:
            found = yield _RELATED, _related_params(row_tenant, name)
            related = sorted(found, key=lambda r: r.id)
        doc["dkim"] = [r.data for r in related if r.kind == "dkim" and r.data["domain"] == name]
        doc["mailboxes"] = [
            r.name for r in related if r.kind == "mailbox" and r.data["domain"] == name
        ]
        doc["records"] = [
            r.data for r in related if r.kind == "dnsrecord" and r.data["zone"] == name
        ]
    return doc
