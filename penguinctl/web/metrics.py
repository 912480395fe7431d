"""Prometheus metrics, in a registry of the app's own (no global default registry).

In-process, per replica: job runs by job and status, their durations, whether this process
leads the scheduler, sends by this process's worker (``--with-worker``). From the state store,
read at scrape time and cached for ``cache_seconds`` (every replica reports the same numbers):
sends by status, ambiguous sends, failures of the latest check run, paused campaigns."""

from __future__ import annotations

import threading
import time
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily


class StateCollector:
    def __init__(self, engine: Any, cache_seconds: float = 30.0) -> None:
        self.engine = engine
        self.cache_seconds = cache_seconds
        self._cached: tuple[float, list[Any]] | None = None
        self._lock = threading.Lock()

    def describe(self) -> list[Any]:
        return []  # collected lazily: no query at registration

    def collect(self) -> list[Any]:
        with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < self.cache_seconds:
                return self._cached[1]
            try:
                families = self._read()
            except sa.exc.SQLAlchemyError:
                families = []  # /readyz reports the store; metrics stay up meanwhile
            self._cached = (time.monotonic(), families)
            return families

    def _read(self) -> list[Any]:
        from penguinctl.campaigns.models import Campaign, CampaignSend
        from penguinctl.health.tables import check_results, check_runs

        sends = CampaignSend.__table__
        campaigns = Campaign.__table__
        with self.engine.connect() as conn:
            by_status = conn.execute(
                sa.select(sends.c.status, sa.func.count()).group_by(sends.c.status)
            ).all()
            paused = conn.execute(
                sa.select(sa.func.count()).where(campaigns.c.status == "paused")
            ).scalar()
            last = conn.execute(sa.select(sa.func.max(check_runs.c.id))).scalar()
            failing = 0
            if last is not None:
                failing = conn.execute(
                    sa.select(sa.func.count()).where(
                        check_results.c.run_id == last,
                        check_results.c.status.in_(("fail", "error")),
                    )
                ).scalar()
        sent = GaugeMetricFamily(
            "penguinctl_sends", "Campaign sends recorded, by status", labels=["status"]
        )
        counts = dict(by_status)
        for status in ("claimed", "sent", "failed", "ambiguous"):
            sent.add_metric([status], float(counts.get(status, 0)))
        return [
            sent,
            GaugeMetricFamily(
                "penguinctl_ambiguous_sends",
                "Sends whose outcome is unknown (settle with `campaign resolve`)",
                value=float(counts.get("ambiguous", 0)),
            ),
            GaugeMetricFamily(
                "penguinctl_check_failures",
                "Failed or errored checks in the latest check run",
                value=float(failing or 0),
            ),
            GaugeMetricFamily(
                "penguinctl_campaigns_paused", "Campaigns paused", value=float(paused or 0)
            ),
        ]


class Metrics:
    def __init__(self, engine: Any | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.job_runs = Counter(
            "penguinctl_job_runs", "Job runs finished", ["job", "status"], registry=self.registry
        )
        self.job_failures = Counter(
            "penguinctl_job_failures",
            "Job runs that failed or timed out",
            ["job"],
            registry=self.registry,
        )
        self.job_duration = Histogram(
            "penguinctl_job_run_duration_seconds",
            "Duration of job runs",
            ["job"],
            buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600),
            registry=self.registry,
        )
        self.leader = Gauge(
            "penguinctl_scheduler_leader",
            "1 while this process leads the scheduler",
            registry=self.registry,
        )
        self._worker_seen: dict[str, dict[str, int]] = {}
        self.worker_sends = Counter(
            "penguinctl_worker_sends",
            "Sends by this process's campaign worker",
            ["status"],
            registry=self.registry,
        )
        if engine is not None:
            self.registry.register(StateCollector(engine))

    def observe_run(self, job: str, status: str, seconds: float) -> None:
        self.job_runs.labels(job, status).inc()
        if status in ("failed", "timeout"):
            self.job_failures.labels(job).inc()
        self.job_duration.labels(job).observe(seconds)

    def worker_progress(self, summary: Any) -> None:
        """Count what the worker's running summary added since its last report (a restarted
        worker starts a new summary, told apart by its worker id)."""
        seen = self._worker_seen.setdefault(summary.worker, {})
        for status, n in summary.counts.items():
            delta = n - seen.get(status, 0)
            if delta > 0:
                self.worker_sends.labels(status).inc(delta)
            seen[status] = n

    def set_leader(self, leading: bool) -> None:
        self.leader.set(1 if leading else 0)
