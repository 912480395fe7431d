"""Helpers for the event tests: read events back, validate them against the catalogue's JSON
Schemas, start the Standard Webhooks receiver process (webhook_receiver.py)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def validate(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` (a webhook body / `events list` entry) against its type's envelope schema."""
    import jsonschema

    from penguinctl.events import catalogue

    body = {k: v for k, v in body.items() if k != "seq"}
    jsonschema.validate(
        body, catalogue.envelope_schema(body["type"]), format_checker=jsonschema.FormatChecker()
    )
    return body


def events(engine, type_: str | None = None, tenant: str | None = None) -> list[dict[str, Any]]:
    """Events oldest first, each validated against its schema."""
    from penguinctl.events.query import list_events

    found = list_events(engine, types=[type_] if type_ else None, tenant=tenant, limit=100_000)
    return [validate(e) for e in reversed(found)]


def emitted(engine, type_: str, **expect: Any) -> list[dict[str, Any]]:
    """The ``type_`` events whose payload has every ``expect`` item; asserts there is one."""
    found = [
        e
        for e in events(engine, type_)
        if all(e["data"].get(k) == v for k, v in expect.items() if k != "tenant")
        and ("tenant" not in expect or e["tenant"] == expect["tenant"])
    ]
    assert found, (type_, expect, events(engine, type_))
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """The receiver process: ``paths`` maps a URL path to {"secrets": [...], "fail_first": N,
    "status": CODE}; every request is a JSON line in ``log`` (verified with standardwebhooks
    against the shared clock file)."""

    def __init__(self, workdir: Path, clock_file: Path, paths: dict[str, dict]) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.log = workdir / "receiver.jsonl"
        self.config = workdir / "receiver.json"
        self.config.write_text(
            json.dumps(
                {
                    "port": self.port,
                    "clock_file": str(clock_file),
                    "log": str(self.log),
                    "paths": paths,
                }
            )
        )
        self.proc: subprocess.Popen | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> Receiver:
        self.proc = subprocess.Popen([sys.executable, str(HERE / "webhook_receiver.py"),
                                      str(self.config)])  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("webhook receiver exited") from None
                time.sleep(0.05)
        raise RuntimeError("webhook receiver did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def requests(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
