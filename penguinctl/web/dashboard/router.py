"""``/dashboard``: server-rendered pages (Fleet, Domains, Campaigns, Jobs and events, Billing,
Audit) and the few POSTs a role may make (pause/resume a campaign, run a job now, verify a
domain now), each CSRF-checked; signing in and out is ``gate``'s.

Reading works without JavaScript; ``static/dashboard.js`` only shows times in the viewer's time
zone. Every page reads with the viewer's scope; a row of another tenant answers 404."""

from __future__ import annotations

import logging
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from penguinctl import clock
from penguinctl.web.dashboard import access
from penguinctl.web.dashboard.access import Viewer
from penguinctl.web.dashboard.gate import (
    checked_post,
    forbidden,
    not_found,
    reader,
    router,
    tenant_of,
    view,
    web,
)
from penguinctl.web.dashboard.render import HEADERS, redirect

log = logging.getLogger("penguinctl.web.dashboard")


# -- Domains --------------------------------------------------------------------------------
@router.get("/domains")
def domains_page(request: Request, q: str = "", status: str = "all", page_no: int = 1) -> Response:
    from penguinctl.web.dashboard import domains

    viewer, away = reader(request)
    if away is not None:
        return away
    assert viewer is not None
    found = domains.page(
        web(request).db, viewer.scope, q=q, status=status, page_no=page_no, now=clock.now()
    )

    def link(n: int) -> str:
        return "/dashboard/domains?" + urlencode({"q": q, "status": status, "page_no": n})

    return view(
        request,
        "domains.html",
        viewer,
        title="Domains",
        data=found,
        q=q,
        show=status,
        filters=domains.FILTERS,
        columns=domains.COLUMNS,
        link=link,
    )


@router.get("/domains/{tenant}/{name}")
def domain_page(request: Request, tenant: str, name: str) -> Response:
    from penguinctl.web.dashboard import domains

    viewer, away = reader(request)
    if away is not None:
        return away
    assert viewer is not None
    t = tenant_of(tenant)
    if not viewer.sees(t):
        return not_found(request, viewer, f"No domain {name}.")
    found = domains.detail(web(request).db, viewer.scope, name, clock.now())
    if found is None or found["tenant"] != t:
        return not_found(request, viewer, f"No domain {name}.")
    return view(
        request,
        "domain.html",
        viewer,
        title=name,
        d=found,
        columns=domains.COLUMNS,
        can_verify=viewer.may(access.VERIFY_DOMAIN),
        queued=request.query_params.get("queued"),
    )


@router.post("/domains/{tenant}/{name}/verify")
async def domain_verify(request: Request, tenant: str, name: str) -> Response:
    from penguinctl.web.dashboard import domains

    viewer, _, refused = await checked_post(request)
    if refused is not None:
        return refused
    assert viewer is not None
    t = tenant_of(tenant)
    if not viewer.may(access.VERIFY_DOMAIN):
        return forbidden(request, viewer, "Your role may not run checks.")
    found = await run_in_threadpool(
        domains.detail, web(request).db, viewer.scope, name, clock.now()
    )
    if not viewer.sees(t) or found is None or found["tenant"] != t:
        return not_found(request, viewer, f"No domain {name}.")
    started = _run_now(request, "check", t, "", viewer)
    return redirect(
        f"/dashboard/domains/{quote(tenant)}/{quote(name)}?queued={int(started)}", request
    )


# -- Campaigns ------------------------------------------------------------------------------
@router.get("/campaigns")
def campaigns_page(request: Request) -> Response:
    from penguinctl.web.dashboard import campaigns

    viewer, away = reader(request)
    if away is not None:
        return away
    assert viewer is not None
    rows = campaigns.listing(web(request).db, viewer.scope)
    return view(request, "campaigns.html", viewer, title="Campaigns", rows=rows)


@router.get("/campaigns/{tenant}/{name}")
def campaign_page(request: Request, tenant: str, name: str) -> Response:
    from penguinctl.web.dashboard import campaigns, svg

    viewer, away = reader(request)
    if away is not None:
        return away
    assert viewer is not None
    found = campaigns.find(web(request).db, viewer.scope, tenant_of(tenant), name)
    if found is None:
        return not_found(request, viewer, f"No campaign {name}.")
    d = campaigns.detail(web(request).db, found, clock.now())
    charts = {
        "sends": svg.daily_bars(d["sends_per_day"], label="Sends per day"),
        "replies": svg.daily_bars(d["replies_per_day"], label="Replies per day", colour="#2e7d32"),
    }
    return view(
        request,
        "campaign.html",
        viewer,
        title=f"Campaign {name}",
        d=d,
        c=found,
        charts=charts,
        can_pause=viewer.may(access.PAUSE_CAMPAIGN),
    )


@router.post("/campaigns/{tenant}/{name}/{action}")
async def campaign_action(request: Request, tenant: str, name: str, action: str) -> Response:
    from penguinctl.errors import PenguinError
    from penguinctl.web.dashboard import campaigns

    viewer, _, refused = await checked_post(request)
    if refused is not None:
        return refused
    assert viewer is not None
    if action not in ("pause", "resume"):
        return not_found(request, viewer, "No such action.")
    if not viewer.may(access.PAUSE_CAMPAIGN):
        return forbidden(request, viewer, "Your role may not pause or resume campaigns.")
    db = web(request).db
    found = await run_in_threadpool(campaigns.find, db, viewer.scope, tenant_of(tenant), name)
    if found is None:
        return not_found(request, viewer, f"No campaign {name}.")
    from penguinctl.services import campaigns as service
    from penguinctl.services.context import from_web

    ctx = from_web(web(request), viewer.principal)
    try:
        await run_in_threadpool(
            lambda: service.set_status(
                ctx, found.name, found.tenant, pause=action == "pause", reason=None
            )
        )
    except PenguinError as exc:
        return forbidden(request, viewer, str(exc))
    return redirect(f"/dashboard/campaigns/{quote(tenant)}/{quote(name)}", request)


def _actor(viewer: Viewer) -> str:
    return viewer.actor


# -- Fleet, Jobs and events, Audit ----------------------------------------------------------
@router.get("/fleet")
def fleet_page(request: Request) -> Response:
    from penguinctl.web.dashboard import operations

    viewer, away = reader(request)
    if away is not None:
        return away
    assert viewer is not None
    rows = operations.fleet(web(request).db, viewer.scope)
    return view(request, "fleet.html", viewer, title="Fleet", rows=rows)


@router.get("/jobs")
def jobs_page(request: Request) -> Response:
    from penguinctl.web.dashboard import operations

    viewer, away = reader(request)
    if away is not None:
        return away
    assert viewer is not None
    db = web(request).db
    return view(
        request,
        "jobs.html",
        viewer,
        title="Jobs and events",
        series=operations.jobs(db, viewer.scope),
        failures=operations.failures(db, viewer.scope),
        deliveries=operations.deliveries(db, viewer.scope),
        can_run=viewer.may(access.RUN_JOB),
        queued=request.query_params.get("queued"),
    )


@router.post("/jobs/{series_id}/run")
async def job_run(request: Request, series_id: int) -> Response:
    from penguinctl.web.dashboard import operations

    viewer, _, refused = await checked_post(request)
    if refused is not None:
        return refused
    assert viewer is not None
    if not viewer.may(access.RUN_JOB):
        return forbidden(request, viewer, "Your role may not run jobs.")
    row = await run_in_threadpool(operations.series, web(request).db, viewer.scope, series_id)
    if row is None:
        return not_found(request, viewer, "No such job series.")
    started = _run_now(request, row.job, row.tenant, row.target, viewer)
    return redirect(f"/dashboard/jobs?queued={int(started)}", request)


def _run_now(request: Request, job: str, tenant: str, target: str, viewer: Viewer) -> bool:
    runner = getattr(web(request), "run_now", None)
    if runner is None:
        return False
    log.info("dashboard: %s asked to run %s for %s", _actor(viewer), job, tenant or "(platform)")
    return bool(runner(job, tenant, target))


@router.get("/audit")
def audit_page(
    request: Request,
    action: str = "",
    actor: str = "",
    resource: str = "",
    result: str = "",
    before: int | None = None,
) -> Response:
    from penguinctl.web.dashboard import operations

    viewer, away = reader(request, access.READ_AUDIT)
    if away is not None:
        return away
    assert viewer is not None
    found = operations.audit(
        web(request).db,
        viewer.scope,
        action=action,
        actor=actor,
        resource=resource,
        result=result,
        before=before,
    )
    more = None
    if found["next"]:
        more = "/dashboard/audit?" + urlencode(
            {
                "action": action,
                "actor": actor,
                "resource": resource,
                "result": result,
                "before": found["next"],
            }
        )
    return view(
        request,
        "audit.html",
        viewer,
        title="Audit",
        rows=found["rows"],
        more=more,
        f={"action": action, "actor": actor, "resource": resource, "result": result},
    )


# -- Billing --------------------------------------------------------------------------------
@router.get("/billing")
def billing_page(request: Request) -> Response:
    from penguinctl.web.dashboard import money, svg

    viewer, away = reader(request, access.READ_BILLING)
    if away is not None:
        return away
    assert viewer is not None
    items = money.overview(web(request).db, viewer.scope, web(request).env, clock.now())
    return view(request, "billing.html", viewer, title="Billing", items=items, hbar=svg.hbar)


@router.get("/billing/invoices/{number}")
def invoice_page(request: Request, number: str) -> Response:
    from penguinctl.web.dashboard import money

    viewer, away = reader(request, access.READ_BILLING)
    if away is not None:
        return away
    assert viewer is not None
    body = money.invoice_html(web(request).db, viewer.scope, number[:100])
    if body is None:
        return not_found(request, viewer, f"No invoice {number}.")
    headers = {
        **HEADERS,
        "Content-Security-Policy": HEADERS["Content-Security-Policy"].replace(
            "style-src 'self'", "style-src 'self' 'unsafe-inline'"
        ),
    }
    return HTMLResponse(body, headers=headers)
