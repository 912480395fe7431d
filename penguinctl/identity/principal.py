"""``Principal``: who an API request acts as (one API key), and what it may see and do."""

from __future__ import annotations

from dataclasses import dataclass

from penguinctl.identity import permissions

NO_TENANT = "!none"  # matches no tenant (not a valid tenant name)


@dataclass(frozen=True)
class Principal:
    key_id: str  # the key's public prefix
    role: str
    tenant: str | None  # None: a platform key (every tenant)

    @property
    def actor(self) -> str:
        """The audit actor of everything done with this key."""
        return f"key:{self.key_id}"

    @property
    def is_platform(self) -> bool:
        return self.tenant is None

    def can(self, action: str) -> bool:
        return permissions.allowed(action, self.role, tenant=self.tenant is not None)

    def sees(self, tenant: str | None) -> bool:
        """May this key see an object of ``tenant`` ("" or None: the platform's)?"""
        return self.tenant is None or (tenant or "") == self.tenant

    def scope(self, asked: str | None = None) -> str | None:
        """The tenant a list is limited to: a tenant key's own (whatever was asked; asking for
        another tenant gives that tenant's nothing, never an error that confirms it exists),
        or what a platform key asked for (None: all)."""
        if self.tenant is None:
            return asked
        return self.tenant if asked in (None, self.tenant) else NO_TENANT
