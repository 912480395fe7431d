"""``api_plans`` (migration 0010): plans made through the API (``POST /plans``), kept so that
``POST /plans/{id}/apply`` applies what was reviewed: the documents, the checksum, and the apply
job's status and outcome (the status URL reads this row), and the process that runs the job."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime
from sqlmodel import Field, SQLModel

from penguinctl.state.columns import JsonType
from penguinctl.state.models import utcnow


def _ts(nullable: bool = False) -> Any:
    if nullable:
        return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    return Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


def _json() -> Any:
    return Field(default_factory=dict, sa_column=Column(JsonType, nullable=False))


class ApiPlan(SQLModel, table=True):
    __tablename__ = "api_plans"

    id: str = Field(primary_key=True)
    tenant: str = Field(index=True)  # the creating key's tenant ("" for a platform key)
    tenants: list[str] = Field(default_factory=list, sa_column=Column(JsonType, nullable=False))
    created_by: str  # key:<id>
    operation: str  # apply | destroy
    targets: list[str] = Field(default_factory=list, sa_column=Column(JsonType, nullable=False))
    documents: dict[str, Any] = _json()  # client file name -> YAML text
    checksum: str
    changes: int
    plan: dict[str, Any] = _json()  # the plan as data (what the client reviewed)
    status: str = "planned"  # planned | queued | applying | applied | no-op | failed
    created_at: datetime = _ts()
    applied_by: str | None = None
    started_at: datetime | None = _ts(nullable=True)
    finished_at: datetime | None = _ts(nullable=True)
    exit_code: int | None = None
    result: dict[str, Any] = _json()  # the apply report, or the problem document
    # the serve process running the apply job (migration 0014): while the plan is queued or
    # applying, it refreshes heartbeat; a job whose owner is gone is failed (plans.reap)
    owner_host: str | None = None
    owner_pid: int | None = None
    owner_started: float | None = None  # the owner's process start time (a recycled pid)
    # database epoch seconds, like job_runs.heartbeat (migration 0015; control.tables.db_epoch)
    heartbeat: float | None = None
