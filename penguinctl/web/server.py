"""uvicorn configured for a public-facing control plane (see ``limits`` for what each bounds)."""

from __future__ import annotations

import logging
from typing import Any

from penguinctl.errors import UsageError

LIMIT_CONCURRENCY = 200
KEEP_ALIVE = 5


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port_text = listen.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise UsageError(f"--listen {listen!r}: expected HOST:PORT", hint="e.g. 127.0.0.1:8080")
    return host.strip("[]"), int(port_text)


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
