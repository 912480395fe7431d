"""The append-only audit log: who, when, tenant, action, resource, result. Never a secret value:
callers pass names, references and field names, not values."""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from penguinctl.state.models import AuditEvent, utcnow

_CI_SYSTEMS = (
    ("GITHUB_ACTIONS", "github"),
    ("GITLAB_CI", "gitlab"),
    ("BUILDKITE", "buildkite"),
    ("CIRCLECI", "circleci"),
    ("JENKINS_URL", "jenkins"),
)


def default_actor(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    if env.get("CI", "").lower() == "true":
        for var, name in _CI_SYSTEMS:
            if env.get(var):
                return f"ci:{name}"
        return "ci"
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def record(
    session: Session,
    *,
    actor: str,
    tenant: str,
    action: str,
    resource: str,
    result: str,
    run_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEvent(
            actor=actor,
            tenant=tenant,
            action=action,
            resource=resource,
            result=result,
            run_id=run_id,
            details=details or {},
        )
    )


def record_many(session: Session, events: list[dict[str, Any]]) -> None:
    """Append many events in one executemany INSERT. Each dict has the keyword arguments of
    ``record`` (``run_id`` and ``details`` optional)."""
    if not events:
        return
    now = utcnow()
    rows = [{"ts": now, "run_id": None, **e, "details": e.get("details") or {}} for e in events]
    session.execute(sa.insert(AuditEvent.__table__), rows)


def list_events(
    session: Session,
    *,
    tenant: str | None = None,
    resource: str | None = None,
    since: datetime | None = None,
    limit: int = 200,
) -> list[AuditEvent]:
    stmt = select(AuditEvent)
    if tenant is not None:
        stmt = stmt.where(AuditEvent.tenant == tenant)
    if resource is not None:
        stmt = stmt.where(col(AuditEvent.resource).contains(resource))
    if since is not None:
        stmt = stmt.where(AuditEvent.ts >= since)
    return list(session.exec(stmt.order_by(col(AuditEvent.id).desc()).limit(limit)))
