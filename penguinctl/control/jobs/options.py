"""Options jobs read from ``serve``'s environment (the flags the CLI commands take by hand).

- ``PENGUINCTL_NAMESERVER``: authoritative servers to ask about published records (``dkim
  rotate --nameserver``, ``check --nameserver``), comma-separated HOST[:PORT];
- ``PENGUINCTL_RESOLVER``: recursive resolvers (``--resolver``);
- ``PENGUINCTL_DNSBL_RESOLVER``, ``PENGUINCTL_DNSBL_IP_LISTS``, ``PENGUINCTL_DNSBL_DOMAIN_LISTS``:
  as for ``check``;
- ``PENGUINCTL_CHECK_SKIP``: check families to skip (comma-separated);
- ``PENGUINCTL_MAILU_ROOT``: the MailU root on the servers (backups, checks).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def servers(env: Mapping[str, str], name: str) -> list[Any]:
    from penguinctl.dns.query import Nameserver

    return [Nameserver.parse(t.strip()) for t in (env.get(name) or "").split(",") if t.strip()]


def words(env: Mapping[str, str], name: str) -> list[str]:
    return [t.strip() for t in (env.get(name) or "").split(",") if t.strip()]


def resolver(env: Mapping[str, str], default: Any = ()) -> Any:
    """``PENGUINCTL_RESOLVER``, else ``default`` (the config file's ``dns.resolvers``)."""
    from penguinctl.dns.query import Nameserver, Resolver

    chosen = servers(env, "PENGUINCTL_RESOLVER") or [Nameserver.parse(t) for t in default]
    return Resolver(chosen)
