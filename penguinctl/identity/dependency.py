"""FastAPI dependencies: ``principal`` (the caller's key, from ``Authorization: Bearer
pgk_...``) and ``require(action)`` (the principal, when the permission matrix allows ``action``).

Both are plain functions FastAPI runs in its thread pool (they read the state store). Failures
raise ``Unauthenticated`` (401) or ``Forbidden`` (403); the API's exception handler turns them
into problem documents."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request

from penguinctl.errors import Forbidden, Unauthenticated
from penguinctl.identity.principal import Principal


def bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("missing API key", hint="send Authorization: Bearer pgk_...")
    return token.strip()


def _authenticate(web: object, token: str) -> Principal:
    """The state store's answer for ``token``, remembered for a moment (``identity.cache``)."""
    from penguinctl import clock
    from penguinctl.identity import cache
    from penguinctl.identity.keys import authenticate, lifetime
    from penguinctl.state.db import session_scope

    now = web.clock.now() if getattr(web, "clock", None) else clock.now()  # type: ignore[attr-defined]
    with session_scope(web.db) as session:  # type: ignore[attr-defined]
        found = authenticate(session, token, now=now)
        cache.remember(cache.digest(token), found, lifetime(session, found.key_id, now))
    return found


def principal(request: Request) -> Principal:
    """The authenticated caller (cached on the request: one lookup per request)."""
    found = getattr(request.state, "principal", None)
    if found is not None:
        return found
    from penguinctl.identity import cache

    token = bearer(request)
    found = cache.lookup(cache.digest(token)) or _authenticate(request.app.state.web, token)
    request.state.principal = found
    return found


async def principal_async(request: Request) -> Principal:
    """``principal`` for async dependencies: a cached key costs no thread hop."""
    found = getattr(request.state, "principal", None)
    if found is not None:
        return found
    from starlette.concurrency import run_in_threadpool

    from penguinctl.identity import cache

    token = bearer(request)
    found = cache.lookup(cache.digest(token))
    if found is None:
        found = await run_in_threadpool(_authenticate, request.app.state.web, token)
    request.state.principal = found
    return found


def require(action: str) -> Callable[[Request], Principal]:
    """A dependency: the principal, if its role may do ``action`` (else 403)."""
    from penguinctl.identity.permissions import MATRIX

    if action not in MATRIX:
        raise KeyError(f"unknown action {action!r}")

    def dependency(request: Request) -> Principal:
        who = principal(request)
        if not who.can(action):
            raise Forbidden(f"role {who.role} may not {action}", hint="use a key with more rights")
        return who

    dependency.__name__ = f"require_{action.replace('.', '_')}"
    return dependency
