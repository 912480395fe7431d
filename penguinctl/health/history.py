"""Check runs and their results in the state store (one ``check_runs`` row per invocation, one
``check_results`` row per result), audited as ``check.run``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from penguinctl import clock
from penguinctl.health.results import Result, overall
from penguinctl.health.tables import check_results, check_runs


def save(
    session, results: Sequence[Result], *, actor: str, targets: list[str], started: datetime
) -> int:
    from penguinctl.state.audit import record

    now = clock.now()
    counts = dict(Counter(r.status for r in results))
    status = overall(list(results))
    run_id = session.execute(
        check_runs.insert().values(
            actor=actor,
            targets=targets,
            status=status,
            counts=counts,
            started_at=started,
            finished_at=now,
        )
    ).inserted_primary_key[0]
    if results:
        session.execute(
            check_results.insert(),
            [
                {
                    "run_id": run_id,
                    "tenant": r.tenant,
                    "target_kind": r.target_kind,
                    "target": r.target,
                    "check": r.check,
                    "subject": r.subject,
                    "status": r.status,
                    "critical": r.critical,
                    "detail": r.detail[:1000],
                    "data": r.data,
                    "checked_at": now,
                }
                for r in results
            ],
        )
    bad = [r for r in results if r.failing]
    record(
        session,
        actor=actor,
        tenant="",
        action="check.run",
        resource="check",
        result="ok" if not bad else "failed",
        details={
            "run_id": run_id,
            "targets": targets[:50],
            "counts": counts,
            "failures": [f"{r.target} {r.check} {r.subject}" for r in bad][:50],
        },
    )
    return int(run_id)


def recent(engine, *, target: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    stmt = sa.select(check_results).order_by(check_results.c.id.desc()).limit(limit)
    if target is not None:
        stmt = stmt.where(check_results.c.target == target)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(stmt).mappings()]
