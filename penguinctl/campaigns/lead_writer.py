"""Writing imported leads in bulk (leads.py validates; this module stores).

Rows arrive validated, in file order, as :class:`NewLead` tuples. Every backend gives the same
result as merging row by row: a row whose address is already a lead of the campaign (stored
before, or earlier in the file) is merged into it (non-blank cells overwrite, custom fields are
merged, status and progress kept); any other row is a new lead.

- SQLite: one ``INSERT ... VALUES (...), (...) ON CONFLICT (campaign_id, email) DO UPDATE``
  (the merge) per batch, rows in file order, so duplicates within the file merge as they
  come, in a writer thread. The counts come from the campaign's lead counts before and after
  (SQLite has one writer: nothing else changes them inside the import's transaction).
- Both: the writer thread screens each batch for suppressions (through the session's
  connection, which nothing else uses until :meth:`LeadWriter.finish`).
- Both: the campaign's row is read, and locked for the import (``FOR UPDATE`` on PostgreSQL;
  SQLite's write lock), before any row is stored: ``leads`` has no foreign key to
  ``campaigns`` (models.Lead), and this is what refuses leads for a campaign that is not there.
- PostgreSQL: ``COPY`` (psycopg's ``cursor.copy``). Into ``leads`` directly when the campaign
  had no lead when the import started (its row is locked, so no other import adds any
  meanwhile), otherwise into a temporary staging table merged with one
  ``INSERT ... SELECT ... ON CONFLICT DO UPDATE`` per chunk. An address seen before in the file
  (a set of the addresses' hashes, about 70 bytes per row) is held back and merged after the
  rows before it are stored, through the staging table. No query per row, none whose cost grows
  with the table: linear.
"""

from __future__ import annotations

import contextlib
import json
import operator
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from itertools import chain
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from penguinctl.campaigns.models import Campaign, Lead
from penguinctl.errors import NotFound

CHUNK = 100_000  # rows staged before a merge (PostgreSQL, campaign with leads)
HELD_BACK = 20_000  # duplicate rows held before they are merged (PostgreSQL)
COPY_ROWS = 20_000  # rows of one COPY straight into leads (PostgreSQL)

_COLUMNS = (
    "campaign_id, email, first_name, last_name, company, timezone, fields, status, next_step, "
    "created_at, updated_at"
)
_MERGE = (
    "first_name = coalesce(excluded.first_name, leads.first_name), "
    "last_name = coalesce(excluded.last_name, leads.last_name), "
    "company = coalesce(excluded.company, leads.company), "
    "timezone = coalesce(excluded.timezone, leads.timezone), "
    "fields = {fields}, updated_at = excluded.updated_at"
)


class NewLead(NamedTuple):
    email: str
    first_name: str | None
    last_name: str | None
    company: str | None
    timezone: str | None
    fields: str  # custom fields, JSON text (fields_json)
    status: str  # active | suppressed


_email = operator.itemgetter(0)  # NewLead.email
_status = operator.itemgetter(6)  # NewLead.status


class Counts(NamedTuple):
    created: int  # new active leads
    suppressed: int  # new leads stored suppressed
    merged: int  # rows merged into a lead stored before or earlier in the file


def fields_json(fields: dict[str, str]) -> str:
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False) if fields else "{}"


def _merged(rows: list[NewLead]) -> NewLead:
    first = rows[0]
    known = [first.first_name, first.last_name, first.company, first.timezone]
    fields = json.loads(first.fields)
    for row in rows[1:]:
        for i, value in enumerate((row.first_name, row.last_name, row.company, row.timezone)):
            if value is not None:
                known[i] = value
        fields.update(json.loads(row.fields))
    return NewLead(first.email, *known, fields_json(fields), first.status)  # type: ignore[misc]


class LeadWriter:
    """Stores rows (:meth:`add`), then :meth:`finish` returns the counts."""

    def add(self, rows: list[NewLead]) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def finish(self) -> Counts:  # pragma: no cover - interface
        raise NotImplementedError


Screen = Callable[[list[NewLead]], list[NewLead]]


def writer_for(
    session: Session, campaign_id: int, now: datetime, screen: Screen | None = None
) -> LeadWriter:
    """The backend's writer. ``screen``: the rows of a batch to store (suppressed ones marked,
    forgotten people left out), asked through the session's connection; None when no
    suppression applies. Raises NotFound when the campaign is not stored."""
    _lock_campaign(session, campaign_id)
    if session.get_bind().dialect.name == "postgresql":
        return PostgresWriter(session, campaign_id, now, screen)
    return SqliteWriter(session, campaign_id, now, screen)


def _lock_campaign(session: Session, campaign_id: int) -> None:
    """The campaign's row, locked until the import's transaction ends, or NotFound.
    ``leads`` has no foreign key (models.Lead): this check, once per import, is what its
    per-row check guaranteed. PostgreSQL: ``SELECT ... FOR UPDATE``. SQLite has one writer,
    but pysqlite begins a transaction at the first write only (a read before it is a
    transaction of its own): a write that changes nothing takes the database's write lock
    here, so the campaign found is still there when the rows are written, and the lead
    counts SqliteWriter reads next cannot change before the import commits."""
    t = Campaign.__table__
    if session.get_bind().dialect.name == "postgresql":
        query = sa.select(t.c.id).where(t.c.id == campaign_id).with_for_update()
        found = session.execute(query).first() is not None
    else:
        touch = sa.update(t).where(t.c.id == campaign_id).values(updated_at=t.c.updated_at)
        found = session.execute(touch).rowcount == 1
    if not found:
        raise NotFound(f"campaign {campaign_id} is not stored: no lead can be imported into it")


class _Threaded(LeadWriter):
    """Stores the batches in a thread of its own, in order: the database's work (outside the
    GIL: SQLite's B-tree, PostgreSQL's server) overlaps the parsing of the next rows. At most
    ``QUEUE`` batches wait. The session's connection is used by that thread only until
    :meth:`finish` (the caller does not use it meanwhile); an error is raised in the caller's
    thread at the next :meth:`add` or at :meth:`finish`."""

    QUEUE = 16

    def __init__(self, screen: Screen | None) -> None:
        self.screen = screen
        self.queue: queue.Queue[list[NewLead] | None] = queue.Queue(self.QUEUE)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="leads-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            rows = self.queue.get()
            if self.error is None:
                try:
                    if rows is None:
                        self._end()
                    else:
                        self._store(rows)
                except BaseException as exc:  # re-raised in the caller's thread
                    self.error = exc
            if rows is None:
                return

    def _store(self, rows: list[NewLead]) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def _end(self) -> None:
        """After the last batch, in the thread."""

    def add(self, rows: list[NewLead]) -> None:
        if self.error is not None:
            self._stop()
        self.queue.put(rows)

    def _stop(self) -> None:
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()
        if self.error is not None:
            raise self.error


def _lead_counts(session: Session, campaign_id: int) -> tuple[int, int]:
    t = Lead.__table__
    row = session.execute(
        sa.select(
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(sa.case((t.c.status == "suppressed", 1), else_=0)), 0),
        ).where(t.c.campaign_id == campaign_id)
    ).one()
    return int(row[0]), int(row[1])


def _lead_count(session: Session, campaign_id: int) -> int:
    """The campaign's leads (read from the (campaign_id, email) index alone)."""
    t = Lead.__table__
    query = sa.select(sa.func.count()).select_from(t).where(t.c.campaign_id == campaign_id)
    return int(session.execute(query).scalar_one())


def _stamp(session: Session, now: datetime) -> Any:
    """``now`` as the driver stores it (SQLAlchemy's own bind processing for the column)."""
    dialect = session.get_bind().dialect
    process = sa.DateTime(timezone=True).dialect_impl(dialect).bind_processor(dialect)
    return process(now) if process else now


class SqliteWriter(_Threaded):
    """The merging INSERT, in the writer thread, one statement per batch: many rows to a
    ``VALUES`` list (SQLite merges a duplicate of an earlier row of the same statement as it
    comes), so the thread takes the GIL once per batch to bind it and SQLite's work on the
    batch runs outside it, in parallel with the parsing (``executemany`` takes the GIL back
    after every row, which holds the thread until the parser lets it go: no overlap). The
    import's connection keeps up to ``CACHE_KIB`` of pages (SQLite's default is 2 MiB), so the
    unique index's pages stay in memory instead of being spilled to the WAL and read again
    (restored after)."""

    CACHE_KIB = 64 * 1024
    PER_STATEMENT = 1000  # rows (7 parameters each; fewer when SQLite allows fewer variables)

    def __init__(
        self, session: Session, campaign_id: int, now: datetime, screen: Screen | None
    ) -> None:
        self.campaign_id = campaign_id
        self.rows = 0
        self.marked = 0  # rows stored with status suppressed
        self.before = _lead_counts(session, campaign_id)
        self.session = session
        driver = session.connection().connection.driver_connection
        self.cursor = driver.cursor()
        self.cache = self.cursor.execute("PRAGMA cache_size").fetchone()[0]
        self.cursor.execute(f"PRAGMA cache_size = -{self.CACHE_KIB}")
        variables = driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        self.per_statement = max(1, min(self.PER_STATEMENT, variables // len(NewLead._fields)))
        stamp = _stamp(session, now)
        assert isinstance(stamp, str) and "'" not in stamp and isinstance(campaign_id, int)
        # the campaign id and the time are the same for every row: literals (ours, not input)
        self.values = f"({campaign_id}, ?, ?, ?, ?, ?, ?, ?, 0, '{stamp}', '{stamp}')"
        self.merge = " ON CONFLICT (campaign_id, email) DO UPDATE SET " + _MERGE.format(
            fields="json_patch(leads.fields, excluded.fields)"
        )
        self.statements: dict[int, str] = {}
        super().__init__(screen)

    def _statement(self, count: int) -> str:
        sql = self.statements.get(count)
        if sql is None:
            values = ", ".join([self.values] * count)
            sql = f"INSERT INTO leads ({_COLUMNS}) VALUES {values}{self.merge}"
            self.statements[count] = sql
        return sql

    def _store(self, rows: list[NewLead]) -> None:
        if self.screen is not None:
            rows = self.screen(rows)
            self.marked += sum(1 for row in rows if row.status != "active")
        self.rows += len(rows)
        step = self.per_statement
        for start in range(0, len(rows), step):
            part = rows[start : start + step]
            self.cursor.execute(self._statement(len(part)), list(chain.from_iterable(part)))

    def finish(self) -> Counts:
        try:
            self._stop()
        finally:
            self.cursor.execute(f"PRAGMA cache_size = {int(self.cache)}")
            self.cursor.close()
        if self.marked:
            total, suppressed = _lead_counts(self.session, self.campaign_id)
        else:  # only a row marked suppressed makes a suppressed lead: count the leads only
            total, suppressed = _lead_count(self.session, self.campaign_id), self.before[1]
        new_suppressed = suppressed - self.before[1]
        new = total - self.before[0]
        return Counts(new - new_suppressed, new_suppressed, self.rows - new)


class PostgresWriter(_Threaded):
    """COPY in the writer thread. Straight into ``leads``, a COPY is ended every
    ``COPY_ROWS`` rows (one round trip each). That bound was set for the foreign key to
    ``campaigns`` (an AFTER trigger per row, run when the COPY ended, while the next rows
    were parsed); ``leads`` has none since migration 0016."""

    def __init__(
        self, session: Session, campaign_id: int, now: datetime, screen: Screen | None
    ) -> None:
        self.session = session
        self.campaign_id = campaign_id
        self.now = now  # the campaign's row is locked (writer_for)
        self.direct = session.execute(
            sa.text("SELECT NOT EXISTS (SELECT 1 FROM leads WHERE campaign_id = :id)"),
            {"id": campaign_id},
        ).scalar_one()
        self.conn = session.connection().connection.driver_connection
        self.cursor = self.conn.cursor()
        self.seen: set[int] = set()
        self.held: list[NewLead] = []
        self.staged = 0
        self.created = self.suppressed = self.merged = 0
        self._copy: Any = None
        self._copy_cm: Any = None
        self._stage_ready = False
        self.copied = 0  # rows in the COPY straight into leads that is open
        super().__init__(screen)

    # -- COPY --------------------------------------------------------------------------------
    def _ensure_stage(self) -> None:
        if not self._stage_ready:
            self.cursor.execute(  # the columns' types, no constraint
                f"CREATE TEMP TABLE IF NOT EXISTS penguinctl_lead_stage ON COMMIT DROP AS "
                f"SELECT {_COLUMNS} FROM leads WITH NO DATA"
            )
            self.cursor.execute("TRUNCATE penguinctl_lead_stage")
            self._stage_ready = True

    def _open(self, table: str) -> Any:
        if self._copy is None:
            if table != "leads":
                self._ensure_stage()
            self._copy_cm = self.cursor.copy(
                f"COPY {table} ({_COLUMNS}) FROM STDIN (FORMAT text, NULL '')"
            )
            self._copy = self._copy_cm.__enter__()
        return self._copy

    def _close(self) -> None:
        if self._copy is not None:
            cm, self._copy, self._copy_cm = self._copy_cm, None, None
            self.copied = 0
            cm.__exit__(None, None, None)

    def _write(self, copy: Any, rows: Iterable[NewLead]) -> None:
        """The rows in COPY's text format (an empty cell is NULL: no stored value is empty),
        a batch per write (no per-row driver call). Cells never hold a tab, CR or LF
        (leads.py refuses control characters; JSON escapes its own), so only the backslash
        needs escaping, done once over the batch (no other part of a line holds one)."""
        head = f"{self.campaign_id}\t"
        tail = f"\t0\t{self.now.isoformat()}\t{self.now.isoformat()}\n"
        text = "".join(
            [
                f"{head}{e}\t{f or ''}\t{la or ''}\t{co or ''}\t{tz or ''}\t{fi}\t{st}{tail}"
                for e, f, la, co, tz, fi, st in rows
            ]
        )
        copy.write(text.replace("\\", "\\\\") if "\\" in text else text)

    # -- merging -----------------------------------------------------------------------------
    def _merge_stage(self) -> None:
        self._close()
        self.cursor.execute(
            f"WITH done AS (INSERT INTO leads ({_COLUMNS}) SELECT {_COLUMNS} "
            "FROM penguinctl_lead_stage ON CONFLICT (campaign_id, email) DO UPDATE SET "
            + _MERGE.format(fields="leads.fields || excluded.fields")
            + " RETURNING (xmax = 0) AS new, status) "
            "SELECT count(*) FILTER (WHERE new AND status = 'active'), "
            "count(*) FILTER (WHERE new AND status <> 'active'), count(*) FILTER (WHERE NOT new) "
            "FROM done"
        )
        created, suppressed, merged = self.cursor.fetchone()
        self.created += created
        self.suppressed += suppressed
        self.merged += merged
        self.cursor.execute("TRUNCATE penguinctl_lead_stage")
        self.staged = 0

    def _flush(self) -> None:
        """Store what was copied so far, then merge the held-back duplicates (in file order,
        one merged row per address) through the staging table."""
        if self.direct:
            self._close()
        elif self.staged:
            self._merge_stage()
        if not self.held:
            return
        by_email: dict[str, list[NewLead]] = {}
        for row in self.held:
            by_email.setdefault(row.email, []).append(row)
        self.merged += len(self.held) - len(by_email)
        self.held = []
        self._write(self._open("penguinctl_lead_stage"), map(_merged, by_email.values()))
        self.staged = len(by_email)
        self._merge_stage()

    def _store(self, rows: list[NewLead]) -> None:
        if self.screen is not None:
            self._close()  # no query while a COPY is open
            rows = self.screen(rows)
        seen = self.seen
        keys = list(map(hash, map(_email, rows)))
        batch = set(keys)
        if len(batch) == len(keys) and seen.isdisjoint(batch):  # no duplicate: set operations
            seen |= batch
            fresh = rows
        else:
            fresh = []
            for row, key in zip(rows, keys, strict=True):
                if key in seen:
                    self.held.append(row)
                else:
                    seen.add(key)
                    fresh.append(row)
        if fresh:
            self._write(self._open("leads" if self.direct else "penguinctl_lead_stage"), fresh)
            if self.direct:
                active = list(map(_status, fresh)).count("active")
                self.created += active
                self.suppressed += len(fresh) - active
                self.copied += len(fresh)
            else:
                self.staged += len(fresh)
        if len(self.held) >= HELD_BACK or self.staged >= CHUNK:
            self._flush()
        elif self.copied >= COPY_ROWS:
            self._close()

    def _end(self) -> None:
        self._flush()
        self._close()

    def finish(self) -> Counts:
        try:
            self._stop()
        finally:
            self._close_quietly()
            self.cursor.close()
            self.seen = set()
        return Counts(self.created, self.suppressed, self.merged)

    def _close_quietly(self) -> None:
        """After an error: leave an open COPY (its error ends the transaction)."""
        if self._copy is not None:
            cm, self._copy, self._copy_cm = self._copy_cm, None, None
            # the caller rolls back; the first error is the one raised
            with contextlib.suppress(Exception):
                cm.__exit__(RuntimeError, RuntimeError("import failed"), None)
