"""The send ledger: at most one delivery per (lead, step).

Protocol (``campaign_sends``, UNIQUE(lead_id, step)):

1. ``claim``: a row with status ``claimed`` is inserted and **committed before** the SMTP
   transaction starts. The unique key makes a second claim of the same (lead, step) impossible,
   whatever the number of workers.
2. After the transaction (see smtp.py for the outcomes):
   - accepted -> ``sent`` (``sent_at``);
   - definite 5xx rejection -> ``failed`` (with the server's reply);
   - 4xx, or a connection failure before the message's last byte was written: the server
     definitely does not hold the message, so the claim is **released** (the row is deleted
     while still ``claimed``) and the (lead, step) retried later; attempts are counted in
     ``send_retries`` and after ``MAX_ATTEMPTS`` the send is ``failed``;
   - no reply after the whole message was written -> ``ambiguous`` at once;
   - the message could not be composed, or a local error stopped it before any byte of it
     was written -> ``unsent`` (with the reason): nothing reached a server, never
     ``ambiguous``.
3. A worker that dies mid-transaction leaves its row ``claimed``. ``recover`` marks such rows
   ``ambiguous`` (reported, never resent automatically): on SQLite at worker start (only one
   worker may run, ``WorkerGuard`` enforces it with a file lock); on PostgreSQL for every
   worker that no longer holds its session advisory lock (each live worker holds one keyed
   by its id, so a crashed worker's claims are recognised while others keep running).
   The worker claims in batches (worker.py): a crash leaves up to a batch of such rows.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from penguinctl.campaigns.models import CampaignSend, Lead
from penguinctl.campaigns.tables import CampaignMailbox, SendRetry
from penguinctl.errors import LockHeld

MAX_ATTEMPTS = 5
RETRY_BASE = timedelta(minutes=5)
RETRY_CAP = timedelta(hours=2)

SENDS = CampaignSend.__table__
LEADS = Lead.__table__
MAILBOXES = CampaignMailbox.__table__
RETRIES = SendRetry.__table__


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def retry_delay(attempts: int) -> timedelta:
    return min(RETRY_CAP, RETRY_BASE * (2 ** max(0, attempts - 1)))


# -- the four transitions -----------------------------------------------------------------------
_TS = sa.DateTime(timezone=True)
_CLAIM = sa.text(
    "INSERT INTO campaign_sends (tenant, campaign_id, lead_id, step, variant, mailbox, "
    "recipient, message_id, status, worker, claimed_at) "
    "SELECT :tenant, CAST(:campaign_id AS INTEGER), CAST(:lead_id AS INTEGER), "
    "CAST(:step AS INTEGER), :variant, :mailbox, :recipient, :message_id, 'claimed', :worker, "
    ":now WHERE EXISTS (SELECT 1 FROM leads WHERE id = :lead_id AND status = 'active' "
    "AND next_step = :step) ON CONFLICT (lead_id, step) DO NOTHING RETURNING id"
).bindparams(sa.bindparam("now", type_=_TS))
SENT = sa.text(
    "UPDATE campaign_sends SET status = 'sent', sent_at = :now, error = NULL "
    "WHERE id = :id AND status = 'claimed'"
).bindparams(sa.bindparam("now", type_=_TS))


def claim(
    conn: Connection,
    *,
    tenant: str,
    campaign_id: int,
    lead_id: int,
    step: int,
    variant: str | None,
    mailbox: str,
    recipient: str,
    message_id: str,
    worker: str,
    now: datetime,
) -> int | None:
    """Insert the claim (in the caller's transaction, which must commit before sending).

    Conditional: only while the lead is still ``active`` at ``step``, and only if no row exists
    for (lead, step): None otherwise (a reply arrived; another worker claimed it first -- on
    PostgreSQL a worker whose snapshot predates the other's commit can still see the lead as
    unclaimed, and the unique key decides)."""
    return conn.execute(
        _CLAIM,
        {
            "tenant": tenant,
            "campaign_id": campaign_id,
            "lead_id": lead_id,
            "step": step,
            "variant": variant,
            "mailbox": mailbox,
            "recipient": recipient,
            "message_id": message_id,
            "worker": worker,
            "now": now,
        },
    ).scalar()


@dataclass(frozen=True)
class ClaimRow:
    lead_id: int
    step: int
    variant: str | None
    mailbox: str
    recipient: str
    message_id: str


@functools.lru_cache(maxsize=64)
def _claim_many_sql(rows: int) -> sa.TextClause:
    # The statement starts with INSERT, not WITH: Python's sqlite3 opens its implicit
    # transaction only before a statement it sees as DML (by its first keyword), and a
    # ``WITH ... INSERT`` first in a transaction would run, and commit, on its own -- a
    # rollback (e.g. a stale mailbox row) would then leave the claims behind.
    # VALUES columns are column1..column6 in both SQLite and PostgreSQL.
    values = ", ".join(
        f"(CAST(:l{i} AS INTEGER), CAST(:s{i} AS INTEGER), :v{i}, :m{i}, :r{i}, :i{i})"
        for i in range(rows)
    )
    return sa.text(
        "INSERT INTO campaign_sends (tenant, campaign_id, lead_id, step, variant, mailbox, "
        "recipient, message_id, status, worker, claimed_at) "
        "SELECT :tenant, CAST(:campaign_id AS INTEGER), v.column1, v.column2, v.column3, "
        f"v.column4, v.column5, v.column6, 'claimed', :worker, :now FROM (VALUES {values}) AS v "
        "WHERE EXISTS (SELECT 1 FROM leads WHERE leads.id = v.column1 "
        "AND leads.status = 'active' AND leads.next_step = v.column2) "
        "ON CONFLICT (lead_id, step) DO NOTHING RETURNING id, lead_id"
    ).bindparams(sa.bindparam("now", type_=_TS))


def claim_many(
    conn: Connection,
    rows: list[ClaimRow],
    *,
    tenant: str,
    campaign_id: int,
    worker: str,
    now: datetime,
) -> dict[int, int]:
    """``claim`` for several leads of one campaign in one statement: {lead id: send id} of the
    claims inserted (the same conditions, per row: a lead that changed or was claimed by
    another worker is left out)."""
    if not rows:
        return {}
    params: dict[str, Any] = {
        "tenant": tenant,
        "campaign_id": campaign_id,
        "worker": worker,
        "now": now,
    }
    for i, row in enumerate(rows):
        params.update(
            {
                f"l{i}": row.lead_id,
                f"s{i}": row.step,
                f"v{i}": row.variant,
                f"m{i}": row.mailbox,
                f"r{i}": row.recipient,
                f"i{i}": row.message_id,
            }
        )
    result = conn.execute(_claim_many_sql(len(rows)), params)
    return {lead_id: send_id for send_id, lead_id in result.all()}


def _set(conn: Connection, send_id: int, **values: Any) -> bool:
    res = conn.execute(
        sa.update(SENDS).where(SENDS.c.id == send_id, SENDS.c.status == "claimed").values(**values)
    )
    return res.rowcount == 1


def mark_sent(conn: Connection, send_id: int, now: datetime) -> bool:
    return conn.execute(SENT, {"id": send_id, "now": now}).rowcount == 1


def mark_failed(conn: Connection, send_id: int, error: str) -> bool:
    return _set(conn, send_id, status="failed", error=error[:500])


def mark_unsent(conn: Connection, send_id: int, error: str) -> bool:
    """The message was never handed to a server (it could not be composed, or a local error
    stopped it before its first byte): the (lead, step) ends here, with the reason."""
    return _set(conn, send_id, status="unsent", error=error[:500])


def mark_ambiguous(conn: Connection, send_id: int, error: str) -> bool:
    return _set(conn, send_id, status="ambiguous", error=error[:500])


def release(
    conn: Connection,
    send_id: int,
    *,
    lead_id: int,
    step: int,
    error: str,
    now: datetime,
    count: bool = True,
) -> int:
    """Give the (lead, step) back after a failure the server definitely did not accept.
    Returns the attempts so far (0 when ``count`` is False: not the lead's fault)."""
    conn.execute(sa.delete(SENDS).where(SENDS.c.id == send_id, SENDS.c.status == "claimed"))
    if not count:
        return 0
    row = conn.execute(
        sa.select(RETRIES.c.attempts).where(RETRIES.c.lead_id == lead_id, RETRIES.c.step == step)
    ).first()
    attempts = (row.attempts if row else 0) + 1
    values = {"attempts": attempts, "last_error": error[:500], "updated_at": now}
    if row is None:
        conn.execute(sa.insert(RETRIES).values(lead_id=lead_id, step=step, **values))
    else:
        conn.execute(
            sa.update(RETRIES)
            .where(RETRIES.c.lead_id == lead_id, RETRIES.c.step == step)
            .values(**values)
        )
    return attempts


# -- crash recovery -----------------------------------------------------------------------------
def advisory_key(worker: str) -> int:
    return int.from_bytes(
        hashlib.sha256(b"penguinctl-worker:" + worker.encode()).digest()[:8], "big", signed=True
    )


@dataclass(frozen=True)
class Ambiguous:
    send_id: int
    campaign_id: int
    lead_id: int | None
    step: int
    mailbox: str
    worker: str | None
    claimed_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "send_id": self.send_id,
            "campaign_id": self.campaign_id,
            "lead_id": self.lead_id,
            "step": self.step,
            "mailbox": self.mailbox,
            "worker": self.worker,
            "claimed_at": self.claimed_at.isoformat() if self.claimed_at else None,
        }


_PLANNED = ("leads", "campaign_sends", "campaign_mailboxes")


def analyze_new_tables(engine: Engine) -> list[str]:
    """PostgreSQL: ``ANALYZE`` the tables the claim query plans over that were never analyzed
    (a fresh state store, or leads bulk-imported moments ago, before autovacuum's first pass).
    Without statistics the planner treats them as tiny and probes the ledger by a sequential
    scan per due lead, which grows with every send until autovacuum catches up. Returns the
    tables analyzed; a no-op elsewhere and once the statistics exist."""
    if engine.dialect.name != "postgresql":
        return []
    with engine.connect() as conn:
        stale = [
            name
            for name in _PLANNED
            if conn.execute(
                sa.text(
                    "SELECT last_analyze IS NULL AND last_autoanalyze IS NULL "
                    "FROM pg_stat_user_tables WHERE relid = to_regclass(:name)"
                ),
                {"name": name},
            ).scalar()
        ]
    if stale:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for name in stale:
                conn.execute(sa.text(f"ANALYZE {name}"))  # a fixed table name, not input
    return stale


def recover(engine: Engine, guard: WorkerGuard) -> list[Ambiguous]:
    """Mark the ``claimed`` rows of dead workers ``ambiguous``; returns them (for the report)."""
    with engine.begin() as conn:
        rows = conn.execute(
            sa.select(
                SENDS.c.id,
                SENDS.c.campaign_id,
                SENDS.c.lead_id,
                SENDS.c.step,
                SENDS.c.mailbox,
                SENDS.c.worker,
                SENDS.c.claimed_at,
            ).where(
                SENDS.c.status == "claimed",
                sa.or_(SENDS.c.worker.is_(None), SENDS.c.worker != guard.worker),
            )
        ).all()
        dead = {r.worker for r in rows if guard.is_dead(r.worker)}
        found = [Ambiguous(*r) for r in rows if r.worker in dead]
        if found:
            from penguinctl.campaigns.models import Campaign

            c = Campaign.__table__.c
            names = dict(
                (cid, (tenant, name))
                for cid, tenant, name in conn.execute(
                    sa.select(c.id, c.tenant, c.name).where(
                        c.id.in_({a.campaign_id for a in found})
                    )
                )
            )
            for a in found:
                tenant, name = names.get(a.campaign_id, ("", f"#{a.campaign_id}"))
                emit_ambiguous(
                    conn,
                    tenant=tenant,
                    campaign=name,
                    send_id=a.send_id,
                    lead_id=a.lead_id,
                    step=a.step,
                    mailbox=a.mailbox,
                    reason="worker stopped during the SMTP transaction; outcome unknown",
                )
        for worker in dead:
            cond = SENDS.c.worker.is_(None) if worker is None else SENDS.c.worker == worker
            conn.execute(
                sa.update(SENDS)
                .where(SENDS.c.status == "claimed", cond)
                .values(
                    status="ambiguous",
                    error="worker stopped during the SMTP transaction; outcome unknown",
                )
            )
        return found


def emit_ambiguous(
    conn: Connection,
    *,
    tenant: str,
    campaign: str,
    send_id: int,
    lead_id: int | None,
    step: int,
    mailbox: str,
    reason: str,
) -> None:
    """``send.ambiguous`` in the transaction marking the send so (the lead by id only)."""
    from penguinctl.events.outbox import emit

    emit(
        conn,
        "send.ambiguous",
        tenant=tenant,
        subject=f"campaign/{campaign}",
        payload={
            "campaign": campaign,
            "send_id": send_id,
            "lead_id": lead_id,
            "step": step + 1,
            "mailbox": mailbox,
            "reason": reason[:500],
        },
    )


class WorkerGuard:
    """Who may run: on SQLite one worker per state file (an exclusive ``flock`` on
    ``<db>.worker.lock``, released by the kernel if the process dies); on PostgreSQL any number,
    each holding a session advisory lock keyed by its id on a dedicated connection, which is
    how ``recover`` tells a live worker from a dead one."""

    def __init__(self, engine: Engine, worker: str) -> None:
        self.engine = engine
        self.worker = worker
        self.dialect = engine.dialect.name
        self._fh: Any = None
        self._conn: Connection | None = None

    def acquire(self) -> WorkerGuard:
        if self.dialect == "sqlite":
            db = self.engine.url.database
            if db and db != ":memory:":
                from penguinctl.private_files import create_file

                path = Path(db).expanduser().with_suffix(".worker.lock")
                create_file(path)  # 0600: it names the worker holding it
                fh = open(path, "a+")  # noqa: SIM115 - held for the worker's lifetime
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    fh.seek(0)
                    holder = fh.read().strip() or "another process"
                    fh.close()
                    raise LockHeld(
                        f"another worker is already running on the SQLite state store {db} "
                        f"({holder})",
                        hint="SQLite supports one worker; stop it, or use PostgreSQL "
                        "(PENGUINCTL_STATE=postgresql+psycopg://...) to run several",
                    ) from None
                fh.seek(0)
                fh.truncate()
                fh.write(f"worker {self.worker}\n")
                fh.flush()
                self._fh = fh
        elif self.dialect == "postgresql":
            self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._conn.execute(
                sa.text("SELECT pg_advisory_lock(:k)"), {"k": advisory_key(self.worker)}
            )
        return self

    def is_dead(self, other: str | None) -> bool:
        """Whether the worker that wrote a claim is gone (see the class doc)."""
        if other is None:
            return True
        if self.dialect != "postgresql":
            return other != self.worker  # only one worker can run on SQLite: this one
        assert self._conn is not None
        key = advisory_key(other)
        got = self._conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        if got:
            self._conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        return bool(got)

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
        if self._conn is not None:
            try:
                self._conn.execute(sa.text("SELECT pg_advisory_unlock_all()"))
            finally:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> WorkerGuard:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
