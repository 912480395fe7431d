"""DKIM: each domain's keys, phases and next step (``dkim status``), and rotations
(``dkim rotate``) of one tenant's domains or any."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from penguinctl.errors import NotFound
from penguinctl.services.context import ServiceContext


def key_state(secrets: Any, dk: Any, k: Any) -> str:
    """``ok``, ``missing``, ``unusable``, ``mismatch`` (``plan.key_drift``), ``-`` for a key that
    needs no private key any more, ``unknown`` when the secrets backend cannot be read."""
    from penguinctl.errors import PenguinError
    from penguinctl.plan import key_drift

    if not key_drift.needs_key(k.data) or not k.data.get("public_key"):
        return "-"
    if secrets is None:
        return "unknown"
    try:
        found = key_drift.key_status(
            secrets, dk.tenant, dk.domain, k.selector, k.data.get("public_key")
        )
    except PenguinError:
        return "unknown"
    return found or "ok"


def status_json(dk: Any, now: datetime, secrets: Any = None) -> dict[str, Any]:
    from penguinctl.rotation import steps

    upcoming = steps(dk)
    return {
        "domain": dk.domain,
        "tenant": dk.tenant,
        "keys": [
            {
                "selector": k.selector,
                "phase": k.phase,
                "created": k.created.isoformat(timespec="seconds"),
                "age_seconds": int((now - k.created).total_seconds()),
                "phase_since": k.since.isoformat(timespec="seconds"),
                "bits": k.data.get("bits"),
                "key": key_state(secrets, dk, k),
            }
            for k in dk.keys
        ],
        "next": [s.to_json(now) for s in upcoming],
    }


def owned_domains(ctx: ServiceContext, names: Sequence[str] | None) -> list[str] | None:
    """``names`` when the caller may see every one of them (a tenant key: its own domains;
    another tenant's is not found, like a missing one); None (all) stays None for a platform
    key and becomes the tenant's domains for a tenant key."""
    from penguinctl.services.resources import select

    if ctx.tenant is None and names is None:
        return None
    stmt = select("domain", tenant=ctx.tenant)
    if names is not None and len(names) < 100:
        from penguinctl.state.models import ResourceRow

        stmt = stmt.where(ResourceRow.__table__.c.name.in_(list(names)))
    with ctx.db.connect() as conn:
        own = {r.name for r in conn.execute(stmt).all()}
    if names is None:
        return sorted(own)
    for name in names:
        if name not in own:
            raise NotFound(f"domain {name!r} is not recorded")
    return list(names)


def status(ctx: ServiceContext, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    from penguinctl.rotation import load

    wanted = owned_domains(ctx, names)
    if wanted == []:
        return []
    now = ctx.now()
    return [status_json(dk, now) for dk in load(ctx.db, wanted)]


def rotate(ctx: ServiceContext, names: Sequence[str], *, lock_timeout: float = 0.0) -> Any:
    """Start or advance the rotation of ``names`` (each step that is due)."""
    from penguinctl.rotation_run import rotate_domains

    wanted = owned_domains(ctx, names)
    return rotate_domains(
        ctx,
        wanted,
        start=True,
        start_if_due=False,
        nameservers=[],
        resolvers=ctx.settings.dns_resolvers,
        lock_timeout=lock_timeout,
        actor=ctx.actor,
        clock=ctx.clock,
        tenant=ctx.tenant,
    )
