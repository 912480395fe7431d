"""``create_app``: the one ASGI app ``serve`` hosts.

The REST API (``/api/v1/...``, the most requested) is its own FastAPI application, handed its
requests by ``ApiFirst`` before anything else looks at them (as a ``Mount`` would, without a
second application's middleware stack around it). Everything else is routed by one FastAPI
application, in this order: health, metrics, hooks, unsubscribe (``/u/TOKEN``), the dashboard
under ``/dashboard`` (each its own router, with its own authentication dependency: nothing here
grants access by network position); the unsubscribe fallback (any other path ending in a token)
comes last. Middleware: the access log (tokens redacted) around the body limit.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI

log = logging.getLogger("penguinctl.web")


async def _unexpected(request: Any, exc: Exception) -> Any:
    """One line in the log (what failed, where); the client gets a problem document."""
    from penguinctl.errors import PenguinError
    from penguinctl.masking import mask
    from penguinctl.web.limits import redact
    from penguinctl.web.problems import problem

    what = str(exc) if isinstance(exc, PenguinError) else f"{type(exc).__name__}: {exc}"
    log.error("%s %s failed: %s", request.method, redact(request.url.path), mask(what)[:300])
    return problem(500, "Internal error", "the error is in the server log")


async def _http_error(request: Any, exc: Any) -> Any:
    """HTTP errors outside the routes: problem documents under /api/ (``/api/v1`` itself and
    other ``/api/`` paths ``ApiFirst`` does not hand to the API), FastAPI's otherwise."""
    from fastapi.exception_handlers import http_exception_handler

    if request.url.path.startswith("/api/"):
        from penguinctl.web.problems import problem

        return problem(exc.status_code, "Not found" if exc.status_code == 404 else "HTTP error")
    return await http_exception_handler(request, exc)


class ApiFirst:
    """Requests under ``prefix + "/"`` go to ``api`` (its routes see the path after the prefix:
    ``root_path`` is extended as Starlette's ``Mount`` does), all others to ``rest``."""

    def __init__(self, prefix: str, api: Any, rest: Any) -> None:
        self.prefix = prefix
        self.under = prefix + "/"
        self.api = api
        self.rest = rest

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            root = scope.get("root_path", "")
            path = scope["path"]
            if path.startswith(root + self.under):
                scope = {**scope, "root_path": root + self.prefix,
                         "app_root_path": scope.get("app_root_path", root)}  # fmt: skip
                await self.api(scope, receive, send)
                return
        await self.rest(scope, receive, send)


def create_app(state: Any) -> Any:
    from penguinctl import __version__
    from penguinctl.web.limits import AccessLog, BodyLimit
    from penguinctl.web.routers import health, hooks, metrics, unsubscribe

    app = FastAPI(
        title="penguinctl control plane",
        version=__version__,
        docs_url=None,  # the API's docs come with /api/v1
        redoc_url=None,
        openapi_url=None,
    )
    app.state.web = state
    from starlette.exceptions import HTTPException

    app.add_exception_handler(Exception, _unexpected)
    app.add_exception_handler(HTTPException, _http_error)
    from penguinctl.web.api.app import PREFIX, create_api

    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(hooks.router)
    app.include_router(unsubscribe.router)
    # the /dashboard router and its static files, before the fallback
    from starlette.staticfiles import StaticFiles

    from penguinctl.web.dashboard import router as dashboard
    from penguinctl.web.dashboard.render import STATIC

    app.include_router(dashboard.router)
    app.mount("/dashboard/static", StaticFiles(directory=str(STATIC)), name="dashboard-static")
    app.include_router(unsubscribe.fallback)
    import re

    uploads = (re.compile(PREFIX + r"/campaigns/[^/]+/leads"),)
    # the API first (the most requested; no other route's path starts with its prefix)
    routed = ApiFirst(PREFIX, create_api(state), app)
    return AccessLog(BodyLimit(routed, streamed=uploads))
