"""The campaign worker: recover, read inbound mail, send what is due, repeat.

One cycle:
1. ``ledger.recover``: claims left ``claimed`` by a dead worker become ``ambiguous`` (reported
   in the summary and the audit log, never resent).
2. Inbound (unless disabled): every sending mailbox of the active campaigns is polled over IMAP
   (inbound.py); replies, bounces and unsubscribes stop their leads before anything is sent;
   bounce rates may pause a mailbox or a campaign.
3. Sending: ``concurrency`` send loops (threads), each with a transmitter (transmit.py) that
   keeps up to ``in_flight`` SMTP transactions in progress (default 4), each on its own
   connection, connections reused across messages (a mailbox opens a second one only while
   its first is busy). Claims come in batches
   (``WorkerOptions.batch``, ``--batch``, default 20): up to N due sends of a campaign claimed
   in ONE transaction (one commit); the loop queues them for its transmitter, which composes
   and sends them in the loop's own thread, between the loop's steps and the next claim
   transaction's statements, while servers answer. The accepted ones are recorded ``sent`` in
   the transaction of a following claim, other outcomes as they come back. Every send of a
   batch passes the same cap, gap, window and suppression checks as a single claim (a batch
   spans mailboxes).

   Trade-off: a claim is committed before its SMTP transaction, so at-most-once holds, but a
   worker killed mid-send leaves rows ``claimed`` (sent and not yet recorded, in flight, or
   not yet sent) -- at most 2N - 1, as a new batch is claimed only when at most N - 1 of the
   previous ones are outstanding. The next start reports them ``ambiguous`` and never resends
   them. ``batch=1`` means one claim at a time: at most one ambiguous send per crash. Claims
   never handed to the server (stop requested, mailbox unreachable or refused, campaign
   paused by a template error) are released as if never claimed.
4. Campaigns without active leads are marked completed.

``run(once=True)`` does one cycle; otherwise it sleeps until the poll interval passes or the
earliest blocked mailbox frees up, and stops cleanly when ``stop()`` is called (SIGTERM): the
messages in flight are finished and recorded, the claims not yet sent are released, nothing is
abandoned mid-transaction.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from penguinctl import clock
from penguinctl.campaigns import ledger
from penguinctl.campaigns.claims import Blocked, Claimed
from penguinctl.campaigns.mailboxes import ensure_mailboxes
from penguinctl.campaigns.plans import CampaignPlan, complete_finished, load_plans
from penguinctl.campaigns.scheduler import Scheduler
from penguinctl.campaigns.senders import Sender, password_for
from penguinctl.campaigns.smtp import DEFAULT_TIMEOUT, Outcome, SmtpConnection, ssl_context
from penguinctl.campaigns.transmit import DEFAULT_PER_SERVER, Transmitter
from penguinctl.campaigns.window import Clock, SystemClock

UNREACHABLE_BACKOFF = timedelta(seconds=60)
DEFAULT_BATCH = 20
DEFAULT_IN_FLIGHT = 4


@dataclass
class WorkerOptions:
    once: bool = False
    concurrency: int = 1
    campaigns: list[str] | None = None
    poll_interval: float = 30.0
    inbound: bool = True
    smtp_timeout: float = DEFAULT_TIMEOUT
    imap_timeout: float = 30.0
    cafile: str | None = None
    bounce_min_sample: int = 20
    max_sends: int | None = None  # stop after this many transactions (tests, benchmarks)
    batch: int = DEFAULT_BATCH  # claims per ledger transaction (see the module doc)
    in_flight: int = DEFAULT_IN_FLIGHT  # SMTP transactions per send loop at once
    per_server: int = DEFAULT_PER_SERVER  # connections a send loop keeps open to one server


@dataclass
class Summary:
    worker: str
    cycles: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    per_mailbox: Counter[str] = field(default_factory=Counter)
    ambiguous: list[dict[str, Any]] = field(default_factory=list)
    inbound: Counter[str] = field(default_factory=Counter)
    paused: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "worker": self.worker,
            "cycles": self.cycles,
            "sent": self.counts["sent"],
            "failed": self.counts["failed"],
            "unsent": self.counts["unsent"],
            "ambiguous": self.counts["ambiguous"],
            "released": self.counts["released"],
            "mailbox_paused": self.counts["mailbox_paused"],
            "per_mailbox": dict(sorted(self.per_mailbox.items())),
            "recovered_ambiguous": self.ambiguous,
            "inbound": dict(sorted(self.inbound.items())),
            "paused": self.paused,
            "completed_campaigns": self.completed,
            "problems": self.problems,
        }


class Worker:
    def __init__(
        self,
        engine: Engine,
        *,
        secrets: Any,
        env: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        options: WorkerOptions | None = None,
        worker_id: str | None = None,
        actor: str = "worker",
        on_progress: Callable[[Summary], None] | None = None,
    ) -> None:
        self.engine = engine
        self.secrets = secrets
        self.env = dict(env or {})
        self.clock = clock or SystemClock()
        self.options = options or WorkerOptions()
        self.worker_id = worker_id or ledger.new_worker_id()
        self.actor = actor
        self.on_progress = on_progress
        self.summary = Summary(self.worker_id)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sends = 0
        self.guard = ledger.WorkerGuard(engine, self.worker_id)
        self._context = ssl_context(self.options.cafile) if self.options.cafile else None

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> Summary:
        from penguinctl.campaigns.message import unsubscribe_secret

        with self.guard:
            ledger.analyze_new_tables(self.engine)
            secret = unsubscribe_secret(self.secrets)
            scheduler = Scheduler(
                self.engine,
                self.clock,
                self.worker_id,
                unsubscribe_secret=secret,
                audit_actor=self.actor,
            )
            try:
                self._loop(scheduler)
            finally:
                scheduler.close()
        return self.summary

    def _loop(self, scheduler: Scheduler) -> None:
        while not self._stop.is_set():
            wake = self._cycle(scheduler)
            self.summary.cycles += 1
            if self.on_progress:
                self.on_progress(self.summary)
            if self.options.once or self._limit_reached():
                break
            scheduler.close()  # idle connections are not kept between cycles
            delay = self.options.poll_interval
            if wake is not None:
                delay = min(delay, max(0.05, (wake - self.clock.now()).total_seconds()))
            self._stop.wait(delay)

    def _limit_reached(self) -> bool:
        return self.options.max_sends is not None and self._sends >= self.options.max_sends

    def _cycle(self, scheduler: Scheduler) -> datetime | None:
        found = ledger.recover(self.engine, self.guard)
        self.summary.ambiguous.extend(a.to_json() for a in found)
        if found:
            self._audit_recovered(found)
        now = self.clock.now()
        with self.engine.begin() as conn:
            plans = load_plans(conn, self.options.campaigns)
            ensure_mailboxes(conn, plans, now)
        self._note_problems(plans)
        if self.options.inbound and plans:
            from penguinctl.campaigns.inbound import poll_plans

            found = poll_plans(
                self.engine,
                plans,
                secrets=self.secrets,
                env=self.env,
                context=self._context,
                timeout=self.options.imap_timeout,
                now=self.clock.now(),
                actor=self.actor,
                note=self.note,
            )
            self.summary.inbound.update(found)
        self._check_bounces(plans)
        with self.engine.begin() as conn:
            plans = load_plans(conn, self.options.campaigns)  # pauses may have happened
        wake = self._send_all(scheduler, plans)
        self._note_problems(plans)
        self._check_bounces(plans)
        with self.engine.begin() as conn:
            self.summary.completed.extend(complete_finished(conn, plans, self.clock.now()))
        return wake

    def note(self, problem: str) -> None:
        with self._lock:
            if problem not in self.summary.problems:
                self.summary.problems.append(problem)

    def _check_bounces(self, plans: list[CampaignPlan]) -> None:
        from penguinctl.campaigns.bounce_rates import check_bounce_rates

        if plans:
            self.summary.paused.extend(
                check_bounce_rates(
                    self.engine,
                    plans,
                    min_sample=self.options.bounce_min_sample,
                    now=self.clock.now(),
                    actor=self.actor,
                )
            )

    def _note_problems(self, plans: list[CampaignPlan]) -> None:
        for plan in plans:
            for key, why in plan.problems.items():
                msg = f"{plan.key}: {why}"
                if msg not in self.summary.problems:
                    self.summary.problems.append(msg)
                if key == "compose" and plan.key not in self.summary.paused:
                    self.summary.paused.append(plan.key)

    def _send_all(self, scheduler: Scheduler, plans: list[CampaignPlan]) -> datetime | None:
        if not plans:
            return None
        wakes: list[datetime] = []
        errors: list[BaseException] = []
        threads = [
            threading.Thread(
                target=self._thread_main,
                args=(scheduler, plans, i, wakes, errors),
                name=f"send-{i}",
                daemon=True,
            )
            for i in range(max(1, self.options.concurrency))
        ]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.2)  # keeps the main thread responsive to signals
        if errors:
            raise errors[0]
        return min(wakes) if wakes else None

    def _thread_main(
        self,
        scheduler: Scheduler,
        plans: list[CampaignPlan],
        index: int,
        wakes: list[datetime],
        errors: list[BaseException],
    ) -> None:
        try:
            self._send_loop(scheduler, plans, index, wakes)
        except BaseException as exc:  # surfaced by the main thread
            errors.append(exc)

    def _connect(self, sender: Sender) -> SmtpConnection:
        return SmtpConnection(
            sender.submission,
            username=sender.address,
            password=lambda: password_for(sender, self.secrets, self.env),
            timeout=self.options.smtp_timeout,
            context=self._context,
        )

    def _send_loop(
        self,
        scheduler: Scheduler,
        plans: list[CampaignPlan],
        index: int,
        wakes: list[datetime],
    ) -> None:
        """Claim batches and hand them to this loop's transmitter, which composes and sends
        them between the loop's steps (and between the claim transaction's statements): the
        next batch is claimed while the previous one is on the wire. A batch is claimed when at
        most N - 1 claims are outstanding, so at most 2N - 1 are claimed and not yet recorded
        at any moment (the bound on ambiguous sends per crash)."""
        batch = max(1, self.options.batch)
        tx = Transmitter(
            self._connect,
            scheduler.render,
            stopping=self._stop.is_set,
            clock=self.clock,
            in_flight=self.options.in_flight,
            per_server=self.options.per_server,
        )
        idle: set[int] = set()
        turn = index
        settle: list[Claimed] = []  # accepted claims whose 'sent' records ride on the next claim
        outstanding = 0  # claims submitted whose result was not collected yet
        try:
            while not self._stop.is_set() and len(idle) < len(plans):
                tx.wait_until(batch - 1)
                outstanding -= self._collect(scheduler, tx, settle)
                limit = batch
                if self.options.max_sends is not None:
                    with self._lock:
                        limit = min(limit, self.options.max_sends - self._sends - outstanding)
                    if limit <= 0:
                        break
                plan = plans[turn % len(plans)]
                turn += 1
                if plan.id in idle:
                    continue
                result = scheduler.claim_batch(plan, settle, limit, between=tx.pump)
                settle = []
                if isinstance(result, Blocked):
                    if result.until is not None and result.until.year < 9999:
                        with self._lock:
                            wakes.append(result.until)
                    if tx.pending or tx.uncollected:  # outcomes may free leads or mailboxes
                        tx.wait_until(0)
                    else:
                        idle.add(plan.id)
                    continue
                idle.clear()
                outstanding += self._hand_over(scheduler, tx, result)
                tx.pump()
        finally:
            tx.close()
            self._collect(scheduler, tx, settle)
            scheduler.settle(settle)

    def _hand_over(self, scheduler: Scheduler, tx: Transmitter, batch: list[Claimed]) -> int:
        """Queue the claims of a committed batch for composing and transmission; returns how
        many were queued (none when stopping or the campaign was paused meanwhile: those are
        released unsent)."""
        if self._stop.is_set() or batch[0].plan.problems.get("compose"):
            why = "the worker stopped" if self._stop.is_set() else "the campaign was paused"
            scheduler.release_unsent(batch, f"not sent: {why}")
            return 0
        for claimed in batch:
            tx.submit(claimed)
        return len(batch)

    def _collect(self, scheduler: Scheduler, tx: Transmitter, accepted: list[Claimed]) -> int:
        """Record the results the transmitter has ready: accepted claims are appended to
        ``accepted`` (recorded ``sent`` with the next claim's commit, or when the loop ends);
        other outcomes are recorded at once; claims never handed to the server are released.
        Returns how many results there were."""
        results = tx.results()
        unsent: dict[str, list[Claimed]] = {}
        for r in results:
            claimed, outcome = r.claimed, r.outcome
            if r.compose_error:  # unsent: that send alone (the campaign paused if all fail)
                scheduler.compose_failed(claimed, r.compose_error)
                self._count("unsent", claimed, None)
                continue
            if outcome is None:
                unsent.setdefault(r.reason, []).append(claimed)
                continue
            if outcome.mailbox_deferred:  # unreachable, or turned away: try it again later
                backoff = self.clock.now() + UNREACHABLE_BACKOFF
                scheduler.backoff[claimed.sender.address] = backoff
            if outcome.ok:
                accepted.append(claimed)
                status = "sent"
            else:
                status = scheduler.finish(claimed, outcome)
            self._count(status, claimed, outcome)
        for reason, claims in unsent.items():
            scheduler.release_unsent(claims, reason)
        return len(results)

    def _count(self, status: str, claimed: Claimed, outcome: Outcome | None) -> None:
        with self._lock:
            self._sends += 1
            self.summary.counts[status] += 1
            if status == "sent":
                self.summary.per_mailbox[claimed.sender.address] += 1
            elif status == "mailbox_paused" and outcome is not None:
                where = claimed.sender.address
                self.summary.paused.append(f"mailbox {where}: {outcome.describe()}")
        if self.on_progress:
            self.on_progress(self.summary)

    def _audit_recovered(self, found: list[ledger.Ambiguous]) -> None:
        from penguinctl.state.audit import record
        from penguinctl.state.db import session_scope

        with session_scope(self.engine) as session:
            for a in found:
                record(
                    session,
                    actor=self.actor,
                    tenant="",
                    action="campaign.send.ambiguous",
                    resource=f"campaign_send/{a.send_id}",
                    result="ambiguous",
                    details={
                        "campaign_id": a.campaign_id,
                        "lead_id": a.lead_id,
                        "step": a.step,
                        "mailbox": a.mailbox,
                        "worker": a.worker,
                    },
                )


def utcnow() -> datetime:
    return clock.now()
