"""The dashboard's door: signing in (an API key exchanged for a session cookie, refused with
429 after ``LOGIN_FAILURES`` refusals a minute from one address), signing out, the session and
CSRF checks every page and POST goes through, and the page frame (navigation by permission,
403 and 404 pages)."""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from penguinctl.web.dashboard import access
from penguinctl.web.dashboard import session as sess
from penguinctl.web.dashboard.access import Viewer
from penguinctl.web.dashboard.render import form, loopback, now_epoch, page, redirect, secure

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


def nav_for(viewer: Viewer | None) -> list[tuple[str, str]]:
    return [(label, href) for label, href, need in NAV if viewer is not None and viewer.may(need)]


def web(request: Request) -> Any:
    return request.app.state.web


def session_key(request: Request) -> bytes:
    state = request.app.state
    with _key_lock:
        key = getattr(state, "dashboard_key", None)
        if key is None:
            key = sess.session_key(web(request).secrets())
            state.dashboard_key = key
        return key


def session_of(request: Request) -> tuple[Viewer, sess.Session] | None:
    """The signed-in viewer, or None; sets the CSRF token and a refreshed cookie on the way."""
    key = session_key(request)
    now = now_epoch()
    found = sess.decode(request.cookies.get(sess.COOKIE), key, now)
    if found is None:
        return None
    viewer = access.by_key_id(web(request).db, found.key_id)
    if viewer is None:
        return None
    request.state.csrf = found.csrf(key)
    if sess.needs_refresh(found, now):
        request.state.set_cookie = sess.encode(dataclasses.replace(found, seen=now), key)
    return viewer, found


def viewer_of(request: Request) -> Viewer | None:
    found = session_of(request)
    return found[0] if found else None


def reader(request: Request, need: str = access.READ) -> tuple[Viewer | None, Response | None]:
    """The signed-in viewer allowed ``need``, or the response that sends it away."""
    viewer = viewer_of(request)
    if viewer is None:
        return None, to_login(request)
    if not viewer.may(need):
        return viewer, forbidden(request, viewer, "Your role may not see this page.")
    return viewer, None


def to_login(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return redirect("/dashboard/login?" + urlencode({"next": target}))


def forbidden(request: Request, viewer: Viewer | None, what: str) -> HTMLResponse:
    return page(
        request,
        "error.html",
        viewer=viewer,
        status=403,
        nav=nav_for(viewer),
        title="Not allowed",
        message=what,
    )


def not_found(request: Request, viewer: Viewer, what: str) -> HTMLResponse:
    return page(
        request,
        "error.html",
        viewer=viewer,
        status=404,
        nav=nav_for(viewer),
        title="Not found",
        message=what,
    )


def view(request: Request, template: str, viewer: Viewer, **context: Any) -> HTMLResponse:
    return page(request, template, viewer=viewer, nav=nav_for(viewer), **context)


def tenant_of(segment: str) -> str:
    return "" if segment == "-" else segment


# -- login / logout -------------------------------------------------------------------------
@router.get("")
@router.get("/")
def home(request: Request) -> Response:
    return redirect("/dashboard/domains") if viewer_of(request) else to_login(request)


def safe_next(value: str | None) -> str:
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
        next=safe_next(next),
        error=None,
    )
    response.set_cookie(sess.LOGIN_COOKIE, token, max_age=3600, **sess.cookie_args(secure(request)))
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    data = await form(request)
    token = request.cookies.get(sess.LOGIN_COOKIE)
    if not sess.same(token, data.get("csrf")):
        return forbidden(request, None, "The login form expired: reload the page and try again.")
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
    viewer = await run_in_threadpool(access.authenticate, web(request).db, data.get("key", ""))
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
            next=safe_next(data.get("next")),
            error="That API key was not accepted.",
        )
    key = await run_in_threadpool(session_key, request)
    session = sess.new_session(viewer.key_id, now_epoch())
    response = redirect(safe_next(data.get("next")))
    response.set_cookie(sess.COOKIE, sess.encode(session, key), **sess.cookie_args(secure(request)))
    response.delete_cookie(sess.LOGIN_COOKIE, path=sess.PATH)
    log.info("dashboard login: key %s (%s)", viewer.key_id, viewer.role)
    return response


async def checked_post(request: Request) -> tuple[Viewer | None, dict[str, str], Response | None]:
    """The viewer and form of a POST, or the response refusing it (no session, bad CSRF)."""
    found = await run_in_threadpool(session_of, request)
    data = await form(request)
    if found is None:
        return None, data, forbidden(request, None, "Sign in first.")
    viewer = found[0]
    if not sess.same(data.get("csrf"), request.state.csrf):
        return (
            viewer,
            data,
            forbidden(request, viewer, "The form's CSRF token is missing or wrong."),
        )
    return viewer, data, None


@router.post("/logout")
async def logout(request: Request) -> Response:
    viewer, _, refused = await checked_post(request)
    if refused is not None and viewer is not None:
        return refused
    response = redirect("/dashboard/login")
    response.delete_cookie(sess.COOKIE, path=sess.PATH)
    return response
