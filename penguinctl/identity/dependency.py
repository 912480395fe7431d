"""FastAPI dependencies: ``principal`` (the caller's key, from ``Authorization: Bearer
pgk_...``) and ``require(action)`` (the principal, when the permission matrix allows ``action``).

Both are plain functions FastAPI runs in its thread pool (they read the state store). Failures
raise ``Unauthenticated`` (401) or ``Forbidden`` (403); the API's exception handler turns them
into problem documents."""

from __future__ import annotations

import asyncio
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
    """``principal`` for async dependencies: a cached key costs no thread hop, and the requests
    that find a token's cache entry gone together wait for one lookup (``_lookups``), not
    one each: a busy client's every in-flight request missed the cache at the same moment
    when its entry expired, each with a state-store session of its own."""
    found = getattr(request.state, "principal", None)
    if found is not None:
        return found
    from penguinctl.identity import cache

    token = bearer(request)
    token_digest = cache.digest(token)
    found = cache.lookup(token_digest)
    if found is None:
        web = request.app.state.web
        found = await _lookups(web).get(token_digest, lambda: _authenticate(web, token))
    request.state.principal = found
    return found


class _SingleFlight:
    """One call of ``fn`` (in the thread pool) at a time per key; who asks meanwhile awaits it.
    Lives on the event loop of the app that made it (``_lookups``)."""

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Future[Principal]] = {}

    async def get(self, key: str, fn: Callable[[], Principal]) -> Principal:
        from starlette.concurrency import run_in_threadpool

        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(run_in_threadpool(fn))
            self._running[key] = running
            running.add_done_callback(lambda _done: self._running.pop(key, None))
        # shielded: a client that goes away does not cancel the others' lookup
        return await asyncio.shield(running)


def _lookups(web: object) -> _SingleFlight:
    found = getattr(web, "key_lookups", None)
    if found is None:
        found = _SingleFlight()
        web.key_lookups = found  # type: ignore[attr-defined]
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
