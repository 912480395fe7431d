"""What happened: the audit log, scheduled jobs and their runs, events, webhook endpoints and
their deliveries. Newest first, keyset pages, a tenant key sees its own tenant's only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from penguinctl.identity.principal import Principal
from penguinctl.web.api.deps import ERRORS, allow, service_context
from penguinctl.web.api.pages import Page, PageParams, keyset, page, page_list, page_params

router = APIRouter(responses=ERRORS)
MAX_ID = 2**31 - 1  # integer ids are 32-bit columns on PostgreSQL
READ = Depends(allow("read"))
TenantFilter = Query(None, max_length=63, description="Only this tenant's (platform keys)")
Since = Query(None, description="Only since this instant (ISO 8601)")


def _db(request: Request) -> Any:
    return request.app.state.web.db


@router.get("/audit", tags=["audit"], summary="The audit log, newest first", response_model=Page)
def audit(
    request: Request,
    params: PageParams = Depends(page_params),
    tenant: str | None = TenantFilter,
    actor: str | None = Query(None, max_length=200),
    action: str | None = Query(None, max_length=100),
    resource: str | None = Query(None, max_length=300, description="Resources containing this"),
    since: datetime | None = Since,
    who: Principal = Depends(allow("audit.read")),
) -> dict[str, Any]:
    from penguinctl.state.columns import aware
    from penguinctl.state.models import AuditEvent

    t = AuditEvent.__table__
    stmt = sa.select(t)
    scope = who.scope(tenant)
    if scope is not None:
        stmt = stmt.where(t.c.tenant == scope)
    if actor:
        stmt = stmt.where(t.c.actor == actor)
    if action:
        stmt = stmt.where(t.c.action == action)
    if resource:
        stmt = stmt.where(t.c.resource.contains(resource, autoescape=True))
    if since is not None:
        stmt = stmt.where(t.c.ts >= since)
    with _db(request).connect() as conn:
        rows = conn.execute(keyset(stmt, [t.c.id], params, desc=True)).all()

    def render(r: Any) -> dict[str, Any]:
        return {
            "id": r.id,
            "ts": aware(r.ts).isoformat(),
            "actor": r.actor,
            "tenant": r.tenant or None,
            "action": r.action,
            "resource": r.resource,
            "result": r.result,
            "run_id": r.run_id,
            "details": r.details,
        }

    return page(rows, params, key=lambda r: [r.id], render=render)


@router.get("/jobs", tags=["jobs"], summary="Scheduled job series", response_model=Page)
def jobs(
    request: Request, params: PageParams = Depends(page_params), who: Principal = READ
) -> dict[str, Any]:
    from penguinctl.control import series

    rows = [r for r in series.listing(_db(request)) if who.sees(r["tenant"])]
    return page_list(rows, params, key=lambda r: [r["job"], r["tenant"], r["target"]])


@router.get("/jobs/runs", tags=["jobs"], summary="Job runs, newest first", response_model=Page)
def job_runs(
    request: Request,
    params: PageParams = Depends(page_params),
    job: str | None = Query(None, max_length=100),
    status: str | None = Query(None, max_length=20),
    tenant: str | None = TenantFilter,
    who: Principal = READ,
) -> dict[str, Any]:
    from penguinctl.control import runs
    from penguinctl.control.tables import JobRun

    t = JobRun.__table__
    stmt = sa.select(t)
    scope = who.scope(tenant)
    if scope is not None:
        stmt = stmt.where(t.c.tenant == scope)
    if job:
        stmt = stmt.where(t.c.job == job)
    if status:
        stmt = stmt.where(t.c.status == status)
    with _db(request).connect() as conn:
        rows = conn.execute(keyset(stmt, [t.c.id], params, desc=True)).all()
    return page(rows, params, key=lambda r: [r.id], render=runs.to_json)


@router.get("/jobs/runs/{run_id}", tags=["jobs"], summary="One job run")
def job_run(
    request: Request, run_id: int = Path(ge=1, le=MAX_ID), who: Principal = READ
) -> dict[str, Any]:
    from penguinctl.control import runs
    from penguinctl.control.tables import JobRun
    from penguinctl.errors import NotFound

    t = JobRun.__table__
    with _db(request).connect() as conn:
        row = conn.execute(sa.select(t).where(t.c.id == run_id)).first()
    if row is None or not who.sees(row.tenant):
        raise NotFound(f"no job run {run_id}")
    return runs.to_json(row)


@router.get("/events", tags=["events"], summary="Events, newest first", response_model=Page)
def events(
    request: Request,
    params: PageParams = Depends(page_params),
    type: list[str] | None = Query(None, max_length=20, description="Types or prefix.* patterns"),
    tenant: str | None = TenantFilter,
    since: datetime | None = Since,
    who: Principal = READ,
) -> dict[str, Any]:
    from penguinctl.events.query import EV, to_json

    stmt = sa.select(EV)
    scope = who.scope(tenant)
    if scope is not None:
        stmt = stmt.where(EV.c.tenant == scope)
    if since is not None:
        stmt = stmt.where(EV.c.occurred_at >= since)
    if type:
        exact = [t for t in type if not t.endswith(".*")]
        prefixes = [t[:-1] for t in type if t.endswith(".*")]
        stmt = stmt.where(
            sa.or_(EV.c.type.in_(exact), *(EV.c.type.startswith(p) for p in prefixes))
        )
    with _db(request).connect() as conn:
        rows = conn.execute(keyset(stmt, [EV.c.seq], params, desc=True)).all()
    return page(rows, params, key=lambda r: [r.seq], render=to_json)


@router.get("/events/{event_id}", tags=["events"], summary="One event")
def event(request: Request, event_id: str, who: Principal = READ) -> dict[str, Any]:
    from penguinctl.errors import NotFound
    from penguinctl.events.query import get_event

    found = get_event(_db(request), event_id)
    if found is None or not who.sees(found["tenant"]):
        raise NotFound(f"no event {event_id}")
    return found


class NewWebhook(BaseModel):
    url: str = Field(max_length=2000)
    tenant: str | None = Field(None, max_length=63, description="Platform keys only")
    events: list[str] = Field(default_factory=list, max_length=50)
    description: str = Field("", max_length=500)
    allow_private: bool = Field(False, description="Platform keys only")


@router.get("/webhooks", tags=["webhooks"], summary="Webhook endpoints", response_model=Page)
def webhooks(
    request: Request, params: PageParams = Depends(page_params), who: Principal = READ
) -> dict[str, Any]:
    from penguinctl.webhooks import endpoints

    found = [e.to_json() for e in endpoints.list_endpoints(_db(request), tenant=who.tenant)]
    return page_list(found, params, key=lambda e: [e["id"]])


@router.post("/webhooks", tags=["webhooks"], status_code=201,
             summary="Add an endpoint (its signing secret is in the answer, once)")  # fmt: skip
def add_webhook(
    request: Request, body: NewWebhook, who: Principal = Depends(allow("webhooks.manage"))
) -> JSONResponse:
    from penguinctl.errors import Forbidden
    from penguinctl.webhooks import endpoints

    if who.tenant is not None and (body.tenant not in (None, who.tenant) or body.allow_private):
        raise Forbidden("a tenant key adds public endpoints of its own tenant only")
    ctx = service_context(request, who)
    ep, secret = endpoints.add(
        ctx.db,
        ctx.secrets(),
        body.url,
        tenant=who.tenant if who.tenant is not None else (body.tenant or ""),
        event_types=[t.strip() for t in body.events if t.strip()],
        description=body.description,
        allow_private=body.allow_private,
        actor=who.actor,
    )
    return JSONResponse({**ep.to_json(), "secret": secret}, status_code=201)


@router.get("/webhooks/{endpoint_id}", tags=["webhooks"], summary="One webhook endpoint")
def webhook(request: Request, endpoint_id: str, who: Principal = READ) -> dict[str, Any]:
    from penguinctl.webhooks import endpoints

    return endpoints.get(_db(request), endpoint_id, tenant=who.tenant).to_json()


@router.delete("/webhooks/{endpoint_id}", tags=["webhooks"], summary="Remove an endpoint")
def remove_webhook(
    request: Request, endpoint_id: str, who: Principal = Depends(allow("webhooks.manage"))
) -> dict[str, Any]:
    from penguinctl.webhooks import endpoints

    ctx = service_context(request, who)
    ep = endpoints.remove(ctx.db, ctx.secrets(), endpoint_id, actor=who.actor, tenant=who.tenant)
    return {"removed": ep.id}


@router.get("/webhooks/{endpoint_id}/deliveries", tags=["webhooks"], response_model=Page,
            summary="An endpoint's deliveries, newest first")  # fmt: skip
def deliveries(
    request: Request,
    endpoint_id: str,
    params: PageParams = Depends(page_params),
    who: Principal = READ,
) -> dict[str, Any]:
    from penguinctl.webhooks import endpoints
    from penguinctl.webhooks.deliveries import list_deliveries

    endpoints.get(_db(request), endpoint_id, tenant=who.tenant)  # 404 unless visible
    found = list_deliveries(_db(request), endpoint_id=endpoint_id, tenant=who.tenant, limit=1000)
    return page_list(found, params, key=lambda d: [-d["id"]])
