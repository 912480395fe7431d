"""``create_api``: the ``/api/v1`` application, handed its requests by ``penguinctl.web.app``
(``ApiFirst``: the only application that sees them, so it keeps FastAPI's own hooks)."""

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

    who = getattr(request.state, "principal", None)
    return for_error(exc, reveal_owner=who is not None and who.tenant is None)


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


class RejectNul:
    """A NUL character in the path, the query or a JSON body is a 400 here: PostgreSQL cannot
    store one, and no name, address or spec value has any."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        from urllib.parse import unquote_to_bytes

        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = (scope.get("raw_path") or b"") + b"?" + (scope.get("query_string") or b"")
        # (unquoting changes nothing without a %: most requests skip it)
        bad = b"\x00" in (unquote_to_bytes(raw) if b"%" in raw else raw)
        bad = bad or "\x00" in scope.get("path", "")
        kind = b""
        for name, value in scope["headers"]:
            if name == b"content-type":
                kind = value  # the last one, as a dict of the headers would keep
        replay = receive
        if not bad and b"json" in kind:
            chunks, more = [], True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    await self.app(scope, receive, send)
                    return
                chunks.append(message.get("body", b""))
                more = message.get("more_body", False)
            body = b"".join(chunks)
            bad = b"\x00" in body or b"\\u0000" in body
            sent = False

            async def replay() -> dict:
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

        if bad:
            from penguinctl.web.problems import problem

            answer = problem(400, "Bad request", "NUL characters are not accepted", exit_code=2)
            await answer(scope, receive, send)
            return
        await self.app(scope, replay, send)


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
    api.add_middleware(RejectNul)
    api.add_exception_handler(PenguinError, _penguin_error)
    api.add_exception_handler(StarletteHTTPException, _http_error)
    api.add_exception_handler(RequestValidationError, _invalid)
    api.add_exception_handler(Exception, _unexpected)
    routers = routes.routers()  # in the document's order
    for router in routes.matching_order(routers):
        api.router.routes.extend(router.routes)
    api.include_router(docs.router)
    api.openapi = lambda: _openapi(api, routers)  # type: ignore[method-assign]
    return api


def _actions(dependant: Any) -> list[str]:
    found = []
    for dep in dependant.dependencies:
        action = getattr(dep.call, "action", None)
        if action:
            found.append(action)
        found += _actions(dep)
    return found


def _paths(routers: list[Any]) -> list[str]:
    found: list[str] = []
    for router in routers:
        for route in router.routes:
            path = getattr(route, "path_format", None)
            if path is not None and path not in found:
                found.append(path)
    return found


def _openapi(api: FastAPI, routers: list[Any]) -> dict[str, Any]:
    """FastAPI's document, plus the bearer scheme and, per operation, the permission-matrix
    action it needs (``x-penguinctl-action``: tests generate the isolation matrix from it)."""
    if api.openapi_schema:
        return api.openapi_schema
    from fastapi.openapi.utils import get_openapi
    from fastapi.routing import APIRoute

    doc = get_openapi(
        title=api.title,
        version=api.version,
        openapi_version=api.openapi_version,
        description=api.description,
        routes=api.routes,
        servers=api.servers,
        separate_input_output_schemas=False,
    )
    # the routers are matched most-requested first (``routes.matching_order``); the document
    # lists the paths in the routers' own order
    order = {path: i for i, path in enumerate(_paths(routers))}
    doc["paths"] = dict(sorted(doc["paths"].items(), key=lambda kv: order.get(kv[0], len(order))))
    doc.setdefault("components", {})["securitySchemes"] = {
        "apiKey": {"type": "http", "scheme": "bearer", "description": "pgk_<id>_<secret>"}
    }
    doc["security"] = [{"apiKey": []}]
    for route in [r for router in routers for r in router.routes]:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        actions = _actions(route.dependant)
        for method in route.methods:
            op = doc["paths"].get(route.path_format, {}).get(method.lower())
            if op is not None and actions:
                op["x-penguinctl-action"] = actions[0]
    api.openapi_schema = doc
    return doc
