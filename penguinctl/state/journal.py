"""Intents: a side effect recorded *before* it happens, for calls that cannot be made safely twice.

Hostwinds bills ``add_instance`` at once and does not say which instance it created, so the
provider marks its intent (the label it orders under, when) in the state store, committed, before
the call. A row with status ``pending`` is an intent: plans do not treat it as an existing
resource, the provider finds it on the next run and looks the instance up instead of ordering
again. Recording the applied resource (status ``applied``, same key) supersedes it.
"""

from __future__ import annotations

from typing import Any

from penguinctl.resources import ResourceKey
from penguinctl.state import audit, repo
from penguinctl.state.db import session_scope

PENDING = "pending"


class Journal:
    def __init__(self, db, *, provider: str, actor: str, run_id: int | None = None) -> None:
        self.db = db
        self.provider = provider
        self.actor = actor
        self.run_id = run_id

    def get(self, key: ResourceKey) -> dict[str, Any] | None:
        """The intent recorded for ``key``, if it is still pending."""
        with session_scope(self.db) as session:
            row = repo.get_resource(session, key)
            return dict(row.data) if row is not None and row.status == PENDING else None

    def mark(self, key: ResourceKey, data: dict[str, Any]) -> None:
        """Record an intent (committed when this returns); never over an applied resource."""
        with session_scope(self.db) as session:
            row = repo.get_resource(session, key)
            if row is not None and row.status != PENDING:
                return
            repo.upsert_resource(
                session,
                key=key,
                provider=self.provider,
                data=data,
                status=PENDING,
                run_id=self.run_id,
            )
            audit.record(
                session,
                actor=self.actor,
                tenant=key.tenant,
                action="intent",
                resource=str(key),
                result="ok",
                run_id=self.run_id,
                details={"provider": self.provider, "fields": sorted(data)},
            )

    def clear(self, key: ResourceKey) -> bool:
        """Forget a pending intent (an order known to have failed). True if there was one."""
        with session_scope(self.db) as session:
            row = repo.get_resource(session, key)
            if row is None or row.status != PENDING:
                return False
            session.delete(row)
            audit.record(
                session,
                actor=self.actor,
                tenant=key.tenant,
                action="intent.cleared",
                resource=str(key),
                result="ok",
                run_id=self.run_id,
            )
            return True
