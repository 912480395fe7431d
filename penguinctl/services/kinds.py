"""The kinds ``get``/``describe`` and the API know (standard library only: the CLI imports it
at start-up)."""

from __future__ import annotations

# Every kind `get` and `describe` accept: plural name -> the singular used in the state store.
KINDS = {
    "tenants": "tenant",
    "servers": "server",
    "domains": "domain",
    "mailboxes": "mailbox",
    "dkim": "dkim",
    "dnsproviders": "dnsprovider",
    "records": "dnsrecord",
    "backups": "backup",
    "campaigns": "campaign",
    "invoices": "invoice",
}


def kind_of(kind: str) -> str:
    """The singular kind for ``kind`` (plural, singular, any case; ``dnsrecords`` too)."""
    from penguinctl.errors import UsageError

    k = kind.lower()
    singular = set(KINDS.values())
    if k in KINDS:
        return KINDS[k]
    for candidate in (k, k.removesuffix("es"), k.removesuffix("s")):
        if candidate in singular:
            return candidate
    raise UsageError(f"unknown kind {kind!r}", hint=f"use one of: {', '.join(KINDS)}")
