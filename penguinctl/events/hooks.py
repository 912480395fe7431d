"""Event helpers for the code paths that emit more than a one-line ``emit`` call, and the hooks
``serve`` calls (each in the transaction that records what it reports):

- ``domains_applied(conn, changes, ...)``: the engine, once per apply or destroy run.
- ``drift_detected(conn, tenant=, changes=, resources=, run_id=)``: the drift job, when its plan
  of a tenant's recorded spec is not empty.
- ``job_failed(conn, job=, tenant=, run_id=, target=, trigger=, error=)``: the job runner, when it
  records a failed run.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from penguinctl.events.outbox import emit, emit_many, row


def domain_of(kind: str, name: str, data: dict[str, Any] | None, domains: set[str]) -> str | None:
    """The sending domain a resource belongs to (None: it belongs to none, e.g. a server)."""
    if kind in ("domain", "maildomain"):
        return name
    if kind == "dkim":
        return name.split("/", 1)[0]
    if kind in ("mailbox", "mailalias"):
        return name.rsplit("@", 1)[-1].lower()
    if kind == "dnsrecord":
        zone, _, rest = name.partition("/")
        label = rest.split("/", 1)[0]
        fqdn = zone if label in ("@", "") else f"{label}.{zone}"
        fqdn = fqdn.rstrip(".").lower()
        while fqdn:  # the longest recorded domain the record's name is under
            if fqdn in domains:
                return fqdn
            fqdn = fqdn.partition(".")[2]
        return None
    return None


def domains_applied(
    conn: Any,
    *,
    applied: Iterable[Any],
    failed: Iterable[Any],
    domains: set[str],
    operation: str,
    run_id: int | None,
) -> list[str]:
    """One ``domain.applied`` per domain that ``applied``/``failed`` changes (plan Change
    objects) touched; returns the event ids."""
    counts: dict[tuple[str, str], Counter] = defaultdict(Counter)
    failures: Counter = Counter()
    for change in applied:
        d = domain_of(change.key.kind, change.key.name, change.after or change.before, domains)
        if d is not None:
            counts[(change.key.tenant, d)][change.action.value] += 1
    for change in failed:
        d = domain_of(change.key.kind, change.key.name, change.after or change.before, domains)
        if d is not None:
            counts.setdefault((change.key.tenant, d), Counter())
            failures[(change.key.tenant, d)] += 1
    rows = []
    for (tenant, domain), c in sorted(counts.items()):
        status = "ok" if not failures[(tenant, domain)] else ("partial" if c else "failed")
        rows.append(
            row(
                "domain.applied",
                tenant=tenant,
                subject=f"domain/{domain}",
                payload={
                    "domain": domain,
                    "operation": operation if operation in ("apply", "destroy") else "apply",
                    "status": status,
                    "run_id": run_id,
                    "changes": {a: c.get(a, 0) for a in ("create", "update", "delete")},
                },
            )
        )
    return emit_many(conn, rows)


def drift_detected(
    conn: Any,
    *,
    tenant: str,
    changes: dict[str, int],
    resources: list[str],
    run_id: int,
) -> str:
    """The drift job found ``changes`` ({create, update, delete} counts) for ``tenant``."""
    return emit(
        conn,
        "drift.detected",
        tenant=tenant,
        subject=f"tenant/{tenant}",
        payload={
            "changes": {a: int(changes.get(a, 0)) for a in ("create", "update", "delete")},
            "resources": [r[:300] for r in resources[:50]],
            "run_id": run_id,
        },
    )


def job_failed(
    conn: Any,
    *,
    job: str,
    tenant: str,
    run_id: int,
    target: str = "",
    trigger: str = "",
    error: str = "",
) -> str:
    """A job run failed (``tenant`` ``""`` for a platform job)."""
    return emit(
        conn,
        "job.failed",
        tenant=tenant,
        subject=f"job/{job}" + (f"/{target}" if target else ""),
        payload={
            "job": job,
            "run_id": run_id,
            "target": target,
            "trigger": trigger,
            "error": (error or "")[:500],
        },
    )
