"""The dependencies every ``/api/v1`` handler declares: ``allow(action)`` authenticates the key,
charges its rate limit and checks the permission matrix, and gives the ``Principal``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request

from penguinctl.errors import Forbidden
from penguinctl.identity.dependency import principal_async
from penguinctl.identity.principal import Principal


def buckets(request: Request) -> Any:
    web = request.app.state.web
    found = getattr(web, "api_buckets", None)
    if found is None:
        from penguinctl.web.api.ratelimit import Buckets

        found = Buckets.from_env(web.env)
        web.api_buckets = found
    return found


def allow(action: str) -> Callable[[Request], Awaitable[Principal]]:
    from penguinctl.identity.permissions import MATRIX

    if action not in MATRIX:
        raise KeyError(f"unknown action {action!r}")

    async def dependency(request: Request) -> Principal:
        who = await principal_async(request)
        buckets(request).take(who.key_id)
        if not who.can(action):
            raise Forbidden(f"role {who.role} may not {action}", hint="use a key with more rights")
        return who

    dependency.__name__ = f"allow_{action.replace('.', '_')}"
    dependency.action = action  # type: ignore[attr-defined] # the OpenAPI document names it
    return dependency


PROBLEM = {
    "description": "A problem document (RFC 9457)",
    "content": {
        "application/problem+json": {
            "schema": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                    "exit_code": {"type": "integer"},
                },
                "required": ["type", "title", "status"],
            }
        }
    },
}
ERRORS: dict[int | str, dict[str, Any]] = {
    s: PROBLEM for s in (400, 401, 403, 404, 408, 409, 413, 422, 429, 502, 503)
}


def service_context(request: Request, who: Principal) -> Any:
    """The service layer's context for this request: the key is the audit actor, a tenant
    key's tenant the only one it touches."""
    from penguinctl.services.context import from_web

    return from_web(request.app.state.web, who)
