"""One DKIM rotation pass over some domains: what ``dkim rotate`` and the ``dkim-rotate`` job
both call. Holds the tenants' lock, records the run, advances each domain through what is due,
and keeps the ``job_due`` index of each domain's next step current."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RotationPass:
    run_id: int | None
    steps: list[Any] = field(default_factory=list)


def rotate_domains(
    app: Any,
    names: Sequence[str] | None,
    *,
    start: bool,
    start_if_due: bool,
    nameservers: Sequence[str] = (),
    resolvers: Sequence[str] = (),
    lock_timeout: float = 0.0,
    actor: str,
    clock: Any,
    tenant: str | None = None,
    cancelled: Callable[[], bool] = lambda: False,
    progress: Callable[[], None] = lambda: None,
    loaded: list[Any] | None = None,
) -> RotationPass:
    """Advance ``names`` (every recorded domain when None; only ``tenant``'s when given)."""
    from penguinctl.control import due
    from penguinctl.dns.expectations import seen_check
    from penguinctl.dns.query import Nameserver, Resolver
    from penguinctl.providers.registry import Providers
    from penguinctl.rotation import Rotator, load, steps
    from penguinctl.state.lock import TenantLock

    found = loaded if loaded is not None else load(app.db, names)
    if tenant is not None:
        found = [dk for dk in found if dk.tenant == tenant]  # the tenant wall
    providers = Providers(
        secrets_factory=app.secrets,
        dns_configs={dk.data["dns"]: dk.dns for dk in found if dk.dns},
        env=app.env,
    )
    check = seen_check(
        resolver=Resolver([Nameserver.parse(t) for t in resolvers]),
        providers=providers,
        override=[Nameserver.parse(t) for t in nameservers],
    )
    rotator = Rotator(db=app.db, providers=providers, check_dns=check, actor=actor, now=clock.now)
    tenants = sorted({dk.tenant for dk in found}) or [""]
    result = RotationPass(run_id=None)
    with TenantLock(app.db, tenants, operation="dkim-rotate", actor=actor, timeout=lock_timeout):
        result.run_id = rotator.start_run(tenants)
        pending: list[tuple[str, str, Any]] = []

        def flush() -> None:
            for tenant in sorted({t for t, _, _ in pending}):
                items = [(d, when) for t, d, when in pending if t == tenant]
                due.set_due(app.db, "dkim-rotate", tenant, items)
            pending.clear()

        try:
            for dk in found:
                if cancelled():
                    break
                done = rotator.advance(dk.domain, start=start, start_if_due=start_if_due, loaded=dk)
                result.steps += done
                # the next step's time, for the due index (reloaded only when a step ran)
                upcoming = steps(load(app.db, [dk.domain])[0] if done else dk)
                pending.append((dk.tenant, dk.domain, upcoming[0].due if upcoming else None))
                if len(pending) >= 200:
                    flush()
                progress()
        finally:
            flush()
            rotator.finish_run(result.steps)
    return result
