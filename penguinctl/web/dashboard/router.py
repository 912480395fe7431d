"""``/dashboard``: server-rendered pages (Fleet, Domains, Campaigns, Jobs and events, Billing,
Audit), a login that exchanges an API key for a session cookie, and the few POSTs a role may
make (pause/resume a campaign, run a job now, verify a domain now), each CSRF-checked.

Reading works without JavaScript; ``static/dashboard.js`` only shows times in the viewer's time
zone. Every page reads with the viewer's scope; a row of another tenant answers 404."""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from penguinctl import clock
from penguinctl.web.dashboard import access
from penguinctl.web.dashboard import session as sess
from penguinctl.web.dashboard.access import Viewer
from penguinctl.web.dashboard.render import (
    HEADERS,
    form,
    loopback,
    now_epoch,
    page,
    redirect,
    secure,
)

log = logging.getLogger("penguinctl.web.dashboard")
router = APIRouter(prefix="/dashboard", tags=["dashboard"], include_in_schema=False)
_key_lock = threading.Lock()
LOGIN_FAILURES = 10  # refused sign-ins per client address and LOGIN_WINDOW before a 429
LOGIN_WINDOW = 60.0
_failed: dict[str, list[float]] = {}
_failed_lock = threading.Lock()


def _too_many(client: str, *, failed: bool = False) -> bool:
    """Count a refused sign-in of ``client`` (when ``failed``); True when it is over the limit
    (monotonic time, per process; a few hundred addresses are remembered)."""
    import time

    now = time.monotonic()
    with _failed_lock:
        recent = [t for t in _failed.get(client, []) if now - t < LOGIN_WINDOW]
        if failed:
            recent.append(now)
        if recent:
            _failed[client] = recent[-LOGIN_FAILURES:]
        else:
            _failed.pop(client, None)
        if len(_failed) > 500:
            _failed.pop(next(iter(_failed)))
        return len(recent) >= LOGIN_FAILURES


NAV = (
    ("Domains", "/dashboard/domains", access.READ),
    ("Fleet", "/dashboard/fleet", access.READ),
    ("Campaigns", "/dashboard/campaigns", access.READ),
    ("Jobs and events", "/dashboard/jobs", access.READ),
    ("Billing", "/dashboard/billing", access.READ_BILLING),
    ("Audit", "/dashboard/audit", access.READ_AUDIT),
)


def _nav(viewer: Viewer | None) -> list[tuple[str, str]]:
    return [(label, href) for label, href, need in NAV if viewer is not None and viewer.may(need)]


def _web(request: Request) -> Any:
    return request.app.state.web


def _session_key(request: Request) -> bytes:
    state = request.app.state
    with _key_lock:
        key = getattr(state, "dashboard_key", None)
        if key is None:
            key = sess.session_key(_web(request).secrets())
            state.dashboard_key = key
        return key


def _session(request: Request) -> tuple[Viewer, sess.Session] | None:
    """The signed-in viewer, or None; sets the CSRF token and a refreshed cookie on the way."""
    key = _session_key(request)
    now = now_epoch()
    found = sess.decode(request.cookies.get(sess.COOKIE), key, now)
    if found is None:
        return None
    viewer = access.by_key_id(_web(request).db, found.key_id)
    if viewer is None:
        return None
    request.state.csrf = found.csrf(key)
    if sess.needs_refresh(found, now):
        request.state.set_cookie = sess.encode(dataclasses.replace(found, seen=now), key)
    return viewer, found


def _viewer(request: Request) -> Viewer | None:
    found = _session(request)
    return found[0] if found else None


def _reader(request: Request, need: str = access.READ) -> tuple[Viewer | None, Response | None]:
    """The signed-in viewer allowed ``need``, or the response that sends it away."""
    viewer = _viewer(request)
    if viewer is None:
        return None, _to_login(request)
    if not viewer.may(need):
        return viewer, _forbidden(request, viewer, "Your role may not see this page.")
    return viewer, None


def _to_login(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return redirect("/dashboard/login?" + urlencode({"next": target}))


def _forbidden(request: Request, viewer: Viewer | None, what: str) -> HTMLResponse:
    return page(
        request,
        "error.html",
        viewer=viewer,
        status=403,
        nav=_nav(viewer),
        title="Not allowed",
        message=what,
    )


def _not_found(request: Request, viewer: Viewer, what: str) -> HTMLResponse:
    return page(
        request,
        "error.html",
        viewer=viewer,
        status=404,
        nav=_nav(viewer),
        title="Not found",
        message=what,
    )


def _view(request: Request, template: str, viewer: Viewer, **context: Any) -> HTMLResponse:
    return page(request, template, viewer=viewer, nav=_nav(viewer), **context)


def _tenant(segment: str) -> str:
    return "" if segment == "-" else segment


# -- login / logout -------------------------------------------------------------------------
@router.get("")
@router.get("/")
def home(request: Request) -> Response:
    return redirect("/dashboard/domains") if _viewer(request) else _to_login(request)


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/dashboard/") and "//" not in value and "\\" not in value:
        return value
    return "/dashboard/domains"


@router.get("/login")
def login_form(request: Request, next: str = "") -> Response:
    token = request.cookies.get(sess.LOGIN_COOKIE) or sess.login_token()
    request.state.csrf = token
    response = page(
        request,
        "login.html",
        viewer=None,
        nav=(),
        title="Sign in",
        insecure=request.url.scheme != "https" and not loopback(request),
        next=_safe_next(next),
        error=None,
    )
    response.set_cookie(sess.LOGIN_COOKIE, token, max_age=3600, **sess.cookie_args(secure(request)))
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    data = await form(request)
    token = request.cookies.get(sess.LOGIN_COOKIE)
    if not sess.same(token, data.get("csrf")):
        return _forbidden(request, None, "The login form expired: reload the page and try again.")
    client = request.client.host if request.client else "?"
    if _too_many(client):
        response = page(
            request,
            "error.html",
            viewer=None,
            nav=(),
            status=429,
            title="Too many attempts",
            message="Too many refused sign-ins: wait a minute.",
        )
        response.headers["Retry-After"] = str(int(LOGIN_WINDOW))
        return response
    viewer = await run_in_threadpool(access.authenticate, _web(request).db, data.get("key", ""))
    if viewer is None:
        _too_many(client, failed=True)
        request.state.csrf = token
        log.info("dashboard login refused")
        return page(
            request,
            "login.html",
            viewer=None,
            nav=(),
            title="Sign in",
            insecure=request.url.scheme != "https" and not loopback(request),
            status=401,
            next=_safe_next(data.get("next")),
            error="That API key was not accepted.",
        )
    key = await run_in_threadpool(_session_key, request)
    session = sess.new_session(viewer.key_id, now_epoch())
    response = redirect(_safe_next(data.get("next")))
    response.set_cookie(sess.COOKIE, sess.encode(session, key), **sess.cookie_args(secure(request)))
    response.delete_cookie(sess.LOGIN_COOKIE, path=sess.PATH)
    log.info("dashboard login: key %s (%s)", viewer.key_id, viewer.role)
    return response


async def _checked_post(request: Request) -> tuple[Viewer | None, dict[str, str], Response | None]:
    """The viewer and form of a POST, or the response refusing it (no session, bad CSRF)."""
    found = await run_in_threadpool(_session, request)
    data = await form(request)
    if found is None:
        return None, data, _forbidden(request, None, "Sign in first.")
    viewer = found[0]
    if not sess.same(data.get("csrf"), request.state.csrf):
        return (
            viewer,
            data,
            _forbidden(request, viewer, "The form's CSRF token is missing or wrong."),
        )
    return viewer, data, None


@router.post("/logout")
async def logout(request: Request) -> Response:
    viewer, _, refused = await _checked_post(request)
    if refused is not None and viewer is not None:
        return refused
    response = redirect("/dashboard/login")
    response.delete_cookie(sess.COOKIE, path=sess.PATH)
    return response


# -- Domains --------------------------------------------------------------------------------
@router.get("/domains")
def domains_page(request: Request, q: str = "", status: str = "all", page_no: int = 1) -> Response:
    from penguinctl.web.dashboard import domains

    viewer, away = _reader(request)
    if away is not None:
        return away
    assert viewer is not None
    found = domains.page(
        _web(request).db, viewer.scope, q=q, status=status, page_no=page_no, now=clock.now()
    )

    def link(n: int) -> str:
        return "/dashboard/domains?" + urlencode({"q": q, "status": status, "page_no": n})

    return _view(
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

    viewer, away = _reader(request)
    if away is not None:
        return away
    assert viewer is not None
    t = _tenant(tenant)
    if not viewer.sees(t):
        return _not_found(request, viewer, f"No domain {name}.")
    found = domains.detail(_web(request).db, viewer.scope, name, clock.now())
    if found is None or found["tenant"] != t:
        return _not_found(request, viewer, f"No domain {name}.")
    return _view(
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

    viewer, _, refused = await _checked_post(request)
    if refused is not None:
        return refused
    assert viewer is not None
    t = _tenant(tenant)
    if not viewer.may(access.VERIFY_DOMAIN):
        return _forbidden(request, viewer, "Your role may not run checks.")
    found = await run_in_threadpool(
        domains.detail, _web(request).db, viewer.scope, name, clock.now()
    )
    if not viewer.sees(t) or found is None or found["tenant"] != t:
        return _not_found(request, viewer, f"No domain {name}.")
    started = _run_now(request, "check", t, "", viewer)
    return redirect(
        f"/dashboard/domains/{quote(tenant)}/{quote(name)}?queued={int(started)}", request
    )


# -- Campaigns ------------------------------------------------------------------------------
@router.get("/campaigns")
def campaigns_page(request: Request) -> Response:
    from penguinctl.web.dashboard import campaigns

    viewer, away = _reader(request)
    if away is not None:
        return away
    assert viewer is not None
    rows = campaigns.listing(_web(request).db, viewer.scope)
    return _view(request, "campaigns.html", viewer, title="Campaigns", rows=rows)


@router.get("/campaigns/{tenant}/{name}")
def campaign_page(request: Request, tenant: str, name: str) -> Response:
    from penguinctl.web.dashboard import campaigns, svg

    viewer, away = _reader(request)
    if away is not None:
        return away
    assert viewer is not None
    found = campaigns.find(_web(request).db, viewer.scope, _tenant(tenant), name)
    if found is None:
        return _not_found(request, viewer, f"No campaign {name}.")
    d = campaigns.detail(_web(request).db, found, clock.now())
    charts = {
        "sends": svg.daily_bars(d["sends_per_day"], label="Sends per day"),
        "replies": svg.daily_bars(d["replies_per_day"], label="Replies per day", colour="#2e7d32"),
    }
    return _view(
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

    viewer, _, refused = await _checked_post(request)
    if refused is not None:
        return refused
    assert viewer is not None
    if action not in ("pause", "resume"):
        return _not_found(request, viewer, "No such action.")
    if not viewer.may(access.PAUSE_CAMPAIGN):
        return _forbidden(request, viewer, "Your role may not pause or resume campaigns.")
    db = _web(request).db
    found = await run_in_threadpool(campaigns.find, db, viewer.scope, _tenant(tenant), name)
    if found is None:
        return _not_found(request, viewer, f"No campaign {name}.")
    from penguinctl.services import campaigns as service
    from penguinctl.services.context import from_web

    ctx = from_web(_web(request), viewer.principal)
    try:
        await run_in_threadpool(
            lambda: service.set_status(
                ctx, found.name, found.tenant, pause=action == "pause", reason=None
            )
        )
    except PenguinError as exc:
        return _forbidden(request, viewer, str(exc))
    return redirect(f"/dashboard/campaigns/{quote(tenant)}/{quote(name)}", request)


def _actor(viewer: Viewer) -> str:
    return viewer.actor


# -- Fleet, Jobs and events, Audit ----------------------------------------------------------
@router.get("/fleet")
def fleet_page(request: Request) -> Response:
    from penguinctl.web.dashboard import operations

    viewer, away = _reader(request)
    if away is not None:
        return away
    assert viewer is not None
    rows = operations.fleet(_web(request).db, viewer.scope)
    return _view(request, "fleet.html", viewer, title="Fleet", rows=rows)


@router.get("/jobs")
def jobs_page(request: Request) -> Response:
    from penguinctl.web.dashboard import operations

    viewer, away = _reader(request)
    if away is not None:
        return away
    assert viewer is not None
    db = _web(request).db
    return _view(
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

    viewer, _, refused = await _checked_post(request)
    if refused is not None:
        return refused
    assert viewer is not None
    if not viewer.may(access.RUN_JOB):
        return _forbidden(request, viewer, "Your role may not run jobs.")
    row = await run_in_threadpool(operations.series, _web(request).db, viewer.scope, series_id)
    if row is None:
        return _not_found(request, viewer, "No such job series.")
    started = _run_now(request, row.job, row.tenant, row.target, viewer)
    return redirect(f"/dashboard/jobs?queued={int(started)}", request)


def _run_now(request: Request, job: str, tenant: str, target: str, viewer: Viewer) -> bool:
    runner = getattr(_web(request), "run_now", None)
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

    viewer, away = _reader(request, access.READ_AUDIT)
    if away is not None:
        return away
    assert viewer is not None
    found = operations.audit(
        _web(request).db,
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
    return _view(
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

    viewer, away = _reader(request, access.READ_BILLING)
    if away is not None:
        return away
    assert viewer is not None
    items = money.overview(_web(request).db, viewer.scope, _web(request).env, clock.now())
    return _view(request, "billing.html", viewer, title="Billing", items=items, hbar=svg.hbar)


@router.get("/billing/invoices/{number}")
def invoice_page(request: Request, number: str) -> Response:
    from penguinctl.web.dashboard import money

    viewer, away = _reader(request, access.READ_BILLING)
    if away is not None:
        return away
    assert viewer is not None
    body = money.invoice_html(_web(request).db, viewer.scope, number[:100])
    if body is None:
        return _not_found(request, viewer, f"No invoice {number}.")
    headers = {
        **HEADERS,
        "Content-Security-Policy": HEADERS["Content-Security-Policy"].replace(
            "style-src 'self'", "style-src 'self' 'unsafe-inline'"
        ),
    }
    return HTMLResponse(body, headers=headers)
