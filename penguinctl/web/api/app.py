"""``create_api``: the ``/api/v1`` application, mounted by ``penguinctl.web.app``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from penguinctl.errors import PenguinError

PREFIX = "/api/v1"
log = logging.getLogger("penguinctl.web.api")


async def _penguin_error(request: Request, exc: Exception) -> Any:
    from penguinctl.web.problems import for_error

    return for_error(exc)


async def _http_error(request: Request, exc: Exception) -> Any:
    from penguinctl.web.problems import problem

    assert isinstance(exc, StarletteHTTPException)
    titles = {404: "Not found", 405: "Method not allowed", 413: "Request body too large"}
    title = titles.get(exc.status_code, "HTTP error")
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
    return problem(exc.status_code, title, detail, headers=getattr(exc, "headers", None))


async def _invalid(request: Request, exc: Exception) -> Any:
    from penguinctl.web.problems import problem

    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": [str(p) for p in e.get("loc", ())], "message": str(e.get("msg", ""))[:300]}
        for e in exc.errors()[:20]
    ]
    return problem(422, "Invalid request", "the request does not match the schema",
                   exit_code=2, errors=errors)  # fmt: skip


async def _unexpected(request: Request, exc: Exception) -> Any:
    from penguinctl.masking import mask
    from penguinctl.web.limits import redact
    from penguinctl.web.problems import problem

    log.error(
        "%s %s failed: %s",
        request.method,
        redact(request.url.path),
        mask(f"{type(exc).__name__}: {exc}")[:300],
    )
    return problem(500, "Internal error", "the error is in the server log", exit_code=1)


def create_api(state: Any) -> FastAPI:
    from penguinctl import __version__
    from penguinctl.web.api import docs, routes

    api = FastAPI(
        title="penguinctl API",
        version=__version__,
        description="The penguinctl control plane over HTTP: API keys with roles, tenant "
        "isolation, RFC 9457 problem documents (see the README, section HTTP API).",
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        servers=[{"url": PREFIX}],
        separate_input_output_schemas=False,
    )
    api.state.web = state
    api.add_exception_handler(PenguinError, _penguin_error)
    api.add_exception_handler(StarletteHTTPException, _http_error)
    api.add_exception_handler(RequestValidationError, _invalid)
    api.add_exception_handler(Exception, _unexpected)
    for router in routes.routers():
        api.include_router(router)
    api.include_router(docs.router)
    return api
