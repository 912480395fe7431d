"""Campaigns (launch, pause, resume, status, stats, ambiguous sends, resolve), leads (CSV
upload, streamed to disk with a size limit; a person's export and erasure) and suppressions."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from penguinctl.identity.principal import Principal
from penguinctl.web.api.deps import ERRORS, allow, service_context
from penguinctl.web.api.pages import Page, PageParams, page_list, page_params

router = APIRouter(responses=ERRORS)
READ = Depends(allow("read"))
TenantFilter = Query(None, max_length=63, description="The campaign's tenant (platform keys)")
MAX_LEADS_UPLOAD = 256 * 1024 * 1024


class Launch(BaseModel):
    files: dict[str, str] = Field(description="File name -> Campaign YAML", max_length=20)
    force: bool = False


class Pause(BaseModel):
    reason: str | None = Field(None, max_length=500)


class Resolve(BaseModel):
    verdict: str = Field(pattern="^(sent|unsent)$")
    send_ids: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] | None = Field(
        None, max_length=10000, description="None: all"
    )


class Emails(BaseModel):
    emails: list[str] = Field(min_length=1, max_length=1000)
    tenant: str | None = Field(None, max_length=63, description="Platform keys: None is global")
    campaign: str | None = Field(None, max_length=200)
    reason: str = Field("manual", max_length=200)


class Person(BaseModel):
    email: str = Field(max_length=320)


@router.get("/campaigns", tags=["campaigns"], summary="Campaigns and their state",
            response_model=Page)  # fmt: skip
def campaigns(
    request: Request,
    params: PageParams = Depends(page_params),
    tenant: str | None = TenantFilter,
    status: str | None = Query(None, max_length=20),
    who: Principal = READ,
) -> dict[str, Any]:
    from penguinctl.services import campaigns as service

    items = service.status(service_context(request, who), None, tenant)
    if status:
        items = [i for i in items if i["status"] == status]
    return page_list(items, params, key=lambda i: [i["tenant"], i["name"]])


@router.post("/campaigns", tags=["campaigns"], summary="Launch (or update) campaigns")
def launch(
    request: Request, body: Launch, who: Principal = Depends(allow("campaigns.launch"))
) -> dict[str, Any]:
    from penguinctl.campaigns.spec import load_campaign_documents
    from penguinctl.services import campaigns as service
    from penguinctl.services.specs import _materialised, _renamed

    docs = []
    with _materialised(body.files) as (paths, names):
        from penguinctl.errors import SpecError

        try:
            for path in paths:
                docs += load_campaign_documents(path)
        except SpecError as exc:
            raise _renamed(exc, names) from None
    return {"campaigns": service.launch(service_context(request, who), docs, force=body.force)}


@router.get("/campaigns/{name}", tags=["campaigns"], summary="One campaign's state")
def campaign(
    request: Request, name: str, tenant: str | None = TenantFilter, who: Principal = READ
) -> dict[str, Any]:
    from penguinctl.services import campaigns as service

    return service.status(service_context(request, who), name, tenant)[0]


@router.post("/campaigns/{name}/pause", tags=["campaigns"], summary="Pause a campaign")
def pause(
    request: Request,
    name: str,
    body: Pause,
    tenant: str | None = TenantFilter,
    who: Principal = Depends(allow("campaigns.pause")),
) -> dict[str, Any]:
    from penguinctl.services import campaigns as service

    ctx = service_context(request, who)
    return service.set_status(ctx, name, tenant, pause=True, reason=body.reason)


@router.post("/campaigns/{name}/resume", tags=["campaigns"], summary="Resume a campaign")
def resume(
    request: Request,
    name: str,
    tenant: str | None = TenantFilter,
    who: Principal = Depends(allow("campaigns.pause")),
) -> dict[str, Any]:
    from penguinctl.services import campaigns as service

    ctx = service_context(request, who)
    return service.set_status(ctx, name, tenant, pause=False, reason=None)


@router.get("/campaigns/{name}/stats", tags=["campaigns"],
            summary="Per step and variant: sent, bounced, replied; A/B tests")  # fmt: skip
def stats(
    request: Request, name: str, tenant: str | None = TenantFilter, who: Principal = READ
) -> dict[str, Any]:
    from penguinctl.services import campaigns as service

    return service.stats(service_context(request, who), name, tenant).as_dict()


@router.get("/campaigns/{name}/ambiguous", tags=["campaigns"],
            summary="Sends whose outcome is unknown")  # fmt: skip
def ambiguous(
    request: Request, name: str, tenant: str | None = TenantFilter, who: Principal = READ
) -> dict[str, Any]:
    from penguinctl.services import campaigns as service

    return service.ambiguous(service_context(request, who), name, tenant)


@router.post("/campaigns/{name}/resolve", tags=["campaigns"],
             summary="Settle ambiguous sends as sent or unsent")  # fmt: skip
def resolve(
    request: Request,
    name: str,
    body: Resolve,
    tenant: str | None = TenantFilter,
    who: Principal = Depends(allow("campaigns.resolve")),
) -> dict[str, Any]:
    from penguinctl.services import campaigns as service

    ids = sorted(set(body.send_ids)) if body.send_ids is not None else None
    return service.resolve(service_context(request, who), name, ids, body.verdict, tenant=tenant)


@router.post(
    "/campaigns/{name}/leads",
    tags=["leads"],
    summary="Import leads: the body is the CSV (text/csv), streamed; at most 256 MiB",
    openapi_extra={
        "requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}
    },
)
async def import_leads(
    request: Request,
    name: str,
    tenant: str | None = TenantFilter,
    who: Principal = Depends(allow("leads.import")),
) -> JSONResponse:
    from penguinctl.errors import PenguinError, UsageError
    from penguinctl.services import leads
    from penguinctl.web.limits import read_stream
    from penguinctl.web.problems import for_error, problem

    ctx = service_context(request, who)
    with tempfile.TemporaryDirectory(prefix="penguinctl-leads-") as folder:
        path = Path(folder) / "leads.csv"
        try:
            with path.open("wb") as sink:
                await read_stream(request.stream(), sink, limit=MAX_LEADS_UPLOAD)
        except ValueError:
            return problem(413, "Request body too large", f"at most {MAX_LEADS_UPLOAD} bytes")
        except TimeoutError:
            return problem(408, "Request body not received in time")
        if path.stat().st_size == 0:
            raise UsageError("empty upload", hint="send the CSV as the request body")
        result = await run_in_threadpool(
            leads.import_csv, ctx, name, path, tenant=tenant, shown="leads.csv"
        )
    data = result.as_dict()
    try:
        leads.raise_for_import(result, "leads.csv")
    except PenguinError as exc:
        answer = for_error(exc)
        import json

        body = json.loads(answer.body)
        return JSONResponse({**body, "import": data}, status_code=answer.status_code,
                            media_type="application/problem+json")  # fmt: skip
    return JSONResponse(data)


@router.post("/leads/export", tags=["leads"], summary="Everything held about a person")
def export_person(
    request: Request, body: Person, who: Principal = Depends(allow("leads.export"))
) -> dict[str, Any]:
    from penguinctl.services import leads

    return leads.export(service_context(request, who), body.email)


@router.post("/leads/forget", tags=["leads"], summary="Erase a person (platform-wide)")
def forget_person(
    request: Request, body: Person, who: Principal = Depends(allow("leads.forget"))
) -> dict[str, Any]:
    from penguinctl.services import leads

    return leads.forget(service_context(request, who), body.email)


@router.post("/suppressions", tags=["suppressions"], summary="Suppress addresses")
def suppress(
    request: Request, body: Emails, who: Principal = Depends(allow("suppressions.write"))
) -> dict[str, Any]:
    from penguinctl.services import leads

    return leads.suppress_add(
        service_context(request, who),
        body.emails,
        tenant=body.tenant,
        campaign=body.campaign,
        reason=body.reason,
    )


@router.get("/suppressions/check", tags=["suppressions"], summary="Is an address suppressed?")
def suppression_check(
    request: Request,
    email: str = Query(max_length=320),
    tenant: str | None = Query(None, max_length=63),
    campaign: str | None = Query(None, max_length=200),
    who: Principal = READ,
) -> dict[str, Any]:
    from penguinctl.services import leads

    ctx = service_context(request, who)
    return leads.suppress_check(ctx, email, tenant=tenant, campaign=campaign)
