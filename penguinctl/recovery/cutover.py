"""The rebuild's cutover: the server's recorded address becomes the replacement's, and the
tenant's recorded spec is applied, so its DNS records (A of the server's hostname, SPF ``ip4``)
and recorded IPs follow. The operator's own spec file still names the old address: the
rebuild's output says which line to change (applying the old file would move DNS back)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


def move_server(app: Any, tenant: str, server: str, rep: dict[str, Any]) -> dict[str, Any]:
    from penguinctl.cli.commands_apply import plan_and_apply
    from penguinctl.control import specs as recorded
    from penguinctl.control.tables import SpecDocument
    from penguinctl.errors import StateError

    table = SpecDocument.__table__
    with app.db.begin() as conn:
        row = (
            conn.execute(
                sa.select(table).where(
                    table.c.tenant.in_([tenant, recorded.PLATFORM]),
                    table.c.kind == "Server",
                    table.c.name == server,
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            raise StateError(
                f"no recorded spec for server {server}: cannot move its DNS records",
                hint="apply the tenant's spec once (penguinctl apply -f FILE)",
            )
        document = dict(row["document"])
        spec = dict(document["spec"])
        static = {**(spec.get("static") or {}), "address": rep["address"]}
        for k in ("ssh_port", "ssh_user"):
            if rep.get(k) is not None:
                static[k] = rep[k]
        spec["static"] = static
        document["spec"] = spec
        conn.execute(
            table.update()
            .where(table.c.id == row["id"])
            .values(document=document, sha256=recorded.content_hash(document))
        )
    specs = recorded.load(app.db, [tenant] if tenant else None)
    yes, app.yes = app.yes, True
    try:
        plan, report = plan_and_apply(app, specs, targets=None)
    finally:
        app.yes = yes
    if report is not None:
        from penguinctl.engine import raise_for_report

        raise_for_report(report)
    moved = [c.key.address for c in plan.changes]
    line = f"static: {{address: {rep['address']}"
    if rep.get("ssh_port"):
        line += f", ssh_port: {rep['ssh_port']}"
    line += "}"
    return {
        "summary": f"{len(moved)} change(s) applied (DNS and recorded address moved)",
        "changed": moved[:50],
        "spec_change": f"server {server}: set {line} in your spec file",
    }


def move_hostwinds(rb: Any) -> dict[str, Any]:
    """Hostwinds: the replacement takes the server's label, its service id and IPs become the
    recorded server's, and the recorded spec is applied (A and SPF follow the recorded IPs)."""
    from penguinctl.cli.commands_apply import plan_and_apply
    from penguinctl.control import specs as recorded
    from penguinctl.desired import srvrname
    from penguinctl.engine import raise_for_report
    from penguinctl.recovery import hostwinds
    from penguinctl.resources import ResourceKey
    from penguinctl.state import repo
    from penguinctl.state.db import session_scope

    canonical = rb.old.get("srvrname") or srvrname(rb.tenant, rb.server)
    labels = hostwinds.relabel(rb, canonical)
    if rb.opts.specs is not None:  # -f: the given spec (a new plan) becomes the recorded one
        recorded.record(
            rb.app.db, rb.opts.specs, tenants=[rb.tenant], run_id=None, actor=rb.app.actor()
        )
    data = {**rb.new_data(), "srvrname": canonical}
    with session_scope(rb.app.db) as session:
        repo.upsert_resource(
            session,
            key=ResourceKey("server", rb.tenant, rb.server),
            provider="server:hostwinds",
            data=data,
        )
    specs = recorded.load(rb.app.db, [rb.tenant] if rb.tenant else None)
    yes, rb.app.yes = rb.app.yes, True
    try:
        plan, report = plan_and_apply(rb.app, specs, targets=None)
    finally:
        rb.app.yes = yes
    if report is not None:
        raise_for_report(report)
    moved = [c.key.address for c in plan.changes]
    return {
        "summary": f"{len(moved)} change(s) applied (DNS moved to {data.get('main_ip')}); "
        + "; ".join(labels or ["labels already in place"]),
        "changed": moved[:50],
    }
