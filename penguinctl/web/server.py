"""uvicorn configured for a public-facing control plane (see ``limits`` for what each bounds)."""

from __future__ import annotations

import logging
from typing import Any

from penguinctl.errors import UsageError

LIMIT_CONCURRENCY = 200
KEEP_ALIVE = 5


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port_text = listen.rpartition(":")
    if not sep or not host or not port_text.isdecimal() or not 0 <= int(port_text) < 65536:
        raise UsageError(f"--listen {listen!r}: expected HOST:PORT", hint="e.g. 127.0.0.1:8080")
    return host.strip("[]"), int(port_text)


def listen_socket(host: str, port: int, listen: str) -> Any:
    """The listening socket of ``serve`` (``listen``: as the user wrote it, for the error).

    It names its protocol (``IPPROTO_TCP``): asyncio turns Nagle's algorithm off
    (``TCP_NODELAY``) only on accepted sockets that say they are TCP. With protocol 0 every
    response, written in two parts (head, body), waited for the client's delayed ACK: about
    40 ms a request on a keep-alive connection, which capped a busy serve at half its rate."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {listen}: {exc.strerror or exc}") from None
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def make_server(asgi_app: Any, host: str, port: int, *, sock: Any = None) -> Any:
    import uvicorn

    from penguinctl.web.limits import MAX_HEAD, GuardedH11Protocol

    config = uvicorn.Config(
        asgi_app,
        host=host,
        port=port,
        http=GuardedH11Protocol,
        ws="none",
        lifespan="off",
        access_log=False,  # penguinctl.web.limits.AccessLog logs, without tokens
        log_config=None,
        server_header=False,
        proxy_headers=False,
        timeout_keep_alive=KEEP_ALIVE,
        limit_concurrency=LIMIT_CONCURRENCY,
        h11_max_incomplete_event_size=MAX_HEAD,
        timeout_graceful_shutdown=10,
    )
    # uvicorn's own access log would print paths with their tokens: never emitted
    logging.getLogger("uvicorn.access").disabled = True
    return uvicorn.Server(config)
