"""Limits on what one client can cost the HTTP server.

- ``BodyLimit`` (ASGI middleware): a request body is read by the middleware, never by a route,
  up to ``max_body`` bytes (a declared ``Content-Length`` over it is answered 413 before
  reading; a chunked or undeclared body is counted as it arrives and cut at the limit), with a
  timeout per chunk and for the whole body (408). Routes get the body from memory; a route
  matching one of ``streamed`` (the API's CSV uploads) reads its body itself, with its own size
  limit and the same timeouts (``read_stream``).
- ``AccessLog`` (ASGI middleware): one line per request without query strings and without
  path tokens (``/u/<token>``): an unsubscribe token unsubscribes whoever holds it.
- ``GuardedH11Protocol`` (uvicorn's h11 protocol, extended): a connection must deliver a
  complete request head within ``HEADER_TIMEOUT`` seconds of opening (or of its previous
  response), so an idle or trickling client is dropped (uvicorn alone waits for ever before the
  first request); an oversized request line or header block (over h11's
  ``h11_max_incomplete_event_size``) is answered 431 without a traceback (uvicorn answers 400).

uvicorn's own settings do the rest (``server.config``): ``timeout_keep_alive`` between
requests, ``limit_concurrency`` (503 beyond it), no ``Server`` header.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

MAX_BODY = 64 * 1024
BODY_CHUNK_TIMEOUT = 10.0
BODY_TOTAL_TIMEOUT = 30.0
HEADER_TIMEOUT = 10.0
MAX_HEAD = 16 * 1024  # request line + headers (h11_max_incomplete_event_size)
MAX_TARGET = 8 * 1024  # path + query string
PLAIN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/hooks/stripe"})

access_log = logging.getLogger("penguinctl.web.access")


async def _plain(send: Any, status: int, text: str, path: str = "") -> None:
    """A short refusal: plain text, or a problem document under the API (``/api/``)."""
    body, kind = text.encode(), b"text/plain; charset=utf-8"
    if path.startswith("/api/"):
        import json

        problem = {"type": f"urn:penguinctl:problem:{'too-large' if status != 408 else 'usage'}",
                   "title": text[:1].upper() + text[1:], "status": status}  # fmt: skip
        body, kind = json.dumps(problem).encode(), b"application/problem+json"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", kind),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    def __init__(
        self,
        app: Any,
        *,
        max_body: int | None = None,
        chunk_timeout: float | None = None,
        total_timeout: float | None = None,
        streamed: tuple[Any, ...] = (),
    ) -> None:
        self.app = app
        self.streamed = streamed  # compiled path patterns whose routes read (and bound) bodies
        self.max_body = MAX_BODY if max_body is None else max_body
        self.chunk_timeout = BODY_CHUNK_TIMEOUT if chunk_timeout is None else chunk_timeout
        self.total_timeout = BODY_TOTAL_TIMEOUT if total_timeout is None else total_timeout

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # A head that arrived in one read is not bounded by h11's incomplete-event limit
        # (one read is at most 256 KiB): the request line and headers are measured here.
        if len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"") > MAX_TARGET:
            await _plain(send, 414, "request line too long", scope.get("path", ""))
            return
        if sum(len(k) + len(v) + 4 for k, v in scope["headers"]) > MAX_HEAD:
            await _plain(send, 431, "request headers too large", scope.get("path", ""))
            return
        if any(p.fullmatch(scope.get("path", "")) for p in self.streamed):
            await self.app(scope, receive, send)  # the route streams and limits the body
            return
        names = {name for name, _ in scope["headers"]}
        if b"content-length" not in names and b"transfer-encoding" not in names:
            await self.app(scope, receive, send)  # no body (RFC 9112 6.3): nothing to read
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > self.max_body:
                    await _plain(send, 413, "request body too large", scope.get("path", ""))
                    return
        body = bytearray()
        end = time.monotonic() + self.total_timeout
        more = True
        while more:
            left = min(self.chunk_timeout, end - time.monotonic())
            try:
                message = await asyncio.wait_for(receive(), timeout=max(left, 0.001))
            except TimeoutError:
                await _plain(send, 408, "request body not received in time", scope.get("path", ""))
                return
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_body:
                await _plain(send, 413, "request body too large", scope.get("path", ""))
                return
            more = message.get("more_body", False)
        delivered = False

        async def replay() -> dict:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def read_stream(receive_chunks: Any, sink: Any, *, limit: int) -> int:
    """Copy a streamed request body (``request.stream()``) into ``sink`` (a binary file) with
    the per-chunk and total timeouts of ``BodyLimit``; ``ValueError`` past ``limit`` bytes,
    ``TimeoutError`` when the client is too slow. Returns the size."""
    size = 0
    end = time.monotonic() + BODY_TOTAL_TIMEOUT * 20  # uploads may be big: 10 minutes in all
    chunks = receive_chunks.__aiter__()
    while True:
        left = min(BODY_CHUNK_TIMEOUT, end - time.monotonic())
        if left <= 0:
            raise TimeoutError("request body not received in time")
        try:
            chunk = await asyncio.wait_for(chunks.__anext__(), timeout=left)
        except StopAsyncIteration:
            return size
        size += len(chunk)
        if size > limit:
            raise ValueError(f"request body over {limit} bytes")
        sink.write(chunk)


def redact(path: str) -> str:
    """The path as logged: known plain paths as they are, anything else with its last
    segment (where tokens live) replaced by ``<token>``."""
    path = path.split("?", 1)[0]
    if path in PLAIN_PATHS or path.rstrip("/") in PLAIN_PATHS or path in ("", "/"):
        return path or "/"
    head, _, _last = path.rstrip("/").rpartition("/")
    return f"{head}/<token>"


class AccessLog:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.monotonic()
        status = [0]

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            client = (scope.get("client") or ("-", 0))[0]
            access_log.info(
                '%s "%s %s" %s %.1fms',
                client,
                scope.get("method"),
                redact(scope.get("path", "")),
                status[0] or "-",
                (time.monotonic() - began) * 1000,
            )


class _Connection(h11.Connection):
    """An h11 connection that remembers the protocol error it raised (for its status hint)."""

    last_error: h11.RemoteProtocolError | None = None

    def next_event(self) -> Any:
        try:
            return super().next_event()
        except h11.RemoteProtocolError as exc:
            self.last_error = exc
            raise


class GuardedH11Protocol(H11Protocol):
    header_timeout = HEADER_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit = self.config.h11_max_incomplete_event_size or MAX_HEAD
        self.conn = _Connection(h11.SERVER, limit)
        self._head_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_expired)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()  # no complete request head in time

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        error = getattr(self.conn, "last_error", None)
        status = getattr(error, "error_status_hint", 400) if error is not None else 400
        if status == 400:
            super().send_400_response(msg)
            return
        text = b"request line or headers too large"
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")]
        for event in (
            h11.Response(status_code=status, headers=headers, reason=b"Too Large"),
            h11.Data(data=text),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event))
        self.transport.close()
