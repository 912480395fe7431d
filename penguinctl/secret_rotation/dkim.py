"""DKIM keys under the rotation contract: an adapter over ``penguinctl.rotation.Rotator``.

A domain's DKIM rotation is a multi-step state machine (rotate, publish, activate, revoke,
remove; see ``penguinctl.rotation``). Here each recorded domain with a signing key is one
``DueItem``: ``last_rotated`` is when the signing key was created, ``period`` the domain's
``rotate_every`` (180 days by default). While a rotation is under way the item is due when its
next step is (``DkimItem.step``/``step_due``), so ``secrets rotate --due`` advances rotations in
progress exactly like ``dkim rotate --all-due``.

``rotate(item)`` does every step that is due now and stops at the first that must wait (a
record not visible yet, the propagation or retirement time not over). A target that is not due
(named explicitly) starts a rotation now, like ``dkim rotate DOMAIN``. Each step is recorded and
audited by the Rotator in the same transaction as its state change, and resumes where it stopped
after a crash. Publication is checked like ``dkim rotate`` without ``--nameserver``: at the
zone's authoritative servers, or in the zone file of a ``zonefile`` provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from penguinctl.secret_rotation.base import DueItem, Rotation


@dataclass(frozen=True)
class DkimItem(DueItem):
    step: str | None = None  # the next step of a rotation under way (publish, activate, ...)
    step_due: datetime | None = None
    key: str | None = None  # the signing key's problem (plan.key_drift): missing, mismatch...

    @property
    def due_at(self) -> datetime | None:
        if self.step is not None:
            return self.step_due
        return super().due_at

    def to_json(self, now: datetime) -> dict[str, Any]:
        out = {**super().to_json(now), "step": self.step or "rotate"}
        if self.key:
            out["key"] = self.key
        return out


class DkimRotation(Rotation):
    kind: ClassVar[str] = "dkim"
    default_period: ClassVar[timedelta] = timedelta(days=180)

    def _item(self, dk: Any) -> DkimItem | None:
        from penguinctl.providers.dkim import secret_path
        from penguinctl.rotation import steps

        active = dk.active
        if active is None:  # no signing key yet: `apply` creates the first one
            return None
        from penguinctl.plan.key_drift import key_status

        pending = [s for s in steps(dk) if s.action != "rotate"]
        problem = key_status(
            self.ctx.secrets, dk.tenant, dk.domain, active.selector, active.data.get("public_key")
        )
        return DkimItem(
            kind=self.kind,
            target=dk.domain,
            tenant=dk.tenant,
            path=secret_path(dk.tenant, dk.domain, active.selector),
            last_rotated=active.created,
            period=dk.timings.rotate_every,
            step=pending[0].action if pending else None,
            step_due=pending[0].due if pending else None,
            key=problem,
        )

    def candidates(self) -> list[DueItem]:
        from penguinctl.rotation import load

        return [item for dk in load(self.ctx.engine, None) if (item := self._item(dk))]

    def rotate(self, item: DueItem) -> str:
        from penguinctl.dns.expectations import seen_check
        from penguinctl.dns.query import Resolver
        from penguinctl.errors import ProviderError
        from penguinctl.providers.registry import Providers
        from penguinctl.rotation import Rotator, load
        from penguinctl.state.lock import TenantLock

        ctx = self.ctx
        (dk,) = load(ctx.engine, [item.target])
        fresh = self._item(dk)
        if fresh is None:
            raise ProviderError(
                f"{item.target} has no signing DKIM key to rotate",
                hint="apply the domain's spec first; it creates the first key",
            )
        if fresh.key is not None:  # never claim a rotation of a key that is not there
            from penguinctl.plan.key_drift import describe, repair_hint

            raise ProviderError(
                describe(dk.active.key(dk.domain), fresh.key) + "; nothing was rotated",
                hint=repair_hint(dk.active.key(dk.domain)),
            )
        forced = not fresh.is_due(ctx.now())
        providers = Providers(
            secrets_factory=lambda: ctx.secrets,
            dns_configs={dk.data["dns"]: dk.dns} if dk.dns else {},
            env=ctx.env,
        )
        check = seen_check(resolver=Resolver([]), providers=providers)
        rotator = Rotator(
            db=ctx.engine, providers=providers, check_dns=check, actor=ctx.actor, now=ctx.now
        )
        outcomes = []
        with TenantLock(ctx.engine, [dk.tenant], operation="secrets-rotate", actor=ctx.actor):
            rotator.start_run([dk.tenant])
            try:
                outcomes = rotator.advance(
                    dk.domain, start=forced, start_if_due=not forced, loaded=dk
                )
            finally:
                rotator.finish_run(outcomes)
        failed = [o for o in outcomes if o.result == "failed"]
        if failed:
            o = failed[0]
            raise ProviderError(
                f"{o.domain}: DKIM {o.action} {o.selector or ''} failed: {o.detail}".replace(
                    "  ", " "
                ),
                hint="fix the cause and run `penguinctl secrets rotate` again; it resumes",
            )
        if not outcomes:
            return "nothing due"
        return "; ".join(
            f"{o.action} {o.selector or ''}".strip()
            + (f" {o.result}" if o.result != "done" else "")
            + (f" ({o.detail})" if o.result == "waiting" and o.detail else "")
            for o in outcomes
        )


__all__ = ["DkimItem", "DkimRotation"]
