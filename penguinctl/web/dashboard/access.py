"""Who is looking: the dashboard's view of an identity ``Principal`` (penguinctl.identity).

``Viewer`` is what pages need: the key id (the session refers to it), the role, the tenant it is
walled into (None: a platform key, which sees every tenant) and ``may(action)``, answered by the
identity permission matrix. Every query a page runs takes ``viewer.scope``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# what each dashboard POST needs (names in identity's permission matrix)
PAUSE_CAMPAIGN = "campaigns.pause"
RUN_JOB = "jobs.run"
VERIFY_DOMAIN = "checks.run"


@dataclass(frozen=True)
class Viewer:
    key_id: str
    name: str
    role: str
    tenant: str | None  # None: a platform key
    principal: Any = None

    @property
    def scope(self) -> str | None:
        return self.tenant

    def sees(self, tenant: str) -> bool:
        return self.tenant is None or tenant == self.tenant

    def may(self, action: str) -> bool:
        from penguinctl import identity

        return bool(identity.allowed(self.principal, action))


def _viewer(principal: Any) -> Viewer:
    tenant = getattr(principal, "tenant", None) or None
    return Viewer(
        key_id=str(principal.key_id),
        name=str(getattr(principal, "name", "") or principal.key_id),
        role=str(principal.role),
        tenant=tenant,
        principal=principal,
    )


def authenticate(engine: Any, secret: str) -> Viewer | None:
    """The viewer an API key stands for, or None (unknown, revoked, expired)."""
    from penguinctl import identity

    secret = secret.strip()
    if not secret or len(secret) > 512:
        return None
    try:
        principal = identity.authenticate(engine, secret)
    except Exception:  # identity says no in its own way: the login form says "not accepted"
        return None
    return _viewer(principal) if principal is not None else None


def by_key_id(engine: Any, key_id: str) -> Viewer | None:
    """The viewer of a live session's key (None once the key is revoked)."""
    from penguinctl import identity

    try:
        principal = identity.principal_for(engine, key_id)
    except Exception:
        return None
    return _viewer(principal) if principal is not None else None
