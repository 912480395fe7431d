"""The check history tables (migration 0004), declared once as SQLModel classes; ``check_runs``
and ``check_results`` below are their ``__table__`` for Core statements. (A failed check pauses
campaigns through ``penguinctl.campaigns.models.Campaign``'s table.)"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, ForeignKey, Index, Integer
from sqlmodel import Field, SQLModel

from penguinctl.state.columns import json_field, ts_field


class CheckRun(SQLModel, table=True):
    __tablename__ = "check_runs"

    id: int | None = Field(default=None, primary_key=True)
    actor: str
    targets: dict[str, Any] = json_field()
    status: str  # running | ok | warn | fail
    counts: dict[str, Any] = json_field()
    started_at: datetime = ts_field()
    finished_at: datetime | None = ts_field(nullable=True)


class CheckResult(SQLModel, table=True):
    __tablename__ = "check_results"
    __table_args__ = (Index("ix_check_results_target", "target", "check", "checked_at"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(
        sa_column=Column(
            Integer,
            ForeignKey("check_runs.id", name="fk_check_results_run", ondelete="CASCADE"),
            nullable=False,
        )
    )
    tenant: str
    target_kind: str  # server | domain
    target: str
    check: str  # e.g. smtp:25, dnsbl:zen.spamhaus.org
    subject: str  # what was checked (IP, host:port...)
    status: str  # ok | warn | fail | error
    critical: bool
    detail: str
    data: dict[str, Any] = json_field()
    checked_at: datetime = ts_field()


check_runs = CheckRun.__table__
check_results = CheckResult.__table__
