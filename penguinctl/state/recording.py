"""Record what a provider did: resource rows and one audit event per change, in the caller's
transaction (so a crash leaves either both or neither). Shared by apply and DKIM rotation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import Session

from penguinctl.plan.changes import Action, Change, ChangeResult
from penguinctl.state import audit, repo


def changed_fields(change: Change) -> list[str]:
    before, after = change.before or {}, change.after or {}
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def audit_change(
    session: Session,
    change: Change,
    *,
    actor: str,
    result: str,
    run_id: int | None,
    details: dict[str, Any],
    action: str | None = None,
) -> None:
    audit.record(
        session,
        actor=actor,
        tenant=change.key.tenant,
        action=action or change.action.value,
        resource=str(change.key),
        result=result,
        run_id=run_id,
        details={"provider": change.provider, **details},
    )


def record_results(
    session: Session,
    results: Sequence[ChangeResult],
    *,
    actor: str,
    run_id: int | None,
    details: dict[str, Any] | None = None,
) -> None:
    """Upsert/delete the rows of ``results`` and audit each change (never a value: field names)."""
    repo.record_batch(
        session,
        upserts=[
            (r.change.key, r.change.provider, r.data)
            for r in results
            if r.change.action is not Action.DELETE and r.data is not None
        ],
        deletes=[r.change.key for r in results if r.change.action is Action.DELETE],
        run_id=run_id,
    )
    audit.record_many(
        session,
        [
            {
                "actor": actor,
                "tenant": res.change.key.tenant,
                "action": res.change.action.value,
                "resource": str(res.change.key),
                "result": "ok",
                "run_id": run_id,
                "details": {
                    "provider": res.change.provider,
                    "fields": changed_fields(res.change),
                    **(details or {}),
                },
            }
            for res in results
        ],
    )
    if any(r.change.key.kind == "tenant" for r in results):  # plan history for billing
        from penguinctl.billing.history import note_tenant_changes

        note_tenant_changes(session, results)
