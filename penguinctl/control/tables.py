"""The control plane's tables (migration 0008), declared once as SQLModel classes.

- ``spec_documents``: the spec documents each apply recorded, per tenant (the platform's as
  tenant ``""``), normalised and content-hashed; jobs run from them without ``-f``.
- ``job_series``: one row per scheduled series (job, tenant, target): its cron schedule, the next
  tick it is due at (indexed: the scheduler reads only what is due), pause and back-off state.
- ``job_runs``: every run of a job (scheduled, caught up after downtime, or asked for with
  ``jobs run``). A partial unique index allows one ``running`` row per series: a job never
  overlaps itself, whichever process runs it.
- ``control_leases``: the scheduler leader's lease (River's leader table): holder, fencing token
  (incremented on every election), expiry in the database's own clock.
- ``job_due``: per-subject due times a job keeps for itself (the DKIM rotation's next step per
  domain), so an idle run reads only what is due.
- ``stripe_events``: Stripe webhook events already processed (idempotency per event id).

Lease and heartbeat instants are seconds since the epoch *as the database server counts them*
(``db_epoch``): they measure real elapsed time between processes, which the product clock (that
tests move forward by weeks) must not; every replica reads the same clock there.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Column, DateTime, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from penguinctl.state.columns import JsonType, ts_field


class SpecDocument(SQLModel, table=True):
    __tablename__ = "spec_documents"
    __table_args__ = (UniqueConstraint("tenant", "kind", "name", name="uq_spec_documents_key"),)

    id: int | None = Field(default=None, primary_key=True)
    tenant: str = Field(index=True)  # "" for platform documents (no metadata.tenant)
    kind: str
    name: str
    sha256: str
    document: dict[str, Any] = Field(sa_column=Column(JsonType, nullable=False))
    run_id: int | None = None  # the apply run that recorded it (None: an apply with no changes)
    actor: str
    recorded_at: datetime = ts_field()


class JobSeries(SQLModel, table=True):
    __tablename__ = "job_series"
    __table_args__ = (
        UniqueConstraint("job", "tenant", "target", name="uq_job_series_key"),
        Index("ix_job_series_due", "next_run_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    job: str
    tenant: str  # "" for platform jobs
    target: str = ""  # e.g. the BackupPolicy a backup series follows
    schedule: str  # cron expression
    source: str  # where the schedule came from: config | Schedule/NAME | BackupPolicy/NAME
    next_run_at: datetime | None = ts_field(nullable=True)
    last_scheduled_for: datetime | None = ts_field(nullable=True)
    paused: bool = False
    failures: int = 0  # consecutive failed runs (back-off)
    active: bool = True  # False once no recorded spec or config asks for it any more
    updated_at: datetime = ts_field()


class JobPause(SQLModel, table=True):
    """``jobs pause JOB [--tenant T]``: tenant ``*`` pauses the job for every tenant."""

    __tablename__ = "job_pauses"

    job: str = Field(primary_key=True)
    tenant: str = Field(primary_key=True)
    actor: str
    paused_at: datetime = ts_field()


class JobRun(SQLModel, table=True):
    __tablename__ = "job_runs"
    __table_args__ = (
        Index("ix_job_runs_series", "job", "tenant", "target", "id"),
        # one running run per series, whichever process runs it
        Index(
            "uq_job_runs_running",
            "job",
            "tenant",
            "target",
            unique=True,
            sqlite_where=sa.text("status = 'running'"),
            postgresql_where=sa.text("status = 'running'"),
        ),
        # a scheduled tick runs once, across leaders and restarts (an interrupted run's tick
        # may run again: that is how it converges)
        Index(
            "uq_job_runs_tick",
            "job",
            "tenant",
            "target",
            "scheduled_for",
            unique=True,
            sqlite_where=sa.text("trigger != 'manual' AND status != 'interrupted'"),
            postgresql_where=sa.text("trigger != 'manual' AND status != 'interrupted'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    job: str
    tenant: str
    target: str = ""
    trigger: str  # schedule | catch-up | manual
    scheduled_for: datetime = ts_field()
    started_at: datetime = ts_field()
    finished_at: datetime | None = ts_field(nullable=True)
    # running | ok | failed | timeout | interrupted | skipped
    status: str = "running"
    summary: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JsonType, nullable=False)
    )
    error: str | None = None
    host: str
    pid: int
    owner: str  # the process (host:pid:nonce) running it
    lease_token: int | None = None  # the leader's fencing token (None: run by `jobs run`)
    heartbeat: float = 0.0  # database epoch seconds, refreshed while running
    duration_seconds: float | None = None


class ControlLease(SQLModel, table=True):
    __tablename__ = "control_leases"

    name: str = Field(primary_key=True)  # "scheduler"
    holder: str
    host: str
    pid: int
    token: int  # fencing token: incremented on every election
    expires_at: float  # database epoch seconds
    elected_at: float


class DueItem(SQLModel, table=True):
    __tablename__ = "job_due"
    __table_args__ = (Index("ix_job_due_when", "job", "due_at"),)

    job: str = Field(primary_key=True)
    tenant: str = Field(primary_key=True)
    subject: str = Field(primary_key=True)  # e.g. a domain
    due_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class StripeEvent(SQLModel, table=True):
    __tablename__ = "stripe_events"

    id: str = Field(primary_key=True)  # evt_...
    type: str
    received_at: datetime = ts_field()
    result: str  # applied | ignored
    detail: str | None = None


def db_epoch(dialect: str) -> sa.ColumnElement[float]:
    """The database server's current time as epoch seconds (see the module docstring)."""
    if dialect == "postgresql":
        return sa.func.extract("epoch", sa.func.clock_timestamp())
    return sa.literal_column("((julianday('now') - 2440587.5) * 86400.0)")
