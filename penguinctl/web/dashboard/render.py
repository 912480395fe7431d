"""Templates, security headers and the request plumbing the dashboard's routes share."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from markupsafe import Markup, escape

from penguinctl import clock
from penguinctl.web.dashboard import session as sess
from penguinctl.web.dashboard.access import Viewer

STATIC = Path(__file__).resolve().parent.parent / "static"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
MAX_FORM = 16 * 1024

_env: Any = None
_env_lock = threading.Lock()


def ts(value: datetime | None) -> Markup:
    """``<time datetime=...>`` in UTC; dashboard.js rewrites it in the viewer's time zone."""
    if value is None:
        return Markup('<span class="muted">never</span>')
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return Markup(
        f'<time datetime="{value.isoformat(timespec="seconds")}">'
        f"{value.strftime('%Y-%m-%d %H:%M')} UTC</time>"
    )


def env() -> Any:
    global _env
    with _env_lock:
        if _env is None:
            from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

            from penguinctl import shipped

            # templates/dashboard/: the operator's <config dir>/templates first (penguinctl.shipped)
            search = [str(d) for d in shipped.search_dirs("templates")]
            _env = Environment(
                loader=FileSystemLoader(search),
                autoescape=select_autoescape(["html"], default=True),
                undefined=StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
            )
            _env.filters["ts"] = ts
            _env.globals["labels"] = {
                "ok": "ok",
                "warn": "warning",
                "fail": "failing",
                "unknown": "not checked",
            }
            _env.filters["num"] = lambda n: f"{n:,}" if isinstance(n, int) else n
            _env.filters["pct"] = lambda r: "-" if r is None else f"{r * 100:.1f}%"
        return _env


def loopback(request: Request) -> bool:
    """Was the request addressed to this machine's loopback name (not via a proxy's name)?"""
    host = (request.url.hostname or "").strip("[]").lower()
    return host == "localhost" or host.startswith("127.") or host == "::1"


def secure(request: Request) -> bool:
    """Session cookies are ``Secure`` except on plain http to a loopback address (a local
    ``serve`` opened as http://127.0.0.1:8080): behind a TLS proxy the Host is the public name,
    so the cookie is Secure and a browser never sends it over plain http."""
    return request.url.scheme == "https" or not loopback(request)


def page(
    request: Request, template: str, *, viewer: Viewer | None, status: int = 200, **context: Any
) -> HTMLResponse:
    csrf = request.state.csrf if hasattr(request.state, "csrf") else ""
    body = (
        env()
        .get_template(f"dashboard/{template}")
        .render(viewer=viewer, csrf=csrf, path=request.url.path, escape=escape, **context)
    )
    response = HTMLResponse(body, status_code=status, headers=HEADERS)
    refreshed = getattr(request.state, "set_cookie", None)
    if refreshed:
        response.set_cookie(sess.COOKIE, refreshed, **sess.cookie_args(secure(request)))
    return response


def redirect(url: str, request: Request | None = None) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303, headers=HEADERS)
    if request is not None:
        refreshed = getattr(request.state, "set_cookie", None)
        if refreshed:
            response.set_cookie(sess.COOKIE, refreshed, **sess.cookie_args(secure(request)))
    return response


async def form(request: Request) -> dict[str, str]:
    """An urlencoded form body (bounded), first value of each field."""
    body = await request.body()
    if len(body) > MAX_FORM:
        return {}
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=50)
    return {k: v[0] for k, v in parsed.items()}


def now_epoch() -> float:
    return clock.now().timestamp()
