"""``secrets-rotate``: rotate the tenant's SSH keys, mailbox passwords and MailU credentials
that are due (DKIM keys rotate through ``dkim-rotate``), as ``secrets rotate --due`` does."""

from __future__ import annotations

from typing import Any

from penguinctl.control.registry import JobFailed

KINDS = ("ssh", "mailbox", "mailu")


def run(ctx: Any) -> dict[str, Any]:
    from penguinctl.masking import mask
    from penguinctl.secret_rotation.base import RotationContext
    from penguinctl.secret_rotation.service import collect, rotate_items
    from penguinctl.state import audit

    app, now = ctx.app, ctx.now()
    rctx = RotationContext(
        engine=app.db, secrets=app.secrets(), actor=ctx.actor, env=app.env, now=ctx.clock.now
    )
    found = collect(rctx, KINDS, tenant=ctx.tenant)
    chosen = [i for i in found.items if i.is_due(now)]

    def reason(exc: BaseException) -> str:
        return mask(str(exc))[:300]

    results, events = rotate_items(
        found.rotations, chosen, reason=reason, cancelled=lambda: ctx.cancelled
    )
    if events:
        with app.db.begin() as conn:
            audit.record_many(
                conn,
                [
                    {
                        "actor": ctx.actor,
                        "tenant": e.get("tenant") or ctx.tenant,
                        "action": e["action"],
                        "resource": f"secret/{e['path']}",
                        "result": e["result"],
                        "details": e["details"],
                    }
                    for e in events
                ],
            )
    summary = {
        "managed": len(found.items),
        "due": len(chosen),
        "results": results,
        "broken_kinds": [{"kind": k, "error": reason(e)} for k, e in found.failures],
    }
    failed = [r for r in results if r["result"] == "failed"]
    if failed or found.failures:
        first = (
            failed[0]
            if failed
            else {
                "kind": found.failures[0][0],
                "target": "(listing)",
                "error": reason(found.failures[0][1]),
            }
        )
        raise JobFailed(
            f"{len(failed) + len(found.failures)} rotation(s) failed; first: {first['kind']} "
            f"{first['target']}: {first['error']}",
            summary=summary,
        )
    return summary
