"""Query and update functions for resources and apply runs. They never commit: the caller's
``session_scope`` owns the transaction."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from penguinctl.resources import ResourceKey
from penguinctl.state.models import ApplyRun, ResourceRow, utcnow


def load_resources(session: Session, *, tenants: Iterable[str]):
    """Light rows (tenant, kind, name, provider, data, status, created_at) of the tenants."""
    stmt = select(
        ResourceRow.tenant,
        ResourceRow.kind,
        ResourceRow.name,
        ResourceRow.provider,
        ResourceRow.data,
        ResourceRow.status,
        ResourceRow.created_at,
    ).where(col(ResourceRow.tenant).in_(list(tenants)))
    return session.exec(stmt).all()


def _by_key(session: Session, key: ResourceKey) -> ResourceRow | None:
    stmt = select(ResourceRow).where(
        ResourceRow.tenant == key.tenant, ResourceRow.kind == key.kind, ResourceRow.name == key.name
    )
    return session.exec(stmt).first()


def get_resource(session: Session, key: ResourceKey) -> ResourceRow | None:
    return _by_key(session, key)


def upsert_resource(
    session: Session,
    *,
    key: ResourceKey,
    provider: str,
    data: dict[str, Any],
    status: str = "applied",
    run_id: int | None = None,
) -> None:
    row = _by_key(session, key)
    if row is None:
        row = ResourceRow(tenant=key.tenant, kind=key.kind, name=key.name, provider=provider)
    row.provider = provider
    row.data = data
    row.status = status
    row.run_id = run_id
    row.updated_at = utcnow()
    session.add(row)
    session.flush()


def delete_resource(session: Session, key: ResourceKey) -> None:
    row = _by_key(session, key)
    if row is not None:
        session.delete(row)
        session.flush()


def record_batch(
    session: Session,
    *,
    upserts: list[tuple[ResourceKey, str, dict[str, Any]]],
    deletes: list[ResourceKey],
    run_id: int | None,
) -> None:
    """Upsert and delete many resources: one id lookup per (tenant, kind) group, then one
    executemany INSERT, UPDATE and DELETE each (Core statements: no ORM object per row, which
    matters when thousands of rows are recorded while DKIM keys are generated)."""
    table = ResourceRow.__table__
    groups: dict[tuple[str, str], set[str]] = {}
    for key in [k for k, _, _ in upserts] + deletes:
        groups.setdefault((key.tenant, key.kind), set()).add(key.name)
    ids: dict[ResourceKey, int] = {}
    for (tenant, kind), names in groups.items():
        stmt = sa.select(table.c.id, table.c.name).where(
            table.c.tenant == tenant, table.c.kind == kind, table.c.name.in_(sorted(names))
        )
        for row_id, name in session.execute(stmt):
            ids[ResourceKey(kind, tenant, name)] = row_id
    now = utcnow()
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for key, provider, data in upserts:
        fields = {"provider": provider, "data": data, "status": "applied", "run_id": run_id}
        if key in ids:
            updates.append({"_id": ids[key], **fields, "updated_at": now})
        else:
            inserts.append(
                {
                    "tenant": key.tenant,
                    "kind": key.kind,
                    "name": key.name,
                    **fields,
                    "created_at": now,
                    "updated_at": now,
                }
            )
    if inserts:
        session.execute(sa.insert(table), inserts)
    if updates:
        stmt = (
            sa.update(table)
            .where(table.c.id == sa.bindparam("_id"))
            .values(
                provider=sa.bindparam("provider"),
                data=sa.bindparam("data"),
                status=sa.bindparam("status"),
                run_id=sa.bindparam("run_id"),
                updated_at=sa.bindparam("updated_at"),
            )
        )
        session.execute(stmt, updates, execution_options={"synchronize_session": False})
    gone = [ids[k] for k in deletes if k in ids]
    if gone:
        session.execute(sa.delete(table).where(table.c.id.in_(gone)))


def list_resources(
    session: Session, *, kind: str | None = None, tenant: str | None = None, name: str | None = None
) -> list[ResourceRow]:
    stmt = select(ResourceRow)
    if kind is not None:
        stmt = stmt.where(ResourceRow.kind == kind)
    if tenant is not None:
        stmt = stmt.where(ResourceRow.tenant == tenant)
    if name is not None:
        stmt = stmt.where(ResourceRow.name == name)
    return list(session.exec(stmt.order_by(ResourceRow.tenant, ResourceRow.kind, ResourceRow.name)))


def list_resources_prefixed(session: Session, *, kind: str, prefix: str) -> list[ResourceRow]:
    """Rows of ``kind`` whose name starts with ``prefix`` (a domain's keys or records)."""
    stmt = select(ResourceRow).where(
        ResourceRow.kind == kind, col(ResourceRow.name).startswith(prefix, autoescape=True)
    )
    return list(session.exec(stmt.order_by(ResourceRow.tenant, ResourceRow.name)))


def start_run(
    session: Session,
    *,
    operation: str,
    actor: str,
    host: str,
    pid: int,
    tenants: list[str],
    plan_checksum: str | None,
) -> ApplyRun:
    run = ApplyRun(
        operation=operation,
        actor=actor,
        host=host,
        pid=pid,
        tenants=list(tenants),
        plan_checksum=plan_checksum,
    )
    session.add(run)
    session.flush()
    return run


def finish_run(session: Session, run_id: int, *, status: str, summary: dict[str, Any]) -> None:
    run = session.get(ApplyRun, run_id)
    if run is not None:
        run.status = status
        run.summary = summary
        run.finished_at = utcnow()
        session.add(run)


def interrupted_runs(session: Session, tenants: Iterable[str]) -> list[ApplyRun]:
    """Runs still marked running for these tenants. Only call while holding their locks: then
    every such run belongs to a process that died."""
    wanted = set(tenants)
    runs = session.exec(select(ApplyRun).where(ApplyRun.status == "running")).all()
    return [r for r in runs if wanted & set(r.tenants or [""])]


def list_runs(session: Session, *, tenant: str | None = None, limit: int = 50) -> list[ApplyRun]:
    stmt = select(ApplyRun).order_by(col(ApplyRun.id).desc())
    runs = list(session.exec(stmt))
    if tenant is not None:
        runs = [r for r in runs if tenant in (r.tenants or [])]
    return runs[:limit]
