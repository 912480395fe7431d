"""The event loop: relay new events, deliver due webhooks, mail due alert digests.

``EventLoop.run_once()`` is one pass, everything driven by the product clock; ``run(stop)``
repeats it until ``stop`` is set, at once while there is work and every ``interval`` seconds
of real time (0.5 s by default) when idle. ``serve`` runs it in a thread of every replica (on
PostgreSQL the replicas share the work through ``SKIP LOCKED`` claims; on SQLite there is one
serve);
``penguinctl events deliver`` runs it from the command line (``--once`` for one pass).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from penguinctl import clock as product_clock

log = logging.getLogger("penguinctl.events")


class EventLoop:
    def __init__(
        self,
        engine: Any,
        secrets: Any,
        *,
        env: Mapping[str, str],
        clock: Any = None,
        owner: str = "",
        client: Any = None,
        concurrency: int = 8,
        batch: int = 200,
    ) -> None:
        from penguinctl.alerts.mailer import Relay
        from penguinctl.webhooks.delivery import Deliverer

        self.engine = engine
        self.secrets = secrets
        self.clock = clock or product_clock.current()
        self.relay_config = Relay.from_env(env)
        self._warned = False
        self._next_relay_check = 0.0
        self.deliverer = Deliverer(
            engine,
            secrets,
            clock=self.clock,
            owner=owner,
            client=client,
            concurrency=concurrency,
            batch=batch,
        )

    def run_once(self) -> dict[str, Any]:
        from penguinctl.alerts.digest import send_due
        from penguinctl.events.relay import BATCH as RELAY_BATCH
        from penguinctl.events.relay import relay

        relayed = 0
        for _ in range(10):  # a backlog: up to 10 relay batches per pass
            done = relay(self.engine, now=self.clock.now())
            relayed += done
            if done < RELAY_BATCH:
                break
        report = self.deliverer.deliver_due()
        if self.relay_config is None:
            self._warn_no_relay()
        digests = send_due(self.engine, self.secrets, self.relay_config, now=self.clock.now())
        return {"relayed": relayed, "webhooks": report.to_json(), "digests": digests}

    def _warn_no_relay(self) -> None:
        """Alert recipients but no relay: say so once (their items wait, nothing is lost)."""
        if self._warned or time.monotonic() < self._next_relay_check:
            return
        self._next_relay_check = time.monotonic() + 60.0
        import sqlalchemy as sa

        from penguinctl.alerts.tables import AlertSubscription

        with self.engine.connect() as conn:
            if conn.execute(sa.select(AlertSubscription.__table__.c.id).limit(1)).first():
                log.warning(
                    "alert recipients are configured but PENGUINCTL_ALERT_SMTP is not set: "
                    "alert mails wait until it is"
                )
                self._warned = True

    def run(self, stop: threading.Event, *, interval: float = 0.5) -> None:
        while not stop.is_set():
            try:
                done = self.run_once()
                busy = done["relayed"] or done["webhooks"]["attempted"] or done["digests"]
            except Exception:  # a database blip must not end delivery
                log.exception("event loop pass failed; retrying")
                busy = False
                time.sleep(min(interval, 1.0))
            if not busy:
                stop.wait(interval)

    def close(self) -> None:
        self.deliverer.close()
