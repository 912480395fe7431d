"""Deliver what is due: claim, POST signed, record every attempt, schedule the retries.

``Deliverer.deliver_due()`` is one pass, driven by the product clock (``clock.now()``): it is
what ``serve`` calls in its event loop and ``penguinctl events deliver`` runs from the command
line. A pass:

1. **claims** up to ``batch`` due deliveries of active endpoints (``pending`` whose time has
   come, or ``delivering`` whose lease ran out: their process died mid-request) by setting them
   ``delivering`` with a lease, in one short transaction; on PostgreSQL the rows are picked with
   ``FOR UPDATE SKIP LOCKED``, so replicas never claim the same delivery;
2. **posts** them outside any transaction, ``concurrency`` at a time, with the Standard Webhooks
   headers (``signing``) through the guarded client (``client``). When an endpoint cannot be
   reached at all (connection refused, timeout) the rest of its deliveries in this pass are not
   tried: they wait for the same retry time as the one that failed, without counting an
   attempt;
3. **records** in one transaction: an attempt row per request (status, latency, masked excerpt),
   the delivery's new state (``succeeded``, or ``pending`` at the next time of the schedule, or
   ``failed`` when it is exhausted), the endpoint's health; an endpoint failing for
   ``schedule.DISABLE_AFTER`` (or answering 410) is disabled with a ``webhook.endpoint.disabled``
   event and a log line.

At least once: a process killed between 2 and 3 leaves ``delivering`` rows that are posted
again after the lease, with the same ``webhook-id``; receivers de-duplicate on it.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from penguinctl import clock as product_clock
from penguinctl.events.tables import Event
from penguinctl.state.columns import aware
from penguinctl.webhooks import schedule, signing
from penguinctl.webhooks.client import EXCERPT, Answer, WebhookClient
from penguinctl.webhooks.tables import WebhookAttempt, WebhookDelivery, WebhookEndpoint

log = logging.getLogger("penguinctl.webhooks")
EV = Event.__table__
EP = WebhookEndpoint.__table__
DL = WebhookDelivery.__table__
AT = WebhookAttempt.__table__
SECRET_CACHE_SECONDS = 60.0


@dataclass
class Claimed:
    id: int
    attempts: int
    endpoint_id: str
    endpoint_tenant: str
    url: str
    allow_private: bool
    legacy_headers: bool
    secret_rotated_at: datetime | None
    event_seq: int
    event_id: str
    type: str
    tenant: str
    subject: str
    payload: dict[str, Any]
    occurred_at: datetime


@dataclass
class Result:
    claimed: Claimed
    answer: Answer | None  # None: not tried (its endpoint was unreachable in this pass)
    started: datetime | None = None


@dataclass
class Report:
    attempted: int = 0
    succeeded: int = 0
    retrying: int = 0
    exhausted: int = 0
    deferred: int = 0
    disabled: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @property
    def busy(self) -> bool:
        return bool(self.attempted or self.deferred)


def body_of(c: Claimed) -> bytes:
    """The webhook body: the Standard Webhooks envelope around the event's payload."""
    return json.dumps(
        {
            "id": c.event_id,
            "type": c.type,
            "timestamp": c.occurred_at.isoformat(),
            "tenant": c.tenant or None,
            "subject": c.subject,
            "data": c.payload,
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()


class Deliverer:
    def __init__(
        self,
        engine: Any,
        secrets: Any,
        *,
        clock: Any = None,
        owner: str = "",
        client: WebhookClient | None = None,
        batch: int = 200,
        concurrency: int = 8,
        lease: timedelta = timedelta(minutes=2),
        rng: random.Random | None = None,
    ) -> None:
        self.engine = engine
        self.secrets = secrets
        self.clock = clock or product_clock.current()
        self.owner = owner or f"deliverer:{id(self):x}"
        self.client = client or WebhookClient()
        self.batch = batch
        self.concurrency = max(1, concurrency)
        self.lease = lease
        self.rng = rng or random.Random()
        self.pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="webhook")
        self._recorder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhook-record")
        self._secrets: dict[str, tuple[float, Any, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self._recorder.shutdown(wait=True)
        self.client.close()

    # -- one pass ------------------------------------------------------------------------------
    def deliver_due(
        self, *, delivery_ids: list[int] | None = None, max_batches: int = 10
    ) -> Report:
        """Deliver what is due now, in batches (up to ``max_batches``); a batch's results are
        recorded on another thread while the next batch is claimed and posted."""
        report = Report()
        recording = None
        try:
            for _ in range(max_batches):
                claimed = self.claim(self.clock.now(), delivery_ids)
                if not claimed:
                    break
                results = self.post_all(claimed)
                if recording is not None:
                    recording.result()  # one recording at a time, in order
                recording = self._recorder.submit(self.record, results, report)
                if delivery_ids is not None or len(claimed) < self.batch:
                    break
        finally:
            if recording is not None:
                recording.result()
        return report

    def claim(self, now: datetime, delivery_ids: list[int] | None = None) -> list[Claimed]:
        due = sa.or_(
            sa.and_(DL.c.status == "pending", DL.c.next_attempt_at <= now),
            sa.and_(DL.c.status == "delivering", DL.c.lease_until < now),
        )
        from penguinctl.events.relay import write_lock

        with self.engine.begin() as conn:
            write_lock(conn)
            stmt = (
                sa.select(DL.c.id)
                .join(EP, EP.c.id == DL.c.endpoint_id)
                .where(due, EP.c.status == "active")
                .order_by(DL.c.next_attempt_at, DL.c.id)
                .limit(self.batch)
            )
            if delivery_ids is not None:
                stmt = stmt.where(DL.c.id.in_(delivery_ids))
            if conn.dialect.name == "postgresql":
                stmt = stmt.with_for_update(of=DL, skip_locked=True)
            ids = list(conn.execute(stmt).scalars())
            if not ids:
                return []
            conn.execute(
                sa.update(DL)
                .where(DL.c.id.in_(ids))
                .values(
                    status="delivering",
                    lease_until=now + self.lease,
                    claimed_by=self.owner,
                    updated_at=now,
                )
            )
            rows = conn.execute(
                sa.select(
                    DL.c.id,
                    DL.c.attempts,
                    DL.c.endpoint_id,
                    EP.c.tenant.label("endpoint_tenant"),
                    EP.c.url,
                    EP.c.allow_private,
                    EP.c.legacy_headers,
                    EP.c.secret_rotated_at,
                    EV.c.seq.label("event_seq"),
                    EV.c.id.label("event_id"),
                    EV.c.type,
                    EV.c.tenant,
                    EV.c.subject,
                    EV.c.payload,
                    EV.c.occurred_at,
                )
                .join(EP, EP.c.id == DL.c.endpoint_id)
                .join(EV, EV.c.seq == DL.c.event_seq)
                .where(DL.c.id.in_(ids))
                .order_by(DL.c.next_attempt_at, DL.c.id)
            ).all()
        out = []
        for r in rows:
            values = dict(r._mapping)
            values["occurred_at"] = aware(values["occurred_at"])
            values["secret_rotated_at"] = aware(values["secret_rotated_at"])
            out.append(Claimed(**values))
        return out

    # -- posting -------------------------------------------------------------------------------
    def _signing_secrets(self, c: Claimed, now: datetime) -> list[str]:
        """The endpoint's signing secrets, read from the backend at most once a minute (and
        again as soon as the endpoint's secret was rotated)."""
        from penguinctl.webhooks.endpoints import active_secrets, secret_path

        mono = time.monotonic()
        with self._lock:
            cached = self._secrets.get(c.endpoint_id)
        if cached is None or cached[0] < mono or cached[1] != c.secret_rotated_at:
            fields = self.secrets.get(secret_path(c.endpoint_tenant, c.endpoint_id)) or {}
            plain = {k: v.reveal() for k, v in fields.items()}
            cached = (mono + SECRET_CACHE_SECONDS, c.secret_rotated_at, plain)
            with self._lock:
                self._secrets[c.endpoint_id] = cached
        return active_secrets(cached[2], now)

    def post_one(self, c: Claimed, body: bytes) -> Result:
        started = self.clock.now()
        keys = self._signing_secrets(c, started)
        if not keys:
            return Result(c, Answer(None, 0, error="no signing secret in the secrets backend"))
        headers = signing.headers(
            keys, c.event_id, int(started.timestamp()), body, legacy=c.legacy_headers
        )
        return Result(c, self.client.post(c.url, body, headers, allow_private=c.allow_private),
                      started)  # fmt: skip

    def post_all(self, claimed: list[Claimed]) -> list[Result]:
        bodies: dict[int, bytes] = {}
        for c in claimed:
            if c.event_seq not in bodies:
                bodies[c.event_seq] = body_of(c)
        by_endpoint: dict[str, list[Claimed]] = {}
        for c in claimed:
            by_endpoint.setdefault(c.endpoint_id, []).append(c)
        unreachable: set[str] = set()
        lanes: list[list[Claimed]] = []
        for group in by_endpoint.values():
            n = min(self.concurrency, len(group))
            lanes += [group[i::n] for i in range(n)]

        def lane(items: list[Claimed]) -> list[Result]:
            out = []
            for c in items:
                if c.endpoint_id in unreachable:
                    out.append(Result(c, None))
                    continue
                res = self.post_one(c, bodies[c.event_seq])
                if res.answer is not None and res.answer.transport_error:
                    unreachable.add(c.endpoint_id)
                out.append(res)
            return out

        results: list[Result] = []
        for done in self.pool.map(lane, lanes):
            results.extend(done)
        return results

    # -- recording -----------------------------------------------------------------------------
    def record(self, results: list[Result], report: Report) -> None:
        from penguinctl.masking import mask

        now = self.clock.now()
        attempts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        failed_at: dict[str, datetime] = {}  # endpoint -> next attempt of its failed delivery
        ok_endpoints: set[str] = set()
        failing_endpoints: set[str] = set()
        gone: set[str] = set()
        for res in results:
            c, a = res.claimed, res.answer
            if a is None:
                continue
            report.attempted += 1
            number = c.attempts + 1
            excerpt = mask(a.body[:2048].decode("utf-8", "replace"))[:EXCERPT]
            attempts.append(
                {
                    "delivery_id": c.id,
                    "endpoint_id": c.endpoint_id,
                    "event_id": c.event_id,
                    "attempt": number,
                    "started_at": res.started or now,
                    "latency_ms": a.latency_ms,
                    "status_code": a.status,
                    "outcome": "succeeded" if a.ok else "failed",
                    "error": mask(a.error)[:500] if a.error else None,
                    "response_excerpt": excerpt,
                }
            )
            values: dict[str, Any] = {
                "b_id": c.id,
                "b_attempts": number,
                "b_last_status": a.status,
                "b_last_error": None if a.ok or not a.error else mask(a.error)[:500],
                "b_delivered_at": None,
            }
            if a.ok:
                report.succeeded += 1
                ok_endpoints.add(c.endpoint_id)
                values.update(b_status="succeeded", b_next=None, b_delivered_at=now)
            else:
                failing_endpoints.add(c.endpoint_id)
                if a.status == 410:
                    gone.add(c.endpoint_id)
                delay = schedule.next_delay(number, self.rng, a.retry_after)
                if delay is None:
                    report.exhausted += 1
                    values.update(b_status="failed", b_next=None)
                else:
                    report.retrying += 1
                    values.update(b_status="pending", b_next=now + delay)
                    if a.transport_error:
                        failed_at.setdefault(c.endpoint_id, now + delay)
            updates.append(values)
        deferred = [
            {"b_id": res.claimed.id, "b_next": failed_at.get(res.claimed.endpoint_id, now)}
            for res in results
            if res.answer is None
        ]
        report.deferred += len(deferred)
        with self.engine.begin() as conn:
            alive = set(
                conn.execute(
                    sa.select(DL.c.id).where(DL.c.id.in_([r.claimed.id for r in results]))
                ).scalars()
            )  # an endpoint removed meanwhile took its deliveries with it
            attempts = [a for a in attempts if a["delivery_id"] in alive]
            if attempts:
                conn.execute(sa.insert(AT), attempts)
            mine = sa.and_(
                DL.c.id == sa.bindparam("b_id"),
                DL.c.claimed_by == self.owner,
                DL.c.status == "delivering",
            )
            if updates := [u for u in updates if u["b_id"] in alive]:
                conn.execute(
                    sa.update(DL)
                    .where(mine)
                    .values(
                        status=sa.bindparam("b_status"),
                        attempts=sa.bindparam("b_attempts"),
                        next_attempt_at=sa.bindparam("b_next"),
                        last_status=sa.bindparam("b_last_status"),
                        last_error=sa.bindparam("b_last_error"),
                        lease_until=None,
                        delivered_at=sa.bindparam("b_delivered_at"),
                        updated_at=now,
                    ),
                    updates,
                )
            if deferred := [d for d in deferred if d["b_id"] in alive]:
                conn.execute(
                    sa.update(DL)
                    .where(mine)
                    .values(
                        status="pending",
                        next_attempt_at=sa.bindparam("b_next"),
                        lease_until=None,
                        updated_at=now,
                    ),
                    deferred,
                )
            if ok_endpoints:
                conn.execute(
                    sa.update(EP)
                    .where(EP.c.id.in_(ok_endpoints))
                    .values(last_success_at=now, failing_since=None)
                )
            still_failing = failing_endpoints - ok_endpoints
            if still_failing:
                conn.execute(
                    sa.update(EP)
                    .where(EP.c.id.in_(still_failing), EP.c.failing_since.is_(None))
                    .values(failing_since=now)
                )
                report.disabled += self._disable_failing(conn, still_failing, gone, now)

    def _disable_failing(
        self, conn: Any, endpoints: set[str], gone: set[str], now: datetime
    ) -> list[str]:
        import httpx

        from penguinctl.events.outbox import emit

        disabled = []
        rows = conn.execute(
            sa.select(EP.c.id, EP.c.tenant, EP.c.url, EP.c.failing_since).where(
                EP.c.id.in_(endpoints), EP.c.status == "active"
            )
        ).all()
        for r in rows:
            since = aware(r.failing_since)
            if r.id in gone:
                reason = "the endpoint answered 410 Gone"
            elif since is not None and now - since >= schedule.DISABLE_AFTER:
                days = (now - since).total_seconds() / 86400
                reason = f"every delivery failed for {days:.1f} days"
            else:
                continue
            conn.execute(
                sa.update(EP)
                .where(EP.c.id == r.id)
                .values(status="disabled", disabled_reason=reason, updated_at=now)
            )
            emit(
                conn,
                "webhook.endpoint.disabled",
                tenant=r.tenant,
                subject=f"webhook/{r.id}",
                payload={
                    "endpoint": r.id,
                    "host": httpx.URL(r.url).host,
                    "reason": reason,
                    "failing_since": since.isoformat() if since else None,
                },
            )
            log.warning(
                "webhook endpoint %s (%s) disabled: %s; `penguinctl webhooks enable %s` resumes it",
                r.id,
                httpx.URL(r.url).host,
                reason,
                r.id,
            )
            disabled.append(r.id)
        return disabled
