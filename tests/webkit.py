"""The control plane's HTTP app on a real uvicorn in a thread, on 127.0.0.1, for tests."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any


class LiveApp:
    def __init__(
        self,
        engine: Any,
        secrets: Any,
        *,
        env: dict[str, str] | None = None,
        clock: Any = None,
        role: str = "leader",
    ) -> None:
        from penguinctl import clock as clocks
        from penguinctl.web.app import create_app
        from penguinctl.web.metrics import Metrics
        from penguinctl.web.server import make_server
        from penguinctl.web.state import WebState

        self.state = WebState(
            db=engine,
            secrets=lambda: secrets,
            env=dict(env or {}),
            metrics=Metrics(engine),
            role=lambda: role,
            clock=clock or clocks.current(),
        )
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.server = make_server(create_app(self.state), "127.0.0.1", self.port)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveApp:
        self.thread.start()
        end = time.monotonic() + 20
        while not self.server.started and time.monotonic() < end:
            time.sleep(0.01)
        assert self.server.started, "uvicorn did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()
