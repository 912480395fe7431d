"""Resources: what penguinctl manages, keyed by (kind, tenant, name).

A ``Resource`` is plain data: its ``data`` dict is JSON-serialisable and never holds a secret value
(secret fields hold references such as ``env:NAME``). ``provider`` names the provider instance that
applies it (``state``, ``dkim``, ``dns:<name>``, ``server:<provider>``). ``depends_on`` orders the
apply; deletes run in reverse order.

Values not known until apply (a DKIM public key that is not generated yet) are ``COMPUTED``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

COMPUTED = "(known after apply)"
_QUOTED_COMPUTED = json.dumps(COMPUTED)

# Kinds in the order they are applied (dependencies first). Deletes run in reverse.
KIND_ORDER = (
    "tenant",
    "server",
    "dnsprovider",
    "domain",
    "dkim",
    "mailstack",  # the mail stack on a server: installed once the domains' DKIM keys exist
    "maildomain",  # a domain in MailU (its API), once MailU runs
    "mailbox",
    "mailalias",  # aliases deliver to mailboxes: created after them
    "dnsrecord",
)
# Kinds whose deletion always needs --force (a MailU user or domain takes its mail with it).
PROTECTED_KINDS = frozenset({"server", "domain", "maildomain", "mailbox"})


@dataclass(frozen=True, order=True)
class ResourceKey:
    kind: str
    tenant: str  # "" for resources shared between tenants (a server or DNS provider with no tenant)
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.tenant or '-'}/{self.name}"

    @property
    def address(self) -> str:
        """The user-facing form for --target: KIND/NAME."""
        return f"{self.kind}/{self.name}"

    @classmethod
    def parse(cls, text: str) -> ResourceKey:
        kind, tenant, name = text.split("/", 2)
        return cls(kind, "" if tenant == "-" else tenant, name)


@dataclass
class Resource:
    key: ResourceKey
    data: dict[str, Any]
    provider: str = "state"
    depends_on: tuple[ResourceKey, ...] = ()
    # Fields of ``data`` filled in by the provider at apply time (outputs); not compared in a diff.
    outputs: frozenset[str] = field(default_factory=frozenset)

    def has_computed(self) -> bool:
        # the C encoder finds the quoted marker faster than a Python walk (data is JSON)
        try:
            return _QUOTED_COMPUTED in json.dumps(self.data)
        except (TypeError, ValueError):
            return any(v == COMPUTED for v in _walk(self.data))


def _walk(value: Any):
    if isinstance(value, dict):
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _walk(v)
    else:
        yield value
