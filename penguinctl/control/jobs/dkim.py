"""``dkim-rotate``: start and advance the tenant's DKIM rotations that are due.

An idle run costs O(due), not O(domains): ``job_due`` keeps each domain's next step time; a
run reads only the rows due now, and rebuilds the tenant's index only after its recorded spec
changed (an apply) or on its first run. ``Rotator.advance`` keeps a domain's row current after
each step, whoever drives it (this job or ``dkim rotate``).
"""

from __future__ import annotations

from typing import Any

from penguinctl.control import due
from penguinctl.control.registry import JobFailed

JOB = "dkim-rotate"


def run(ctx: Any) -> dict[str, Any]:
    from penguinctl.rotation_run import rotate_domains

    app, tenant, now = ctx.app, ctx.tenant, ctx.now()
    rebuilt = due.ensure_index(app.db, JOB, tenant, now)
    names = due.due_subjects(app.db, JOB, tenant, now)
    if not names:
        return {"due": 0, "indexed": rebuilt, "steps": []}
    outcomes = rotate_domains(
        app,
        names,
        start=False,
        start_if_due=True,
        nameservers=_opt(app, "PENGUINCTL_NAMESERVER"),
        resolvers=_opt(app, "PENGUINCTL_RESOLVER") or app.settings.dns_resolvers,
        lock_timeout=60.0,
        actor=ctx.actor,
        clock=ctx.clock,
        tenant=tenant,
        cancelled=lambda: ctx.cancelled,
    )
    summary = {
        "due": len(names),
        "indexed": rebuilt,
        "steps": [o.to_json() for o in outcomes.steps],
        "run_id": outcomes.run_id,
    }
    failed = [o for o in outcomes.steps if o.result == "failed"]
    if failed:
        first = failed[0]
        raise JobFailed(
            f"{len(failed)} rotation step(s) failed; first: {first.domain} {first.action}: "
            f"{first.detail}",
            summary=summary,
        )
    return summary


def _opt(app: Any, name: str) -> list[str]:
    from penguinctl.control.jobs.options import words

    return words(app.env, name)
