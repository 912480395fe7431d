"""Picking due sends and recording their outcome.

``CampaignPlan`` is one active campaign as the worker sees it (spec, schedule, senders, limits),
loaded once per polling cycle. ``Scheduler.claim_batch(plan, settle, limit)`` runs one short
transaction that claims up to ``limit`` sends (``claim_next``: one), steps 2-4 per lead:

0. the accepted claims of the previous batch (``settle``) are recorded ``sent``; on PostgreSQL
   the plan's mailbox rows are then locked in id order (a batch may count several mailboxes;
   one lock order for every worker: no deadlock);
1. due leads (``status = active``, ``next_send_at <= now`` or NULL, no ledger row for their
   ``next_step`` yet; on PostgreSQL at least ``BATCH``, as many as the batch wants), locked
   ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so several workers take different leads; on
   SQLite one process-wide lock serialises claims instead (a single worker runs there, see
   ledger.WorkerGuard);
2. a lead outside its sending window (its own time zone or the campaign's) gets ``next_send_at``
   moved to the window's next opening and is skipped; a suppressed lead is marked ``suppressed``;
3. a mailbox: follow-ups go out from the mailbox that sent the lead's first step (threading);
   first steps rotate over the senders, least recently used first. A mailbox qualifies when it
   is active, under its daily cap -- min(campaign ``per_mailbox_daily``, the mailbox's
   ``daily_limit``, the warmup ramp's cap for its age) -- and past ``min_gap`` since its last
   claim; its row is locked and re-checked before it is counted;
4. the claim is inserted (Message-ID and variant fixed); commit. The message is composed after
   the commit (``compose``), outside any lock.

``finish(claimed, outcome)`` records the SMTP outcome (ledger.py) and advances the lead:
``next_step + 1`` and ``next_send_at`` = the next step's delay after now, moved into the window,
or ``completed`` after the last step. A lead whose status changed meanwhile (a reply arrived)
is left alone.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from penguinctl.campaigns import ledger
from penguinctl.campaigns.ledger import LEADS, MAILBOXES, SENDS
from penguinctl.campaigns.models import Campaign, Lead
from penguinctl.campaigns.senders import Sender, load_senders
from penguinctl.campaigns.smtp import Outcome
from penguinctl.campaigns.warmup import Ramp, ramp_cap, ramp_from_spec
from penguinctl.campaigns.window import Clock, Schedule
from penguinctl.errors import PenguinError

BATCH = 2  # fewest due leads locked per claim transaction (PostgreSQL; others skip them)
CACHE = 64  # due leads fetched at once (SQLite: one worker, claims serialised)
CAMPAIGNS = Campaign.__table__
DEFAULT_DAILY = 50  # the facts file's wizard default when nothing else caps a mailbox


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _delta(value: Any) -> timedelta:
    if value is None:
        return timedelta(0)
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    from penguinctl.spec.durations import Duration

    return Duration(str(value))


@dataclass
class CampaignPlan:
    id: int
    tenant: str
    name: str
    spec: Any  # CampaignSpec
    campaign: Campaign
    schedule: Schedule
    delays: list[timedelta]
    per_mailbox_daily: int | None
    min_gap: timedelta
    ramp: Ramp | None
    senders: list[Sender]
    stop_on: frozenset[str]
    bounce_threshold: float
    problems: dict[str, str] = field(default_factory=dict)
    blocked_until: datetime | None = None  # no mailbox can send before then (this cycle)
    rotation: int = 0
    states: dict[str, dict[str, Any]] | None = None  # mailbox rows, cached between claims
    candidates: list[Any] = field(default_factory=list)  # due leads not tried yet (SQLite)
    suppressed: set[str] = field(default_factory=set)  # of the current candidates

    @property
    def key(self) -> str:
        return f"{self.tenant}/{self.name}"

    @property
    def steps(self) -> int:
        return len(self.delays)


def load_plans(conn: Connection, names: list[str] | None = None) -> list[CampaignPlan]:
    """The active campaigns (optionally only those named ``NAME`` or ``TENANT/NAME``)."""
    from penguinctl.campaigns.spec import spec_of

    rows = conn.execute(sa.select(CAMPAIGNS).where(CAMPAIGNS.c.status == "active")).all()
    plans: list[CampaignPlan] = []
    for row in rows:
        if names and row.name not in names and f"{row.tenant}/{row.name}" not in names:
            continue
        campaign = Campaign(**{k: getattr(row, k) for k in row._fields})
        spec = spec_of(campaign)
        limits = _get(spec, "limits")
        addresses = [str(a).lower() for a in (_get(spec, "senders") or [])]
        senders, problems = load_senders(conn, row.tenant, addresses)
        plans.append(
            CampaignPlan(
                id=row.id,
                tenant=row.tenant,
                name=row.name,
                spec=spec,
                campaign=campaign,
                schedule=Schedule.from_spec(_get(spec, "schedule")),
                delays=[_delta(_get(s, "delay")) for s in _get(spec, "steps") or []],
                per_mailbox_daily=_get(limits, "per_mailbox_daily"),
                min_gap=_delta(_get(limits, "min_gap")),
                ramp=ramp_from_spec(_get(spec, "warmup")),
                senders=[senders[a] for a in addresses if a in senders],
                stop_on=frozenset(str(s) for s in _get(spec, "stop_on") or ()),
                bounce_threshold=float(spec.bounce_pause_fraction),
                problems=problems,
            )
        )
    return plans


def ensure_mailboxes(conn: Connection, plans: list[CampaignPlan], now: datetime) -> None:
    """A ``campaign_mailboxes`` row per sender (warmup counted from the mailbox's creation)."""
    wanted = {(s.tenant, s.address): s for p in plans for s in p.senders}
    if not wanted:
        return
    have = {
        (r.tenant, r.address)
        for r in conn.execute(
            sa.select(MAILBOXES.c.tenant, MAILBOXES.c.address).where(
                MAILBOXES.c.address.in_([a for _, a in wanted])
            )
        )
    }
    for key, sender in wanted.items():
        if key in have:
            continue
        try:
            with conn.begin_nested():
                conn.execute(
                    sa.insert(MAILBOXES).values(
                        tenant=key[0],
                        address=key[1],
                        status="active",
                        day_count=0,
                        warmup_started_at=sender.created_at or now,
                        updated_at=now,
                    )
                )
        except sa.exc.IntegrityError:
            pass  # another worker inserted it


@dataclass
class Claimed:
    send_id: int
    plan: CampaignPlan
    lead_id: int
    recipient: str
    lead_timezone: str | None
    step: int
    sender: Sender
    message_id: str
    payload: bytes
    claimed_at: datetime
    lead: Lead
    previous_ids: list[str]


@dataclass
class Blocked:
    until: datetime | None  # None: nothing due at all


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Scheduler:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        worker: str,
        *,
        unsubscribe_secret: bytes,
        audit_actor: str = "worker",
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.worker = worker
        self.unsubscribe_secret = unsubscribe_secret
        self.actor = audit_actor
        self.pg = engine.dialect.name == "postgresql"
        self._sqlite_lock = threading.Lock()
        self.backoff: dict[str, datetime] = {}  # mailbox -> unreachable until (in memory)
        self._local = threading.local()
        self._conns: list[Connection] = []

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """A transaction on this thread's own connection, kept open across claims (no pool
        checkout, ping and reset per message)."""
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.invalidated:
            conn = self._local.conn = self.engine.connect()
            self._conns.append(conn)  # list.append is atomic
        with conn.begin():
            yield conn

    def close(self) -> None:
        for conn in self._conns:
            conn.close()
        self._conns.clear()

    # -- claiming -----------------------------------------------------------------------------
    def claim_next(self, plan: CampaignPlan, settle: Claimed | None = None) -> Claimed | Blocked:
        """One claim (``claim_batch`` with a limit of one)."""
        result = self.claim_batch(plan, [settle] if settle is not None else [], 1)
        return result if isinstance(result, Blocked) else result[0]

    def claim_batch(
        self, plan: CampaignPlan, settle: list[Claimed], limit: int
    ) -> list[Claimed] | Blocked:
        """Up to ``limit`` claims of ``plan`` inserted in ONE transaction (committed), or why
        there is none. ``settle``, claims the server accepted, are recorded ``sent`` in the same
        transaction (one commit per batch; if the process dies before it, those claims are
        reported ambiguous, never resent)."""
        if self.pg:
            # settling first, lead rows before ledger rows (see _record_sent), then the plan's
            # mailbox rows in id order: every transaction takes its locks in the same order
            return self._claim(plan, settle, max(1, limit))
        with self._sqlite_lock:
            return self._claim(plan, settle, max(1, limit))

    def _due(self, conn: Connection, plan: CampaignPlan, now: datetime, limit: int) -> list[Any]:
        no_claim = ~sa.exists().where(
            SENDS.c.lead_id == LEADS.c.id, SENDS.c.step == LEADS.c.next_step
        )
        stmt = (
            sa.select(LEADS)
            .where(
                LEADS.c.campaign_id == plan.id,
                LEADS.c.status == "active",
                sa.or_(LEADS.c.next_send_at.is_(None), LEADS.c.next_send_at <= now),
                no_claim,
            )
            .limit(limit)
        )
        if self.pg:  # any due leads will do: no ORDER BY, so the index on due leads serves
            stmt = stmt.with_for_update(skip_locked=True, of=LEADS)
        else:
            stmt = stmt.order_by(LEADS.c.id)
        return list(conn.execute(stmt).all())

    def _claim(
        self, plan: CampaignPlan, settle: list[Claimed], limit: int
    ) -> list[Claimed] | Blocked:
        now = self.clock.now()
        if plan.blocked_until and plan.blocked_until > now:
            if settle:
                with self._tx() as conn:
                    self._record_sent_many(conn, settle, now)
            return Blocked(plan.blocked_until)
        for _ in range(64):  # batches whose leads were all moved out of the way: go on
            result = self._claim_batch(plan, now, settle, limit)
            settle = []
            if result is not None:
                return result
        return Blocked(now)

    def _candidates(
        self, conn: Connection, plan: CampaignPlan, now: datetime, want: int
    ) -> list[Any]:
        """Due leads to try, in order. On PostgreSQL a few (at least ``BATCH``, as many as the
        batch still wants), locked (SKIP LOCKED) for this transaction; on SQLite (one worker,
        claims serialised) a larger batch cached in the plan, each lead re-checked by the
        conditional claim insert."""
        if self.pg:
            leads = self._due(conn, plan, now, max(BATCH, want))
            plan.suppressed = self._suppressed(conn, plan, [lead.email for lead in leads])
            return leads
        if not plan.candidates:
            plan.candidates = self._due(conn, plan, now, max(CACHE, want))
            plan.suppressed = self._suppressed(conn, plan, [ld.email for ld in plan.candidates])
        return plan.candidates

    def _claim_batch(
        self, plan: CampaignPlan, now: datetime, settle: list[Claimed], limit: int
    ) -> list[Claimed] | Blocked | None:
        claims: list[Claimed] = []
        with self._tx() as conn:
            self._record_sent_many(conn, settle, now)
            if self.pg:
                # the plan's mailbox rows, locked in id order before any is counted: two
                # workers counting several mailboxes in one transaction cannot deadlock
                plan.states = self._mailbox_states(conn, plan, lock=True)
            elif plan.states is None:
                plan.states = self._mailbox_states(conn, plan)
            blocked_until: datetime | None = None
            waiting = False
            stop = False
            fetched = False
            for _ in range(64):  # refill while every lead fetched was claimed or moved
                leads = self._candidates(conn, plan, now, limit - len(claims))
                if not leads:
                    break
                fetched = True
                while leads and len(claims) < limit:
                    lead = leads.pop(0)
                    if lead.next_step >= plan.steps:
                        self._set_lead(conn, lead.id, status="completed", next_send_at=None)
                        continue
                    opens = plan.schedule.next_allowed(now, lead.timezone)
                    if opens > now:
                        self._set_lead(conn, lead.id, next_send_at=opens)
                        continue
                    if lead.email in plan.suppressed:
                        self._set_lead(conn, lead.id, status="suppressed")
                        continue
                    previous = self._previous(conn, lead.id) if lead.next_step else []
                    preferred = next((p.mailbox for p in previous if p.step == 0), None)
                    sender, until = self._pick_mailbox(conn, plan, now, preferred)
                    if sender is None:
                        waiting = True
                        if until is not None:
                            blocked_until = (
                                until if blocked_until is None else min(blocked_until, until)
                            )
                        if preferred is None:
                            leads.insert(0, lead)
                            stop = True
                            break  # no mailbox at all can take a first step now
                        continue
                    claimed = self._insert_claim(conn, plan, lead, sender, previous, now)
                    if claimed is not None:
                        claims.append(claimed)
                        continue
                    self._uncount_address(conn, plan.tenant, sender.address, now)  # lead changed
                    if self.pg:
                        stop = True  # claimed by another worker: release our locks, start over
                        break
                if stop or waiting or len(claims) >= limit:
                    break
            if claims:
                if waiting:
                    plan.candidates = []
                return claims
            if not fetched:
                return Blocked(None)
            if not waiting:
                return None  # every lead of the batch was moved or stopped: next batch
            plan.candidates = []
            plan.blocked_until = blocked_until
            return Blocked(blocked_until or now + timedelta(seconds=1))

    def _set_lead(self, conn: Connection, lead_id: int, **values: Any) -> None:
        conn.execute(
            sa.update(LEADS)
            .where(LEADS.c.id == lead_id, LEADS.c.status == "active")
            .values(updated_at=self.clock.now(), **values)
        )

    def _suppressed(self, conn: Connection, plan: CampaignPlan, emails: list[str]) -> set[str]:
        """The addresses of ``emails`` suppressed for this campaign (C1's batch check)."""
        from penguinctl.campaigns.suppression import email_hash, suppressed_hashes

        hashes = {email_hash(e): e for e in emails}
        # suppressed_hashes only calls .execute(): the transaction's connection serves
        found = suppressed_hashes(conn, hashes, plan.tenant, plan.key)  # type: ignore[arg-type]
        return {hashes[h] for h in found}

    def _previous(self, conn: Connection, lead_id: int) -> list[Any]:
        return list(
            conn.execute(
                sa.select(SENDS.c.step, SENDS.c.mailbox, SENDS.c.message_id, SENDS.c.status)
                .where(SENDS.c.lead_id == lead_id)
                .order_by(SENDS.c.step)
            ).all()
        )

    def _mailbox_states(
        self, conn: Connection, plan: CampaignPlan, *, lock: bool = False
    ) -> dict[str, dict[str, Any]]:
        stmt = sa.select(MAILBOXES).where(
            MAILBOXES.c.tenant == plan.tenant,
            MAILBOXES.c.address.in_([s.address for s in plan.senders]),
        )
        if lock:
            stmt = stmt.order_by(MAILBOXES.c.id).with_for_update()
        rows = conn.execute(stmt).all()
        return {r.address: dict(r._mapping) for r in rows}

    def cap_for(self, plan: CampaignPlan, sender: Sender, state: Any, now: datetime) -> int:
        caps = [c for c in (plan.per_mailbox_daily, sender.daily_limit) if c]
        ramp = ramp_cap(plan.ramp, _aware(state["warmup_started_at"]), now)
        if ramp is not None:
            caps.append(ramp)
        return min(caps) if caps else DEFAULT_DAILY

    def _availability(
        self, plan: CampaignPlan, sender: Sender, state: Any, now: datetime
    ) -> datetime | None:
        """None when the mailbox may send now, else the earliest instant it may."""
        if state is None or state["status"] != "active":
            return datetime.max.replace(tzinfo=UTC)
        backoff = self.backoff.get(sender.address)
        if backoff is not None and backoff > now:
            return backoff
        today = now.date().isoformat()
        count = state["day_count"] if state["day"] == today else 0
        if count >= self.cap_for(plan, sender, state, now):
            return datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
        last = _aware(state["last_claim_at"])
        if last is not None and plan.min_gap and now - last < plan.min_gap:
            return last + plan.min_gap
        return None

    def _pick_mailbox(
        self, conn: Connection, plan: CampaignPlan, now: datetime, preferred: str | None
    ) -> tuple[Sender | None, datetime | None]:
        for attempt in (0, 1):
            states = plan.states if attempt == 0 and plan.states is not None else None
            if states is None:
                states = plan.states = self._mailbox_states(conn, plan)
            sender, until, raced = self._try_mailboxes(conn, plan, states, now, preferred)
            if not raced:
                return sender, until
        return None, now + timedelta(seconds=1)

    def _try_mailboxes(
        self,
        conn: Connection,
        plan: CampaignPlan,
        states: dict[str, dict[str, Any]],
        now: datetime,
        preferred: str | None,
    ) -> tuple[Sender | None, datetime | None, bool]:
        """(sender, None, False) when one was counted; (None, earliest, False) when none may
        send; (None, None, True) when the cached state was stale (another worker sent)."""
        senders = plan.senders
        if preferred is not None:
            pinned = [s for s in senders if s.address == preferred]
            state = states.get(preferred)
            if pinned and state is not None and state["status"] == "active":
                senders = pinned  # the thread continues from the same mailbox
        # least recently used first; ties (one instant, e.g. a frozen test clock) round-robin
        shift = plan.rotation % len(senders) if senders else 0
        plan.rotation += 1
        rotated = senders[shift:] + senders[:shift]
        epoch = datetime.min.replace(tzinfo=UTC)

        def last_used(s: Sender) -> datetime:
            state = states.get(s.address)
            return (_aware(state["last_claim_at"]) if state else None) or epoch

        earliest: datetime | None = None
        for sender in sorted(rotated, key=last_used):
            state = states.get(sender.address)
            until = self._availability(plan, sender, state, now)
            if until is not None:
                earliest = until if earliest is None else min(earliest, until)
                continue
            assert state is not None
            if not self._count(conn, plan, sender, state, now):
                return None, None, True
            return sender, None, False
        return None, earliest, False

    def _count(
        self,
        conn: Connection,
        plan: CampaignPlan,
        sender: Sender,
        state: dict[str, Any],
        now: datetime,
    ) -> bool:
        """Count one send on the mailbox, atomically re-checking status, cap and gap in the
        UPDATE itself (concurrent workers: the row lock serialises them, the WHERE decides)."""
        today = now.date().isoformat()
        cap = self.cap_for(plan, sender, state, now)
        res = conn.execute(
            _COUNT,
            {
                "id": state["id"],
                "today": today,
                "cap": cap,
                "now": now,
                # no gap, no condition: a worker's "now" may trail another's last claim
                "gap_ok": now - plan.min_gap if plan.min_gap else _FAR,
            },
        )
        if res.rowcount != 1:
            return False
        count = state["day_count"] + 1 if state["day"] == today else 1
        state.update(day=today, day_count=count, last_claim_at=now)
        return True

    def _insert_claim(
        self,
        conn: Connection,
        plan: CampaignPlan,
        lead_row: Any,
        sender: Sender,
        previous: list[Any],
        now: datetime,
    ) -> Claimed | None:
        """The claim, with the Message-ID and variant the message will have (both derived from
        (campaign, lead, step)); the message itself is composed after the commit, outside the
        serialised claim (``compose``)."""
        from penguinctl.campaigns.message import choose_variant, message_id_for

        lead = Lead.model_construct(**dict(lead_row._mapping))  # a stored row: no validation
        step = lead_row.next_step
        message_id = message_id_for(plan.campaign, lead, step, sender.domain)
        send_id = ledger.claim(
            conn,
            tenant=plan.tenant,
            campaign_id=plan.id,
            lead_id=lead.id,
            step=step,
            variant=choose_variant(plan.campaign, lead, step, plan.spec.steps[step]),
            mailbox=sender.address,
            recipient=lead.email,
            message_id=message_id,
            worker=self.worker,
            now=now,
        )
        if send_id is None:
            return None
        return Claimed(
            send_id=send_id,
            plan=plan,
            lead_id=lead.id,
            recipient=lead.email,
            lead_timezone=lead.timezone,
            step=step,
            sender=sender,
            message_id=message_id,
            payload=b"",
            claimed_at=now,
            lead=lead,
            previous_ids=[p.message_id for p in previous if p.step < step and p.status == "sent"],
        )

    def compose(self, claimed: Claimed) -> bytes | None:
        """The message of a claim (C1's message.compose). None when it cannot be rendered: the
        claim is then released (nothing was sent) and the campaign paused with the reason."""
        from penguinctl.campaigns.message import compose

        plan = claimed.plan
        try:
            composed = compose(
                plan.campaign,
                plan.spec,
                claimed.lead,
                claimed.step,
                claimed.sender.address,
                claimed.sender.display_name,
                unsubscribe_secret=self.unsubscribe_secret,
                previous_message_ids=claimed.previous_ids,
                now=claimed.claimed_at,
            )
            if composed.message_id != claimed.message_id:
                raise PenguinError(f"Message-ID {composed.message_id} differs from the claim's")
        except PenguinError as exc:
            now = self.clock.now()
            with self._tx() as conn:
                self._uncount(conn, claimed)
                ledger.release(
                    conn,
                    claimed.send_id,
                    lead_id=claimed.lead_id,
                    step=claimed.step,
                    error=str(exc),
                    now=now,
                    count=False,
                )
                pause_campaign(conn, plan.id, f"cannot compose a message: {exc}", now)
            plan.blocked_until = datetime.max.replace(tzinfo=UTC)
            plan.problems["compose"] = str(exc)
            return None
        claimed.payload = composed.payload
        return claimed.payload

    # -- recording the outcome ----------------------------------------------------------------
    def finish(self, claimed: Claimed, outcome: Outcome) -> str:
        """Record the outcome. Returns sent, failed, ambiguous, released (4xx: retried later)
        or mailbox_paused (the server refused the mailbox; the claim was released)."""
        now = self.clock.now()
        with self._tx() as conn:
            if self.pg:  # lock order: lead, mailbox, ledger row (as when claiming)
                conn.execute(
                    sa.select(LEADS.c.id).where(LEADS.c.id == claimed.lead_id).with_for_update()
                )
            if outcome.kind == "accepted":
                self._record_sent(conn, claimed, now)
                return "sent"
            if outcome.kind == "unknown":
                ledger.mark_ambiguous(conn, claimed.send_id, outcome.describe())
                self._audit(conn, claimed, "campaign.send.ambiguous", outcome)
                return "ambiguous"
            if outcome.kind == "rejected":
                ledger.mark_failed(conn, claimed.send_id, outcome.describe())
                self._bounce_now(conn, claimed, outcome)
                return "failed"
            # deferred or sender_error: the server does not hold the message
            self._uncount(conn, claimed)
            if outcome.kind == "sender_error":
                ledger.release(
                    conn,
                    claimed.send_id,
                    lead_id=claimed.lead_id,
                    step=claimed.step,
                    error=outcome.describe(),
                    now=now,
                    count=False,
                )
                pause_mailbox(
                    conn,
                    claimed.plan.tenant,
                    claimed.sender.address,
                    f"the server refused the mailbox: {outcome.describe()}",
                    now,
                )
                self._audit(conn, claimed, "campaign.mailbox.pause", outcome)
                return "mailbox_paused"
            attempts = ledger.release(
                conn,
                claimed.send_id,
                lead_id=claimed.lead_id,
                step=claimed.step,
                error=outcome.describe(),
                now=now,
            )
            if attempts >= ledger.MAX_ATTEMPTS:
                # give up: a last claim records the failure (it is never sent)
                send_id = ledger.claim(
                    conn,
                    tenant=claimed.plan.tenant,
                    campaign_id=claimed.plan.id,
                    lead_id=claimed.lead_id,
                    step=claimed.step,
                    variant=None,
                    mailbox=claimed.sender.address,
                    recipient=claimed.recipient,
                    message_id=claimed.message_id,
                    worker=self.worker,
                    now=now,
                )
                ledger.mark_failed(
                    conn, send_id, f"gave up after {attempts} attempts: {outcome.describe()}"
                )
                self._set_lead(conn, claimed.lead_id, status="bounced")
                return "failed"
            retry_at = claimed.plan.schedule.next_allowed(
                now + ledger.retry_delay(attempts), claimed.lead_timezone
            )
            self._set_lead(conn, claimed.lead_id, next_send_at=retry_at)
            return "released"

    def settle(self, accepted: list[Claimed]) -> None:
        """Record claims the server accepted as ``sent`` (one transaction)."""
        if not accepted:
            return
        now = self.clock.now()
        with self._tx() as conn:
            self._record_sent_many(conn, accepted, now)

    def release_unsent(self, claims: list[Claimed], reason: str) -> None:
        """Give back claims of a batch that were never handed to the server (the worker is
        stopping, the mailbox became unusable, the campaign was paused): as if never claimed,
        no attempt counted, the mailbox's daily count given back."""
        if not claims:
            return
        now = self.clock.now()
        with self._tx() as conn:
            if self.pg:  # lock order: leads, mailbox, ledger rows (as when claiming)
                conn.execute(
                    sa.select(LEADS.c.id)
                    .where(LEADS.c.id.in_([c.lead_id for c in claims]))
                    .order_by(LEADS.c.id)
                    .with_for_update()
                )
            for claimed in claims:
                self._uncount(conn, claimed)
                ledger.release(
                    conn,
                    claimed.send_id,
                    lead_id=claimed.lead_id,
                    step=claimed.step,
                    error=reason,
                    now=now,
                    count=False,
                )

    def _record_sent_many(self, conn: Connection, claims: list[Claimed], now: datetime) -> None:
        """``_record_sent`` for several claims: two executemany statements, the lead rows (in
        id order) before the ledger rows, as ``_record_sent`` orders them."""
        if len(claims) <= 1:
            for claimed in claims:
                self._record_sent(conn, claimed, now)
            return
        claims = sorted(claims, key=lambda c: c.lead_id)
        conn.execute(_ADVANCE, [self._advance_params(c, now) for c in claims])
        conn.execute(ledger.SENT, [{"id": c.send_id, "now": now} for c in claims])

    def _advance_params(self, claimed: Claimed, now: datetime) -> dict[str, Any]:
        nxt = claimed.step + 1
        done = nxt >= claimed.plan.steps
        due = None
        if not done:
            due = claimed.plan.schedule.after_delay(
                now, claimed.plan.delays[nxt], claimed.lead_timezone
            )
        return {
            "id": claimed.lead_id,
            "step": claimed.step,
            "next": nxt,
            "due": due,
            "status": "completed" if done else "active",
            "now": now,
        }

    def _record_sent(self, conn: Connection, claimed: Claimed, now: datetime) -> None:
        """``sent``, and the lead moves on: next step after its delay (in the window), or
        ``completed``. A lead whose status changed meanwhile (a reply) keeps it.

        Lock order, as in the claim transaction: the lead row, then the ledger row (the other
        order deadlocks with a worker whose claim of the same lead waits on the ledger row)."""
        conn.execute(_ADVANCE, self._advance_params(claimed, now))
        ledger.mark_sent(conn, claimed.send_id, now)

    def _uncount(self, conn: Connection, claimed: Claimed) -> None:
        self._uncount_address(conn, claimed.plan.tenant, claimed.sender.address, claimed.claimed_at)

    def _uncount_address(
        self, conn: Connection, tenant: str, address: str, claimed_at: datetime
    ) -> None:
        conn.execute(
            sa.update(MAILBOXES)
            .where(
                MAILBOXES.c.tenant == tenant,
                MAILBOXES.c.address == address,
                MAILBOXES.c.day == claimed_at.date().isoformat(),
                MAILBOXES.c.day_count > 0,
            )
            .values(day_count=MAILBOXES.c.day_count - 1)
        )

    def _bounce_now(self, conn: Connection, claimed: Claimed, outcome: Outcome) -> None:
        """A 5xx during the transaction is a synchronous bounce: the lead stops; a refused
        recipient (RCPT 550 / 5.1.x) is suppressed like a hard DSN."""
        self._set_lead(conn, claimed.lead_id, status="bounced")
        if outcome.stage == "rcpt":
            from penguinctl.campaigns.dsn import suppress_hard

            suppress_hard(
                conn,
                claimed.plan.tenant,
                claimed.plan.key,
                claimed.recipient,
                f"smtp {outcome.code}: {outcome.message}"[:200],
            )

    def _audit(self, conn: Connection, claimed: Claimed, action: str, outcome: Outcome) -> None:
        from sqlmodel import Session

        from penguinctl.state.audit import record

        with Session(bind=conn) as session:
            record(
                session,
                actor=self.actor,
                tenant=claimed.plan.tenant,
                action=action,
                resource=f"campaign/{claimed.plan.name}",
                result="ambiguous" if outcome.kind == "unknown" else "paused",
                details={
                    "send_id": claimed.send_id,
                    "step": claimed.step,
                    "mailbox": claimed.sender.address,
                    "error": outcome.describe(),
                },
            )
            session.flush()


_FAR = datetime(9999, 1, 1, tzinfo=UTC)
_COUNT = sa.text(
    "UPDATE campaign_mailboxes SET day_count = CASE WHEN day = :today THEN day_count + 1 "
    "ELSE 1 END, day = :today, last_claim_at = :now, updated_at = :now "
    "WHERE id = :id AND status = 'active' "
    "AND (day IS NULL OR day <> :today OR day_count < :cap) "
    "AND (last_claim_at IS NULL OR last_claim_at <= :gap_ok)"
).bindparams(
    sa.bindparam("now", type_=sa.DateTime(timezone=True)),
    sa.bindparam("gap_ok", type_=sa.DateTime(timezone=True)),
)
_ADVANCE = sa.text(
    "UPDATE leads SET next_step = :next, next_send_at = :due, status = :status, "
    "updated_at = :now WHERE id = :id AND status = 'active' AND next_step = :step"
).bindparams(
    sa.bindparam("due", type_=sa.DateTime(timezone=True)),
    sa.bindparam("now", type_=sa.DateTime(timezone=True)),
)


def pause_campaign(conn: Connection, campaign_id: int, reason: str, now: datetime) -> bool:
    res = conn.execute(
        sa.update(CAMPAIGNS)
        .where(CAMPAIGNS.c.id == campaign_id, CAMPAIGNS.c.status == "active")
        .values(status="paused", paused_reason=reason[:300], updated_at=now)
    )
    return res.rowcount == 1


def pause_mailbox(conn: Connection, tenant: str, address: str, reason: str, now: datetime) -> None:
    conn.execute(
        sa.update(MAILBOXES)
        .where(
            MAILBOXES.c.tenant == tenant,
            MAILBOXES.c.address == address,
            MAILBOXES.c.status == "active",
        )
        .values(status="paused", paused_reason=reason[:300], updated_at=now)
    )


def resume_mailbox(conn: Connection, tenant: str, address: str, now: datetime) -> bool:
    """Resume a paused mailbox; its warmup ramp continues from the day it had reached."""
    row = conn.execute(
        sa.select(MAILBOXES).where(MAILBOXES.c.tenant == tenant, MAILBOXES.c.address == address)
    ).first()
    if row is None or row.status != "paused":
        return False
    paused_for = now - (_aware(row.updated_at) or now)
    started = _aware(row.warmup_started_at) or now
    conn.execute(
        sa.update(MAILBOXES)
        .where(MAILBOXES.c.id == row.id)
        .values(
            status="active",
            paused_reason=None,
            updated_at=now,
            warmup_started_at=started + paused_for,
        )
    )
    return True


def complete_finished(conn: Connection, plans: list[CampaignPlan], now: datetime) -> list[str]:
    """Campaigns with leads but none active any more are ``completed``."""
    done: list[str] = []
    for plan in plans:
        active = sa.exists().where(LEADS.c.campaign_id == plan.id, LEADS.c.status == "active")
        anyl = sa.exists().where(LEADS.c.campaign_id == plan.id)
        res = conn.execute(
            sa.update(CAMPAIGNS)
            .where(CAMPAIGNS.c.id == plan.id, CAMPAIGNS.c.status == "active", anyl, ~active)
            .values(status="completed", updated_at=now)
        )
        if res.rowcount:
            done.append(plan.key)
    return done
