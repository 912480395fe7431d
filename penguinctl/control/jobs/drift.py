"""``drift``: plan the tenant from its recorded spec against live state (zones re-read, MailU
and Hostwinds asked) and report what differs. It never applies anything: a run that finds
drift is ``ok`` and says so (summary ``drift: true``, the changes, an audit event
``drift.detected``); fixing it is ``penguinctl apply``."""

from __future__ import annotations

from typing import Any

MAX_LISTED = 200


def run(ctx: Any) -> dict[str, Any]:
    from penguinctl.engine import Engine
    from penguinctl.state import audit

    app, tenant = ctx.app, ctx.tenant
    engine = Engine(
        specs=ctx.specs(),
        db_engine=app.db,
        secrets_factory=app.secrets,
        zones_dir=app.settings.zones_dir,
        today=ctx.now().date(),
        actor=ctx.actor,
        env=app.env,
    )
    plan = engine.plan(refresh=True)
    changes = [c for c in plan.changes if c.key.tenant == tenant]  # the tenant wall
    listed = [
        {"action": c.action.value, "resource": c.key.address, "provider": c.provider}
        for c in changes[:MAX_LISTED]
    ]
    summary = {
        "drift": bool(changes),
        "changes": len(changes),
        "listed": listed,
        "warnings": plan.warnings[:50],
    }
    if changes:
        from collections import Counter

        from penguinctl.events.hooks import drift_detected

        with app.db.begin() as conn:
            drift_detected(
                conn,
                tenant=tenant,
                changes=dict(Counter(c.action.value for c in changes)),
                resources=[c.key.address for c in changes[:50]],
                run_id=ctx.run_id,
            )
            audit.record_many(
                conn,
                [
                    {
                        "actor": ctx.actor,
                        "tenant": tenant,
                        "action": "drift.detected",
                        "resource": f"tenant/{tenant}",
                        "result": "drift",
                        "details": {
                            "run_id": ctx.run_id,
                            "changes": len(changes),
                            "first": listed[:10],
                        },
                    }
                ],
            )
    return summary
