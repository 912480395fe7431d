"""The ``api_keys`` table (migration 0010), declared once.

A key is ``pgk_<prefix>_<secret>``: the prefix (12 hex characters) is its public id, shown in
lists and in the audit log as ``key:<prefix>``; the secret (32 random bytes, base64url) is shown
once and stored only as ``secret_hash`` (HMAC-SHA256 keyed by the prefix: the secret has 256 bits
of entropy, so a fast hash is enough and a slow KDF would only slow every request). ``rotate``
keeps the previous hash valid until ``previous_valid_until`` (the overlap)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime
from sqlmodel import Field, SQLModel

from penguinctl.state.models import utcnow


def _ts(nullable: bool = False) -> Any:
    if nullable:
        return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    return Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"

    prefix: str = Field(primary_key=True)
    tenant: str = Field(index=True)  # "" for a platform key
    role: str
    name: str = ""
    secret_hash: str
    previous_hash: str | None = None
    previous_valid_until: datetime | None = _ts(nullable=True)
    created_by: str
    created_at: datetime = _ts()
    expires_at: datetime | None = _ts(nullable=True)
    last_used_at: datetime | None = _ts(nullable=True)
    rotated_at: datetime | None = _ts(nullable=True)
    revoked_at: datetime | None = _ts(nullable=True)

    def to_json(self, now: datetime | None = None) -> dict[str, Any]:
        """Everything but the hashes."""

        def iso(value: datetime | None) -> str | None:
            from penguinctl.state.columns import aware

            return aware(value).isoformat() if value is not None else None

        return {
            "id": self.prefix,
            "actor": f"key:{self.prefix}",
            "tenant": self.tenant or None,
            "role": self.role,
            "name": self.name,
            "status": status(self, now),
            "created_by": self.created_by,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "last_used_at": iso(self.last_used_at),
            "rotated_at": iso(self.rotated_at),
            "previous_valid_until": iso(self.previous_valid_until),
            "revoked_at": iso(self.revoked_at),
        }


def status(key: ApiKey, now: datetime | None = None) -> str:
    """``revoked``, ``expired`` or ``active`` at ``now`` (the product clock by default)."""
    from penguinctl import clock
    from penguinctl.state.columns import aware

    now = now or clock.now()
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and aware(key.expires_at) <= now:
        return "expired"
    return "active"
