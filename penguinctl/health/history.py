"""Check runs and their results in the state store (one ``check_runs`` row per invocation, one
``check_results`` row per result), audited as ``check.run``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from penguinctl import clock
from penguinctl.health.results import FAILING, Result, overall
from penguinctl.health.tables import check_results, check_runs
from penguinctl.state.columns import aware


def save(
    session, results: Sequence[Result], *, actor: str, targets: list[str], started: datetime
) -> int:
    from penguinctl.state.audit import record

    now = clock.now()
    previous = last_statuses(session, {r.target for r in results})
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
    transitions(session, results, run_id=int(run_id), previous=previous)
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


Key = tuple[str, str, str]  # (target, check, subject)


def last_statuses(session, targets: set[str]) -> dict[Key, str]:
    """The latest recorded status of every check of ``targets``."""
    c = check_results.c
    out: dict[Key, str] = {}
    names = sorted(targets)
    for i in range(0, len(names), 500):
        latest = (
            sa.select(sa.func.max(c.id).label("id"))
            .where(c.target.in_(names[i : i + 500]))
            .group_by(c.target, c.check, c.subject)
            .subquery()
        )
        rows = session.execute(
            sa.select(c.target, c.check, c.subject, c.status).join(latest, latest.c.id == c.id)
        )
        out.update({(t, ch, s): st for t, ch, s, st in rows})
    return out


def transitions(
    session, results: Sequence[Result], *, run_id: int, previous: dict[Key, str]
) -> list[str]:
    """Events for the checks whose state changed since their last recorded result: a block-list
    listing (``blocklist.listed`` / ``.delisted``), any other failure (``check.failed`` /
    ``.recovered``; a block-list query that could not run is a failed check). A check seen for
    the first time reports only a failure. Returns the event ids."""
    from penguinctl.events.outbox import emit_many

    rows = []
    for r in results:
        prev = previous.get((r.target, r.check, r.subject))
        base = {"target_kind": r.target_kind, "target": r.target, "run_id": run_id}
        if r.check.startswith("dnsbl:"):
            zone = r.check.split(":", 1)[1]
            bl = {**base, "list": zone, "listed": r.subject}
            subject = f"blocklist/{zone}/{r.subject}"
            if r.status == "fail" and prev != "fail":
                rows.append(_row("blocklist.listed", r, subject, {**bl, "detail": r.detail}))
                continue
            if prev == "fail" and not r.failing:
                rows.append(_row("blocklist.delisted", r, subject, bl))
                continue
            if r.status == "fail" or prev == "fail":
                continue
        check = {**base, "check": r.check, "subject": r.subject, "status": r.status}
        subject = f"check/{r.target}/{r.check}/{r.subject}"
        if r.failing and prev not in FAILING:
            detail = {"detail": r.detail, "critical": r.critical}
            rows.append(_row("check.failed", r, subject, {**check, **detail}))
        elif not r.failing and prev in FAILING:
            rows.append(_row("check.recovered", r, subject, {**check, "detail": r.detail}))
    return emit_many(session, rows)


def _row(type_: str, r: Result, subject: str, payload: dict[str, Any]) -> dict[str, Any]:
    from penguinctl.events.outbox import row

    payload = {k: (v[:500] if isinstance(v, str) else v) for k, v in payload.items()}
    return row(type_, tenant=r.tenant, subject=subject[:400], payload=payload)


def recent(
    engine,
    *,
    target: str | None = None,
    tenant: str | None = None,
    check: str | None = None,
    since: datetime | None = None,
    problems: bool = False,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Stored results, newest first; ``check`` may end with ``*`` (a prefix)."""
    c = check_results.c
    stmt = sa.select(check_results).order_by(c.id.desc()).limit(limit)
    if target is not None:
        stmt = stmt.where(c.target == (target.lower().rstrip(".") if "." in target else target))
    if tenant is not None:
        stmt = stmt.where(c.tenant == tenant)
    if check is not None:
        stmt = stmt.where(
            c.check.startswith(check[:-1]) if check.endswith("*") else c.check == check
        )
    if since is not None:
        stmt = stmt.where(c.checked_at >= since)
    if problems:
        stmt = stmt.where(c.status != "ok")
    with engine.connect() as conn:
        out = []
        for r in conn.execute(stmt).mappings():
            row = dict(r)
            row["checked_at"] = aware(row["checked_at"]).isoformat(timespec="seconds")
            out.append(row)
        return out
