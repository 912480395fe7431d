"""Records of what ran: check results (history), backups (recorded snapshots), invoices (JSON,
and the HTML a person would send)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from penguinctl.identity.principal import Principal
from penguinctl.web.api.deps import ERRORS, allow
from penguinctl.web.api.pages import Page, PageParams, keyset, page, page_list, page_params

router = APIRouter(responses=ERRORS)
READ = Depends(allow("read"))
TenantFilter = Query(None, max_length=63, description="Only this tenant's (platform keys)")


def _db(request: Request) -> Any:
    return request.app.state.web.db


@router.get("/checks", tags=["checks"], summary="Stored check results, newest first",
            response_model=Page)  # fmt: skip
def checks(
    request: Request,
    params: PageParams = Depends(page_params),
    target: str | None = Query(None, max_length=253),
    check: str | None = Query(None, max_length=100, description="A check, or a prefix*"),
    problems: bool = Query(False, description="Only results that are not ok"),
    since: datetime | None = Query(None),
    tenant: str | None = TenantFilter,
    who: Principal = READ,
) -> dict[str, Any]:
    from penguinctl.health.tables import check_results
    from penguinctl.state.columns import aware

    c = check_results.c
    stmt = sa.select(check_results)
    scope = who.scope(tenant)
    if scope is not None:
        stmt = stmt.where(c.tenant == scope)
    if target:
        stmt = stmt.where(c.target == (target.lower().rstrip(".") if "." in target else target))
    if check:
        stmt = stmt.where(
            c.check.startswith(check[:-1]) if check.endswith("*") else c.check == check
        )
    if since is not None:
        stmt = stmt.where(c.checked_at >= since)
    if problems:
        stmt = stmt.where(c.status != "ok")
    with _db(request).connect() as conn:
        rows = conn.execute(keyset(stmt, [c.id], params, desc=True)).all()

    def render(r: Any) -> dict[str, Any]:
        out = dict(r._mapping)
        for k, v in out.items():
            if isinstance(v, datetime):
                out[k] = aware(v).isoformat()
        out["tenant"] = out["tenant"] or None
        return out

    return page(rows, params, key=lambda r: [r.id], render=render)


def _snapshot(s: dict[str, Any]) -> dict[str, Any]:
    return {
        "snapshot_id": s["snapshot_id"],
        "short_id": s["short_id"],
        "server": s["server"],
        "tenant": s["tenant"] or None,
        "time": s["taken_at"].isoformat(),
        "repository": s["repository"],
        "status": s["status"],
        "stats": s["stats"],
    }


@router.get("/backups", tags=["backups"], summary="Recorded backup snapshots",
            response_model=Page)  # fmt: skip
def backups(
    request: Request,
    params: PageParams = Depends(page_params),
    server: str | None = Query(None, max_length=63),
    tenant: str | None = TenantFilter,
    who: Principal = READ,
) -> dict[str, Any]:
    from penguinctl.backup import records

    scope = who.scope(tenant)
    found = [
        _snapshot(s)
        for s in records.list_snapshots(_db(request), server=server)
        if scope is None or (s["tenant"] or "") == scope
    ]
    return page_list(found, params, key=lambda s: [s["server"], s["snapshot_id"]])


@router.get("/backups/{snapshot}", tags=["backups"], summary="One snapshot (id or unique prefix)")
def backup(request: Request, snapshot: str, who: Principal = READ) -> dict[str, Any]:
    from penguinctl.backup import records
    from penguinctl.errors import NotFound

    hits = [
        s
        for s in records.list_snapshots(_db(request))
        if s["snapshot_id"].startswith(snapshot) and who.sees(s["tenant"])
    ]
    if len(hits) != 1 or not snapshot:
        raise NotFound(f"no backup snapshot {snapshot!r}")
    return _snapshot(hits[0])


@router.get("/invoices", tags=["invoices"], summary="Invoices", response_model=Page)
def invoices(
    request: Request,
    params: PageParams = Depends(page_params),
    period: str | None = Query(None, pattern=r"^\d{4}-\d{2}$"),
    tenant: str | None = TenantFilter,
    who: Principal = Depends(allow("invoices.read")),
) -> dict[str, Any]:
    from penguinctl.billing import invoices as service
    from penguinctl.billing.render import to_json

    with _db(request).connect() as conn:
        rows = service.list_invoices(conn, period=period, tenant=who.scope(tenant))
    keep = ("id", "number", "tenant", "period", "total_cents", "currency", "status")
    items = [{k: v for k, v in to_json(r).items() if k in keep} for r in rows]
    return page_list(items, params, key=lambda i: [i["id"]])


def _invoice(request: Request, ref: str, who: Principal) -> dict[str, Any]:
    from penguinctl.billing import invoices as service
    from penguinctl.errors import NotFound

    inv = None
    if not (ref.isdecimal() and int(ref) >= 2**31):  # ids are 32-bit columns on PostgreSQL
        try:
            with _db(request).connect() as conn:
                inv = service.get_invoice(conn, ref)
        except NotFound:
            pass
    if inv is None or not who.sees(inv["tenant"]):
        raise NotFound(f"no invoice {ref!r}")
    return inv


@router.get("/invoices/{ref}", tags=["invoices"], summary="One invoice with its lines")
def invoice(
    request: Request, ref: str, who: Principal = Depends(allow("invoices.read"))
) -> dict[str, Any]:
    from penguinctl.billing.render import to_json

    return to_json(_invoice(request, ref, who))


@router.get("/invoices/{ref}/html", tags=["invoices"], response_class=HTMLResponse,
            summary="One invoice as the HTML a person would send")  # fmt: skip
def invoice_html(
    request: Request, ref: str, who: Principal = Depends(allow("invoices.read"))
) -> HTMLResponse:
    from penguinctl.billing import render
    from penguinctl.services.resources import select

    inv = _invoice(request, ref, who)
    with _db(request).connect() as conn:
        row = conn.execute(select("tenant", tenant=inv["tenant"])).first()
    contact = (row.data or {}).get("contact") if row is not None else None
    page_html = render.html(inv, contact=contact if isinstance(contact, str) else None)
    return HTMLResponse(page_html, headers={"Content-Security-Policy": "default-src 'none'; "
                                            "style-src 'unsafe-inline'"})  # fmt: skip
