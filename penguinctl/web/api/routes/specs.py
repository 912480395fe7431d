"""Specs and plans: ``POST /specs/validate``, ``POST /plans``, ``GET /plans[/{id}]``,
``POST /plans/{id}/apply`` (202 and a status URL: the apply runs as a job in this process, under
the same tenants' lock and with the same error classes as ``penguinctl apply``)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from penguinctl.identity.principal import Principal
from penguinctl.web.api.deps import ERRORS, allow, service_context
from penguinctl.web.api.pages import Page, PageParams, keyset, page, page_params

router = APIRouter(tags=["specs"], responses=ERRORS)


class Documents(BaseModel):
    files: dict[str, str] = Field(
        description="File name -> YAML text (multi-document YAML allowed); errors name the files",
        max_length=200,
    )


class PlanRequest(Documents):
    targets: list[str] = Field(default_factory=list, max_length=100)
    destroy: bool = False
    refresh: bool = True


class ApplyRequest(BaseModel):
    checksum: str = Field(max_length=128, description="The checksum of the plan you reviewed")
    force: bool = Field(False, description="Allow unsafe changes (deletions)")
    parallel: int = Field(4, ge=1, le=64)


@router.post("/specs/validate", summary="Validate spec documents (errors with file:line:col)")
def validate(
    request: Request, body: Documents, who: Principal = Depends(allow("specs.validate"))
) -> dict[str, Any]:
    from penguinctl.plan.confine import check_ownership, recorded_owners
    from penguinctl.services import specs

    ctx = service_context(request, who)
    loaded = specs.load_documents(body.files, tenant=who.tenant)
    check_ownership(loaded, recorded_owners(ctx.db), ctx.settings.zones_dir)
    return {"valid": True, "files": sorted(body.files), "counts": specs.counts(loaded)}


@router.post("/plans", summary="Plan spec documents (the plan as data, with its checksum)",
             status_code=201)  # fmt: skip
def create_plan(
    request: Request, body: PlanRequest, who: Principal = Depends(allow("plans.create"))
) -> JSONResponse:
    from penguinctl.services import plans

    ctx = service_context(request, who)
    row = plans.create(
        ctx, body.files, targets=body.targets, destroy=body.destroy, refresh=body.refresh
    )
    return JSONResponse(
        plans.to_json(row), status_code=201, headers={"Location": f"/api/v1/plans/{row.id}"}
    )


@router.get("/plans", summary="Plans made through the API", response_model=Page)
def list_plans(
    request: Request,
    params: PageParams = Depends(page_params),
    status: str | None = None,
    who: Principal = Depends(allow("read")),
) -> dict[str, Any]:
    from penguinctl.services import plans
    from penguinctl.services.tables import ApiPlan

    t = ApiPlan.__table__
    stmt = sa.select(t)
    if who.tenant is not None:
        stmt = stmt.where(t.c.tenant == who.tenant)
    if status:
        stmt = stmt.where(t.c.status == status)
    with request.app.state.web.db.connect() as conn:
        rows = conn.execute(keyset(stmt, [t.c.created_at, t.c.id], params)).all()
    return page(
        rows,
        params,
        key=lambda r: [r.created_at.isoformat(), r.id],
        render=lambda r: plans.to_json(ApiPlan(**r._mapping), with_plan=False),
    )


@router.get("/plans/{plan_id}", summary="A plan and its apply status (the status URL)")
def get_plan(
    request: Request, plan_id: str, who: Principal = Depends(allow("read"))
) -> dict[str, Any]:
    from penguinctl.services import plans
    from penguinctl.state.db import session_scope

    with session_scope(request.app.state.web.db) as session:
        return plans.to_json(plans.get(session, plan_id, tenant=who.tenant))


@router.post("/plans/{plan_id}/apply", summary="Apply a plan (asynchronous: 202, status URL)",
             status_code=202)  # fmt: skip
async def apply_plan(
    request: Request,
    plan_id: str,
    body: ApplyRequest,
    who: Principal = Depends(allow("plans.apply")),
) -> JSONResponse:
    from penguinctl.services import plans

    ctx = service_context(request, who)
    row = await run_in_threadpool(plans.start_apply, ctx, plan_id, body.checksum)
    web = request.app.state.web
    beats = web.plan_heartbeats()
    web.track_apply(
        plans.start_thread(ctx, plan_id, force=body.force, parallel=body.parallel, beats=beats)
    )
    status_url = f"/api/v1/plans/{plan_id}"
    return JSONResponse(
        {**plans.to_json(row, with_plan=False), "status_url": status_url},
        status_code=202,
        headers={"Location": status_url},
    )
