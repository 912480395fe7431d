"""Recorded resources: tenants, servers, domains (with their DNS records, DNS status and
``POST .../verify``), mailboxes, DNS providers, DKIM (status, ``rotate``). Lists are keyset
pages ordered by name (then tenant); a tenant key sees its own tenant's rows only, and another
tenant's object answers 404 exactly like a missing one."""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request

from penguinctl.identity.principal import Principal
from penguinctl.state.compiled import Steps
from penguinctl.web.api.deps import ERRORS, allow, service_context
from penguinctl.web.api.fastjson import FastJSON
from penguinctl.web.api.pages import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    Keyset,
    Page,
    PageParams,
    keyset,
    page,
    page_params,
)
from penguinctl.web.api.reads import read

router = APIRouter(responses=ERRORS)
READ = Depends(allow("read"))
TenantFilter = Query(None, max_length=63, description="Only this tenant's (platform keys)")
NameFilter = Query(None, max_length=253, description="Names starting with this")
LimitParam = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Items per page")
CursorParam = Query(None, max_length=512, description="next_cursor of a page")


@functools.cache
def _list_query(kind: str, *, scoped: bool) -> tuple[Keyset, Any, Any]:
    """A list's page query built once (``Keyset``), its row renderer and its rows' sort key;
    ``scoped``: limited to the tenant bound as ``tenant``. Domains (the longest lists) as
    plain tuples."""
    from penguinctl.services.resources import list_select
    from penguinctl.state.models import ResourceRow

    t = ResourceRow.__table__
    stmt, render = list_select(kind, tenant=sa.bindparam("tenant") if scoped else None)
    if kind == "domain":

        def render(r: Any) -> dict[str, Any]:  # the same as list_select's, from the tuple
            name, tenant, server, dns, dmarc = r
            return {"name": name, "tenant": tenant or None, "server": server, "dns": dns,
                    "dmarc": dmarc}  # fmt: skip

        return Keyset(stmt, [t.c.name, t.c.tenant], plain=True), render, lambda r: r[:2]
    return Keyset(stmt, [t.c.name, t.c.tenant]), render, _by_name


def _list(kind: str, who: Principal, params: PageParams, tenant: str | None,
          prefix: str | None) -> Steps[dict[str, Any]]:  # fmt: skip
    from penguinctl.services.resources import list_select
    from penguinctl.state.models import ResourceRow

    t = ResourceRow.__table__
    scope = who.scope(tenant)
    if prefix:  # a name filter: built for the request
        stmt, render = list_select(kind, tenant=scope)
        stmt = stmt.where(t.c.name.startswith(prefix, autoescape=True))
        query, values, key = keyset(stmt, [t.c.name, t.c.tenant], params), {}, _by_name
    else:
        built, render, key = _list_query(kind, scoped=scope is not None)
        query, values = built.select(params)
        if scope is not None:
            values["tenant"] = scope
    rows = yield query, values
    return page(rows, params, key=key, render=render)


def _by_name(row: Any) -> list[Any]:
    return [row.name, row.tenant]


def _describe(kind: str, name: str, who: Principal) -> Steps[dict[str, Any]]:
    from penguinctl.services.resources import describe_steps

    return describe_steps(kind, name, tenant=who.tenant)


def _register(path: str, kind: str, tag: str, what: str) -> None:
    # async handlers whose reads run on the event loop (``reads``: in place on SQLite, on
    # asynchronous connections on PostgreSQL), answered without a second validation pass (the
    # hot paths of bench/api.py)
    # (the page's parameters declared here, as page_params declares them: one dependency less
    # to solve per request, the same OpenAPI document)
    async def list_kind(
        request: Request,
        tenant: str | None = TenantFilter,
        name: str | None = NameFilter,
        limit: int = LimitParam,
        cursor: str | None = CursorParam,
        who: Principal = READ,
    ) -> Any:
        params = PageParams(limit, cursor)
        return FastJSON(await read(request.app.state.web, _list, kind, who, params, tenant, name))

    async def get_kind(request: Request, name: str, who: Principal = READ) -> Any:
        return FastJSON(await read(request.app.state.web, _describe, kind, name, who))

    list_kind.__name__ = f"list_{path}"
    get_kind.__name__ = f"get_{kind}"
    router.add_api_route(f"/{path}", list_kind, methods=["GET"], response_model=Page,
                         tags=[tag], summary=f"{what} (recorded)")  # fmt: skip
    router.add_api_route(f"/{path}/{{name}}", get_kind, methods=["GET"], tags=[tag],
                         summary=f"One of the {what.lower()}, everything recorded")  # fmt: skip


for _path, _kind, _what in (
    ("tenants", "tenant", "Tenants"),
    ("servers", "server", "Servers"),
    ("domains", "domain", "Domains"),
    ("mailboxes", "mailbox", "Mailboxes"),
    ("dnsproviders", "dnsprovider", "DNS providers"),
):
    _register(_path, _kind, _path, _what)


@router.get("/domains/{name}/dns", tags=["domains"],
            summary="A domain's expected DNS records and its latest check results")  # fmt: skip
def domain_dns(request: Request, name: str, who: Principal = READ) -> dict[str, Any]:
    from penguinctl.health.tables import check_results
    from penguinctl.services import dns

    ctx = service_context(request, who)
    records = dns.expected_records(ctx, name)
    t = check_results
    with ctx.db.connect() as conn:
        last = conn.execute(sa.select(sa.func.max(t.c.run_id)).where(t.c.target == name)).scalar()
        checks = []
        if last is not None:
            rows = conn.execute(
                sa.select(t.c.check, t.c.subject, t.c.status, t.c.detail)
                .where(t.c.run_id == last, t.c.target == name)
                .order_by(t.c.id)
            ).all()
            checks = [dict(r._mapping) for r in rows]
    return {"domain": name, "records": records, "last_check_run": last, "checks": checks}


@router.post("/domains/{name}/verify", tags=["domains"],
             summary="Verify the domain's records at its authoritative servers now")  # fmt: skip
def verify_domain(
    request: Request, name: str, who: Principal = Depends(allow("domains.verify"))
) -> dict[str, Any]:
    from penguinctl.services import dns

    reports = dns.verify_once(service_context(request, who), [name], timeout=2.0)
    return {"ok": all(r.ok for r in reports), "domains": [r.to_json() for r in reports]}


@router.get("/dkim", tags=["dkim"], summary="DKIM keys, phases and next steps per domain",
            response_model=Page)  # fmt: skip
def dkim_status(
    request: Request, params: PageParams = Depends(page_params), who: Principal = READ
) -> dict[str, Any]:
    from penguinctl.services import dkim
    from penguinctl.services.resources import select
    from penguinctl.state.models import ResourceRow

    t = ResourceRow.__table__
    stmt = select("domain", tenant=who.tenant).with_only_columns(t.c.name, t.c.tenant)
    with request.app.state.web.db.connect() as conn:
        rows = conn.execute(keyset(stmt, [t.c.name, t.c.tenant], params)).all()
    shown = [r.name for r in rows[: params.limit]]
    found = {d["domain"]: d for d in dkim.status(service_context(request, who), shown)}
    return page(rows, params, key=lambda r: [r.name, r.tenant], render=lambda r: found[r.name])


@router.get("/dkim/{domain}", tags=["dkim"], summary="One domain's DKIM keys and next step")
def dkim_domain(request: Request, domain: str, who: Principal = READ) -> dict[str, Any]:
    from penguinctl.services import dkim

    return dkim.status(service_context(request, who), [domain])[0]


@router.post("/dkim/{domain}/rotate", tags=["dkim"],
             summary="Start or advance the domain's DKIM rotation")  # fmt: skip
def dkim_rotate(
    request: Request, domain: str, who: Principal = Depends(allow("dkim.rotate"))
) -> dict[str, Any]:
    from penguinctl.services import dkim

    ctx = service_context(request, who)
    done = dkim.rotate(ctx, [domain])
    return {
        "run_id": done.run_id,
        "steps": [s.to_json() for s in done.steps],
        "status": dkim.status(ctx, [domain])[0],
    }
