"""Who is looking: the dashboard's view of an identity ``Principal`` (penguinctl.identity).

``Viewer`` is what pages need: the key id (the session refers to it), the role, the tenant it is
walled into (None: a platform key, which sees every tenant) and ``may(action)``, answered by the
identity permission matrix (``identity.permissions.MATRIX``). Every query a page runs takes
``viewer.scope``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from penguinctl.identity.permissions import MATRIX
from penguinctl.identity.principal import Principal

# what each page or POST needs (actions of identity's permission matrix)
READ = "read"
PAUSE_CAMPAIGN = "campaigns.pause"
# "run a job now": the matrix's own action when it has one, else the roles that may apply
# plans (tenant admin and owner, platform operator and admin), which is what a job run does
RUN_JOB = "jobs.run" if "jobs.run" in MATRIX else "plans.apply"
VERIFY_DOMAIN = "domains.verify"
READ_AUDIT = "audit.read"
READ_BILLING = "invoices.read"


@dataclass(frozen=True)
class Viewer:
    principal: Principal

    @property
    def key_id(self) -> str:
        return self.principal.key_id

    @property
    def name(self) -> str:
        return f"key {self.principal.key_id}"

    @property
    def role(self) -> str:
        return self.principal.role

    @property
    def tenant(self) -> str | None:
        return self.principal.tenant

    @property
    def scope(self) -> str | None:
        return self.principal.tenant

    @property
    def actor(self) -> str:
        return self.principal.actor

    def sees(self, tenant: str | None) -> bool:
        return self.principal.sees(tenant)

    def may(self, action: str) -> bool:
        return self.principal.can(action)


def authenticate(engine: Any, token: str) -> Viewer | None:
    """The viewer an API key stands for, or None (malformed, unknown, revoked, expired)."""
    from penguinctl import clock
    from penguinctl.errors import Unauthenticated
    from penguinctl.identity.keys import authenticate as check
    from penguinctl.state.db import session_scope

    token = token.strip()
    if not token or len(token) > 512:
        return None
    try:
        with session_scope(engine) as session:
            return Viewer(check(session, token, now=clock.now()))
    except Unauthenticated:
        return None


def by_key_id(engine: Any, key_id: str) -> Viewer | None:
    """The viewer of a live session's key; None once the key is revoked or expired."""
    from sqlmodel import Session

    from penguinctl import clock
    from penguinctl.identity.keys import status
    from penguinctl.identity.tables import ApiKey

    with Session(engine) as session:
        key = session.get(ApiKey, key_id)
        if key is None or status(key, clock.now()) != "active":
            return None
        return Viewer(Principal(key_id=key.prefix, role=key.role, tenant=key.tenant or None))
