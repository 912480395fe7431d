"""Picking due sends: the claim transaction.

``Scheduler.claim_batch(plan, settle, limit)`` runs one short transaction that claims up to
``limit`` sends of a campaign (plans.py) and commits them before anything is sent:

0. the accepted claims of the previous batch (``settle``) are recorded ``sent`` (outcomes.py);
   on PostgreSQL the plan's mailbox rows are then locked in id order (one lock order for every
   worker: no deadlock) and read; SQLite keeps them cached between claims;
1. due leads (``status = active``, ``next_send_at <= now`` or NULL, no ledger row for their
   ``next_step`` yet): on PostgreSQL at least ``BATCH``, as many as the batch wants, locked
   ``FOR UPDATE SKIP LOCKED`` so several workers take different leads; on SQLite (one worker,
   ledger.WorkerGuard; claims serialised by a process-wide lock) ``CACHE`` at a time, kept in
   the plan; the earlier sends of follow-ups are read with them, in one query;
2. a lead outside its sending window (its own time zone or the campaign's) gets ``next_send_at``
   moved to the window's next opening and is skipped; a suppressed lead is marked ``suppressed``;
3. a mailbox, chosen in memory (mailboxes.choose): follow-ups go out from the mailbox that sent
   the lead's first step (threading); first steps go to the least recently used mailbox that
   is active, under its cap and past its gap;
4. the claims are inserted in one statement (Message-ID and variant fixed; each row only if
   the lead is still active at that step and nobody claimed it), then each mailbox is counted
   with one conditional UPDATE for the claims it really got; a mailbox row that changed under
   a cached state rolls the transaction back and it starts again with fresh rows. Commit.

The message is composed after the commit (``render``), outside any lock; outcomes are recorded
by outcomes.py through ``finish``, ``settle``, ``release_unsent`` and ``compose_failed``.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from penguinctl.campaigns import ledger, mailboxes, outcomes
from penguinctl.campaigns.claims import Blocked, Claimed
from penguinctl.campaigns.ledger import LEADS, SENDS, ClaimRow
from penguinctl.campaigns.models import LeadRef
from penguinctl.campaigns.plans import CampaignPlan, pause_campaign
from penguinctl.campaigns.senders import Sender
from penguinctl.campaigns.smtp import Outcome
from penguinctl.campaigns.window import Clock

BATCH = 2  # fewest due leads locked per claim transaction (PostgreSQL; others skip them)
CACHE = 64  # due leads fetched at once (SQLite: one worker, claims serialised)


# what claiming and composing read of a due lead (not its timestamps: fewer values to convert)
_LEAD_COLUMNS = [
    LEADS.c[name]
    for name in (
        "id",
        "campaign_id",
        "email",
        "first_name",
        "last_name",
        "company",
        "timezone",
        "fields",
        "next_step",
    )
]


def _nothing() -> None:
    pass


class _Stale(Exception):
    """A mailbox row changed under the cached state: roll back, read it again."""


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
    def claim_batch(
        self,
        plan: CampaignPlan,
        settle: list[Claimed],
        limit: int,
        *,
        between: Callable[[], None] | None = None,
    ) -> list[Claimed] | Blocked:
        """Up to ``limit`` claims of ``plan`` inserted in ONE transaction (committed), or why
        there is none. ``settle``, claims the server accepted, are recorded ``sent`` in the same
        transaction (one commit per batch; if the process dies before it, those claims are
        reported ambiguous, never resent). ``between`` is called between the transaction's
        statements (the worker's SMTP work goes on meanwhile)."""
        self._local.between = between or _nothing
        if self.pg:
            return self._claim(plan, settle, max(1, limit))
        with self._sqlite_lock:
            return self._claim(plan, settle, max(1, limit))

    def _claim(
        self, plan: CampaignPlan, settle: list[Claimed], limit: int
    ) -> list[Claimed] | Blocked:
        now = self.clock.now()
        if plan.blocked_until and plan.blocked_until > now:
            self.settle(settle)
            return Blocked(plan.blocked_until)
        for _ in range(64):  # batches whose leads were all moved out of the way: go on
            try:
                with self._tx() as conn:
                    result = self._claim_in(conn, plan, now, settle, limit)
            except _Stale:
                plan.states, plan.candidates = None, []  # rolled back: read them again
                continue
            except BaseException:
                plan.states, plan.candidates = None, []
                raise
            settle = []
            if result is not None:
                return result
        self.settle(settle)
        return Blocked(now)

    def _due(
        self, conn: Connection, plan: CampaignPlan, now: datetime, limit: int, skip: list[int]
    ) -> list[Any]:
        """Up to ``limit`` due leads: first those due at once (``next_send_at IS NULL``: new
        leads, in import order), then those whose time has come (oldest first). Each is one
        range read of the partial index ``ix_leads_due`` (active leads by campaign and time,
        migration 0013) stopped at ``limit``: the cost follows the batch, not the number of
        leads queued (bench/README.md shows the plans)."""
        found = list(
            conn.execute(self._due_query(plan, LEADS.c.next_send_at.is_(None), limit, skip))
        )
        if len(found) < limit:
            skip = [*skip, *(lead.id for lead in found)]
            later = self._due_query(plan, LEADS.c.next_send_at <= now, limit - len(found), skip)
            found.extend(conn.execute(later))
        return found

    def _due_query(self, plan: CampaignPlan, when: Any, limit: int, skip: list[int]) -> Any:
        claim = sa.select(sa.literal(1)).where(
            SENDS.c.lead_id == LEADS.c.id, SENDS.c.step == LEADS.c.next_step
        )
        if self.pg:
            # OFFSET 0 keeps PostgreSQL from turning NOT EXISTS into an anti join, which it may
            # plan as a merge join walking the leads by id past every lead already sent: a
            # probe of the ledger's unique key per due lead, read from ix_leads_due, instead
            claim = claim.offset(sa.literal_column("0"))
        no_claim = ~claim.exists()
        stmt = (
            sa.select(*_LEAD_COLUMNS)
            .where(LEADS.c.campaign_id == plan.id, LEADS.c.status == "active", when, no_claim)
            .limit(limit)
        )
        if skip:  # picked in this transaction, not inserted yet
            stmt = stmt.where(LEADS.c.id.not_in(skip))
        if self.pg:
            # ordered as ix_leads_due is, so the planner reads it even when most leads are due
            # (it would pick a sequential scan, which walks past every lead already sent)
            stmt = stmt.order_by(LEADS.c.next_send_at)
            return stmt.with_for_update(skip_locked=True, of=LEADS)
        return stmt.order_by(LEADS.c.next_send_at, LEADS.c.id)

    def _candidates(
        self, conn: Connection, plan: CampaignPlan, now: datetime, want: int, skip: list[int]
    ) -> list[Any]:
        """Due leads to try, in order (see the module doc, step 1), with their suppressed
        addresses (``plan.suppressed``) and earlier sends (``plan.previous``)."""
        if self.pg or not plan.candidates:
            size = max(BATCH, want) if self.pg else max(CACHE, want)
            leads = self._due(conn, plan, now, size, skip)
            plan.candidates = leads
            plan.suppressed = self._suppressed(conn, plan, [lead.email for lead in leads])
            plan.previous.update(self._previous(conn, [ld.id for ld in leads if ld.next_step]))
        return plan.candidates

    def _claim_in(
        self,
        conn: Connection,
        plan: CampaignPlan,
        now: datetime,
        settle: list[Claimed],
        limit: int,
    ) -> list[Claimed] | Blocked | None:
        """One claim transaction (the module doc's steps): the claims, Blocked (nothing may be
        sent now), or None (every lead looked at was moved out of the way: try again)."""
        between = self._local.between
        outcomes.record_sent(conn, settle, now)
        between()
        cached = {lead.id for lead in plan.candidates}
        plan.previous = {k: v for k, v in plan.previous.items() if k in cached}
        if self.pg or plan.states is None:
            plan.states = mailboxes.read_states(conn, plan, lock=self.pg)
            between()
        states = plan.states
        before = {address: dict(state) for address, state in states.items()}
        picked: list[tuple[Any, Sender]] = []
        blocked_until: datetime | None = None
        waiting = stop = fetched = False
        for _ in range(64):  # refill while every lead fetched was claimed or moved
            skip = [lead.id for lead, _ in picked]
            leads = self._candidates(conn, plan, now, limit - len(picked), skip)
            between()
            if not leads:
                break
            fetched = True
            while leads and len(picked) < limit:
                between()
                lead = leads.pop(0)
                if lead.next_step >= plan.steps:
                    outcomes.set_lead(conn, lead.id, now, status="completed", next_send_at=None)
                    continue
                opens = plan.schedule.next_allowed(now, lead.timezone)
                if opens > now:
                    outcomes.set_lead(conn, lead.id, now, next_send_at=opens)
                    continue
                if lead.email in plan.suppressed:
                    outcomes.set_lead(conn, lead.id, now, status="suppressed")
                    continue
                earlier = plan.previous.get(lead.id, []) if lead.next_step else []
                preferred = next((p.mailbox for p in earlier if p.step == 0), None)
                sender, until = mailboxes.choose(plan, states, now, preferred, self.backoff)
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
                picked.append((lead, sender))
            if stop or waiting or len(picked) >= limit:
                break
        claims = self._insert(conn, plan, picked, now)
        between()
        self._count(conn, plan, states, before, claims, now)
        between()
        if claims:
            if waiting:
                plan.candidates = []
            return claims
        if picked:  # another worker claimed them first (PostgreSQL): start over
            plan.candidates = []
            return None
        if not fetched:
            return Blocked(None)
        if not waiting:
            return None
        plan.candidates = []
        plan.blocked_until = blocked_until
        return Blocked(blocked_until or now + timedelta(seconds=1))

    def _insert(
        self, conn: Connection, plan: CampaignPlan, picked: list[tuple[Any, Sender]], now: datetime
    ) -> list[Claimed]:
        """The claims, with the Message-ID and variant their messages will have (both derived
        from (campaign, lead, step)), in one statement; the leads that changed or were claimed
        by another worker meanwhile are left out."""
        from penguinctl.campaigns.message import choose_variant, message_id_for

        if not picked:
            return []
        claims: list[Claimed] = []
        rows: list[ClaimRow] = []
        for row, sender in picked:
            lead = LeadRef(*row[:8])  # _LEAD_COLUMNS' order
            step = row.next_step
            message_id = message_id_for(plan.campaign, lead, step, sender.domain)
            variant = choose_variant(plan.campaign, lead, step, plan.spec.steps[step])
            rows.append(
                ClaimRow(
                    lead_id=row.id,
                    step=step,
                    variant=variant,
                    mailbox=sender.address,
                    recipient=row.email,
                    message_id=message_id,
                )
            )
            earlier = plan.previous.get(row.id, []) if step else []
            claims.append(
                Claimed(
                    send_id=0,
                    plan=plan,
                    lead_id=row.id,
                    recipient=row.email,
                    lead_timezone=row.timezone,
                    step=step,
                    sender=sender,
                    message_id=message_id,
                    variant=variant,
                    payload=b"",
                    claimed_at=now,
                    lead=lead,
                    previous_ids=[
                        p.message_id for p in earlier if p.step < step and p.status == "sent"
                    ],
                )
            )
        ids = ledger.claim_many(
            conn, rows, tenant=plan.tenant, campaign_id=plan.id, worker=self.worker, now=now
        )
        for claimed in claims:
            claimed.send_id = ids.get(claimed.lead_id, 0)
        return [c for c in claims if c.send_id]

    def _count(
        self,
        conn: Connection,
        plan: CampaignPlan,
        states: dict[str, dict[str, Any]],
        before: dict[str, dict[str, Any]],
        claims: list[Claimed],
        now: datetime,
    ) -> None:
        """Count the claims on their mailboxes (one UPDATE each) and bring the cached states to
        what was counted; raises _Stale when a row no longer allows them."""
        got = Counter(c.sender.address for c in claims)
        senders = {s.address: s for s in plan.senders}
        for address, state in states.items():
            if state == before[address]:
                continue  # not chosen
            state.clear()
            state.update(before[address])
            if not got[address]:
                continue  # chosen, but every claim of it was taken by another worker
            if not mailboxes.count(conn, plan, senders[address], state, got[address], now):
                raise _Stale(address)
            today = now.date().isoformat()
            done = state["day_count"] if state["day"] == today else 0
            state.update(day=today, day_count=done + got[address], last_claim_at=now)

    def _suppressed(self, conn: Connection, plan: CampaignPlan, emails: list[str]) -> set[str]:
        """The addresses of ``emails`` suppressed for this campaign (C1's batch check)."""
        from penguinctl.campaigns.suppression import email_hash, suppressed_hashes

        hashes = {email_hash(e): e for e in emails}
        # suppressed_hashes only calls .execute(): the transaction's connection serves
        found = suppressed_hashes(conn, hashes, plan.tenant, plan.key)  # type: ignore[arg-type]
        return {hashes[h] for h in found}

    def _previous(self, conn: Connection, lead_ids: list[int]) -> dict[int, list[Any]]:
        """The ledger rows of these leads, by lead, in step order."""
        if not lead_ids:
            return {}
        rows = conn.execute(
            sa.select(
                SENDS.c.lead_id, SENDS.c.step, SENDS.c.mailbox, SENDS.c.message_id, SENDS.c.status
            )
            .where(SENDS.c.lead_id.in_(lead_ids))
            .order_by(SENDS.c.lead_id, SENDS.c.step)
        ).all()
        out: dict[int, list[Any]] = {}
        for row in rows:
            out.setdefault(row.lead_id, []).append(row)
        return out

    # -- composing ----------------------------------------------------------------------------
    def render(self, claimed: Claimed) -> bytes:
        """The message of a claim (message.compose), also kept in ``claimed.payload``. Touches
        no database: the worker's transmitter thread calls it. Raises PenguinError when the
        message cannot be rendered (then ``compose_failed``)."""
        from penguinctl.campaigns.message import compose

        plan = claimed.plan
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
            variant=claimed.variant,
            message_id=claimed.message_id,
        )
        claimed.payload = composed.payload
        return claimed.payload

    def compose_failed(self, claimed: Claimed, error: str) -> None:
        """A claim whose message cannot be composed: that send alone ends ``unsent`` with the
        reason (nothing reached a server) and its lead stops (``failed``), audited. When the
        transmitter found the campaign's template broken for everyone (``problems["compose"]``:
        several failures in a row), the campaign is paused with the reason too, until an
        operator fixes the template and resumes."""
        plan = claimed.plan
        now = self.clock.now()
        broken = plan.problems.get("compose")
        with self._tx() as conn:
            outcomes.fail_unsent(conn, claimed, error, now, pg=self.pg)
            outcomes.audit_unsent(conn, claimed, error, self.actor)
            if broken:
                pause_campaign(conn, plan.id, broken, now, cause="compose")
        if broken:
            plan.blocked_until = datetime.max.replace(tzinfo=UTC)

    # -- recording the outcome (outcomes.py) --------------------------------------------------
    def finish(self, claimed: Claimed, outcome: Outcome) -> str:
        """Record an SMTP outcome: sent, failed, ambiguous, released (4xx: retried later) or
        mailbox_paused (the server refused the mailbox; the claim was released)."""
        now = self.clock.now()
        with self._tx() as conn:
            return outcomes.record_outcome(
                conn, claimed, outcome, now, worker=self.worker, actor=self.actor, pg=self.pg
            )

    def settle(self, accepted: list[Claimed]) -> None:
        """Record claims the server accepted as ``sent`` (one transaction)."""
        if accepted:
            now = self.clock.now()
            with self._tx() as conn:
                outcomes.record_sent(conn, accepted, now)

    def release_unsent(self, claims: list[Claimed], reason: str) -> None:
        """Give back claims that were never handed to the server (the worker is stopping, the
        mailbox became unusable, the campaign was paused): as if never claimed."""
        if claims:
            now = self.clock.now()
            with self._tx() as conn:
                outcomes.release_unsent(conn, claims, reason, now, pg=self.pg)
