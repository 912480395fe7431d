"""A delivering process SIGKILLed while requests are in flight (`penguinctl serve`, and
`penguinctl events deliver`, which runs the same loop): after a restart every event still
arrives, and the only duplicates are redeliveries with the same webhook-id. SQLite and
PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from eventkit import Receiver
from fakes.state_rows import record_resources

from penguinctl import clock
from penguinctl.events.outbox import emit
from penguinctl.providers.secrets.keystore import KeystoreBackend

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
N = 40


def _deliver(env: dict[str, str], how: str) -> subprocess.Popen:
    from sshd import free_port

    if how == "serve":
        args = ["serve", "--listen", f"127.0.0.1:{free_port('127.0.0.1')}", "--wake", "0.1"]
    else:
        args = ["events", "deliver", "--interval", "0.1", "--concurrency", "4"]
    return subprocess.Popen(
        [sys.executable, "-m", "penguinctl", *args],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("how", ["serve", "events-deliver"])
def test_sigkill_mid_delivery_loses_nothing(tmp_path, state_url, how) -> None:
    from penguinctl.state.db import make_engine, migrate
    from penguinctl.webhooks import endpoints

    home = tmp_path / "home"
    record_resources(state_url, [("tenant", "acme", "acme", {})])
    engine = make_engine(state_url)
    migrate(engine)
    clock_file = tmp_path / "clock"
    clock.FileClock.write(clock_file, T0)
    previous = clock.install(clock.FileClock(clock_file))
    secrets = KeystoreBackend(home / "keystore", key_file=home / "master.key")
    schedules = tmp_path / "schedules.json"  # one job, not due for months: serve only delivers
    schedules.write_text(
        '{"apiVersion": "penguinctl/v1", "kind": "Schedules", "jobs": {"yearly": {"scope": '
        '"platform", "schedule": "0 0 1 6 *", "timeout": "5m", "run": "failjob:boom"}}}'
    )
    env = {
        "PENGUINCTL_HOME": str(home),
        "PENGUINCTL_STATE": state_url,
        "PENGUINCTL_CLOCK_FILE": str(clock_file),
        "PENGUINCTL_SCHEDULES": str(schedules),
        "PYTHONPATH": str(Path(__file__).resolve().parent),
    }
    rx = Receiver(tmp_path, clock_file, {})
    try:
        _, secret = endpoints.add(
            engine, secrets, rx.url("/h"), tenant="acme", allow_private=True, actor="t"
        )
        rx.config.write_text(
            rx.config.read_text().replace(
                '"paths": {}', f'"paths": {{"/h": {{"secrets": ["{secret}"], "delay": 0.2}}}}'
            )
        )
        with engine.begin() as conn:
            ids = [
                emit(
                    conn,
                    "campaign.completed",
                    tenant="acme",
                    subject=f"campaign/c{i}",
                    payload={"campaign": f"c{i}"},
                )
                for i in range(N)
            ]
        with rx:
            first = _deliver(env, how)
            _wait(lambda: len(rx.requests()) >= 8, 60, "deliveries to start")
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            with engine.connect() as conn:
                in_flight = conn.execute(
                    sa.text("SELECT count(*) FROM webhook_deliveries WHERE status='delivering'")
                ).scalar()
            assert in_flight > 0  # killed with requests in flight
            # the leases (2 minutes) run out; a new process takes over
            clock.FileClock.write(clock_file, T0 + timedelta(minutes=3))
            second = _deliver(env, how)

            def done() -> bool:
                with engine.connect() as conn:
                    return not conn.execute(
                        sa.text(
                            "SELECT count(*) FROM webhook_deliveries WHERE status != 'succeeded'"
                        )
                    ).scalar()

            _wait(done, 120, "every delivery to succeed")
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0, second.stderr.read().decode()
            got = rx.requests()
    finally:
        clock.install(previous)
        engine.dispose()
    received = Counter(r["id"] for r in got)
    assert set(received) == set(ids)  # nothing lost, nothing made up
    # every request that arrived whole is signed right; one cut short by the SIGKILL (headers
    # written, the body not: a sender writes them apart) cannot be verified, and is sent again
    cut = [r for r in got if not r["complete"]]
    assert all(r["verified"] for r in got if r["complete"])
    assert len(cut) <= in_flight and all(r["status"] == 401 for r in cut), cut
    assert {r["id"] for r in got if r["status"] == 200} == set(ids)
    # duplicates: only the requests in flight at the kill, each with its own id again
    dupes = sum(n - 1 for n in received.values())
    assert dupes <= in_flight + 4, received
