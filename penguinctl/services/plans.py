"""Plans made through the API: ``create`` (plan the documents, keep them with the checksum),
``start_apply`` (verify the checksum, queue the apply job), ``run_apply`` (the job: the same
``specs.apply`` as the CLI, lock and checksum included; the outcome, or the problem with its
CLI exit code, is recorded on the plan's row, which the status URL reads)."""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from penguinctl.errors import ChecksumMismatch, NotFound, PenguinError, UsageError
from penguinctl.services import specs as spec_service
from penguinctl.services.context import ServiceContext
from penguinctl.services.tables import ApiPlan
from penguinctl.state.columns import aware

log = logging.getLogger("penguinctl.api.plans")
MAX_CONCURRENT_APPLIES = 4
_slots = threading.BoundedSemaphore(MAX_CONCURRENT_APPLIES)
FINISHED = ("applied", "no-op", "failed")


def to_json(row: ApiPlan, *, with_plan: bool = True) -> dict[str, Any]:
    def iso(v: Any) -> str | None:
        return aware(v).isoformat() if v is not None else None

    data: dict[str, Any] = {
        "id": row.id,
        "tenant": row.tenant or None,
        "tenants": row.tenants,
        "operation": row.operation,
        "targets": row.targets,
        "files": sorted(row.documents),
        "checksum": row.checksum,
        "changes": row.changes,
        "status": row.status,
        "created_by": row.created_by,
        "created_at": iso(row.created_at),
        "applied_by": row.applied_by,
        "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at),
        "exit_code": row.exit_code,
        "result": row.result or None,
    }
    if with_plan:
        data["plan"] = row.plan
    return data


def create(
    ctx: ServiceContext,
    documents: Mapping[str, str],
    *,
    targets: Sequence[str] = (),
    destroy: bool = False,
    refresh: bool = True,
) -> ApiPlan:
    """Plan ``documents`` (client file name -> YAML) and keep the plan for a later apply."""
    from penguinctl.control.specs import owner
    from penguinctl.state.db import session_scope

    loaded = spec_service.load_documents(documents, tenant=ctx.tenant)
    the_plan = spec_service.plan(ctx, loaded, destroy=destroy, targets=targets, refresh=refresh)
    row = ApiPlan(
        id="plan_" + secrets.token_hex(8),
        tenant=ctx.tenant or "",
        tenants=sorted({owner(d) for d in loaded.documents}),
        created_by=ctx.actor,
        operation="destroy" if destroy else "apply",
        targets=list(targets),
        documents=dict(documents),
        checksum=the_plan.checksum(),
        changes=len(the_plan.changes),
        plan=spec_service.plan_json(the_plan),
        created_at=ctx.now(),
    )
    with session_scope(ctx.db) as session:
        session.add(row)
    return row


def get(session: Session, plan_id: str, *, tenant: str | None) -> ApiPlan:
    row = session.get(ApiPlan, plan_id)
    if row is None or (tenant is not None and row.tenant != tenant):
        raise NotFound(f"no plan {plan_id!r}")
    return row


def start_apply(ctx: ServiceContext, plan_id: str, checksum: str) -> ApiPlan:
    """Claim the plan for applying (once): its checksum must be the one the caller reviewed."""
    from penguinctl.state.db import session_scope

    with session_scope(ctx.db) as session:
        row = get(session, plan_id, tenant=ctx.tenant)
        if checksum != row.checksum:
            raise ChecksumMismatch(
                f"checksum {checksum[:16]} is not plan {plan_id}'s ({row.checksum[:16]})",
                hint="apply the plan you reviewed, with its checksum",
            )
        claimed = session.execute(
            sa.update(ApiPlan.__table__)
            .where(ApiPlan.__table__.c.id == plan_id, ApiPlan.__table__.c.status == "planned")
            .values(status="queued", applied_by=ctx.actor)
        ).rowcount
        if not claimed:
            raise UsageError(
                f"plan {plan_id} is {row.status}: a plan is applied once",
                hint="make a new plan (POST /plans)",
            )
    with session_scope(ctx.db) as session:
        return get(session, plan_id, tenant=None)


def run_apply(ctx: ServiceContext, plan_id: str, *, force: bool = False, parallel: int = 4) -> None:
    """The apply job (in a thread of the serving process): never raises, records its outcome."""
    from penguinctl.engine import raise_for_report
    from penguinctl.state.db import session_scope

    def finish(status: str, exit_code: int, result: dict[str, Any]) -> None:
        with session_scope(ctx.db) as session:
            row = session.get(ApiPlan, plan_id)
            assert row is not None
            row.status, row.exit_code, row.result = status, exit_code, result
            row.finished_at = ctx.now()
            session.add(row)

    with _slots:
        try:
            with session_scope(ctx.db) as session:
                row = get(session, plan_id, tenant=None)
                row.status, row.started_at = "applying", ctx.now()
                session.add(row)
                documents, checksum = dict(row.documents), row.checksum
                destroy, targets = row.operation == "destroy", list(row.targets)
            loaded = spec_service.load_documents(documents, tenant=ctx.tenant)
            _, report = spec_service.apply(
                ctx,
                loaded,
                destroy=destroy,
                targets=targets,
                force=force,
                parallel=parallel,
                checksum=checksum,
                checksum_source=f"plan {plan_id}",
            )
            if report is None:
                finish("no-op", 0, {"changes": [], "status": "no-op"})
                return
            try:
                raise_for_report(report)
            except PenguinError as exc:
                finish("failed", int(exc.exit_code), {**report.to_json(), **_problem(exc, ctx)})
                return
            finish("applied", 0, report.to_json())
        except PenguinError as exc:
            finish("failed", int(exc.exit_code), _problem(exc, ctx))
        except Exception as exc:  # recorded; the detail goes to the server log only
            log.exception("apply of %s failed", plan_id)
            finish("failed", 1, {"problem": {"type": "urn:penguinctl:problem:unexpected",
                                             "title": "Internal error", "status": 500,
                                             "detail": type(exc).__name__}})  # fmt: skip


def _problem(exc: PenguinError, ctx: ServiceContext) -> dict[str, Any]:
    import json

    from penguinctl.web.problems import for_error

    return {"problem": json.loads(for_error(exc, reveal_owner=ctx.tenant is None).body)}


def start_thread(ctx: ServiceContext, plan_id: str, *, force: bool, parallel: int) -> None:
    thread = threading.Thread(
        target=run_apply,
        args=(ctx, plan_id),
        kwargs={"force": force, "parallel": parallel},
        name=f"apply-{plan_id}",
        daemon=True,
    )
    thread.start()
