"""Real `penguinctl serve` processes for tests: a clock file drives them through time, a
schedules file adds the `probe` job below, and each process is reached over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sshd import free_port

TESTS = Path(__file__).resolve().parent


def schedules(path: Path, *, probe_every: str = "* * * * *", builtin: bool = False) -> Path:
    jobs = {
        "probe": {
            "scope": "platform",
            "schedule": probe_every,
            "timeout": "10m",
            "run": "probejob:probe",
        }
    }
    if builtin:
        import yaml

        from penguinctl.control.config import shipped_path

        shipped = yaml.safe_load(shipped_path("schedules.yaml").read_text())
        jobs.update(shipped["jobs"])
    path.write_text(json.dumps({"apiVersion": "penguinctl/v1", "kind": "Schedules", "jobs": jobs}))
    return path


class Serve:
    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.port = free_port("127.0.0.1")
        self.env = {**os.environ, **env, "PYTHONPATH": str(TESTS)}
        self.args = args
        self.proc: subprocess.Popen | None = None
        self.errfile: Any = None

    def start(self) -> Serve:
        log = Path(self.env["PENGUINCTL_HOME"]) / f"serve-{self.port}.log"
        self.errfile = open(log, "w+")  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "penguinctl",
                "serve",
                "--listen",
                f"127.0.0.1:{self.port}",
                "--wake",
                "0.1",
                *self.args,
            ],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self.errfile,
        )
        return self

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        self.errfile.flush()
        self.errfile.seek(0)
        return self.errfile.read()

    def ready(self, timeout: float = 60) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}: {self.log()[-2000:]}")
            try:
                res = httpx.get(f"{self.base}/readyz", timeout=2)
                if res.status_code == 200:
                    return res.json()
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"serve not ready: {self.log()[-2000:]}")

    def role(self) -> str | None:
        try:
            return httpx.get(f"{self.base}/readyz", timeout=2).json()["checks"]["scheduler"]
        except (httpx.HTTPError, ValueError, KeyError):
            return None

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.errfile.close()
        return self.proc.returncode


def move_clock(path: Path, instant: datetime) -> None:
    from penguinctl.clock import FileClock

    FileClock.write(path, instant)


def probe_events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(predicate, timeout: float = 60, what: str = "condition") -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
