"""DNS: a domain's expected records (from the state store) and live verification against its
authoritative servers (``dns verify``), one tenant's domains or any."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from penguinctl.services.context import ServiceContext


def verify_once(
    ctx: ServiceContext,
    names: Sequence[str] | None,
    *,
    nameservers: Sequence[str] = (),
    resolvers: Sequence[str] | None = None,
    timeout: float = 2.0,
    fcrdns: bool = True,
) -> list[Any]:
    """One verification pass of ``names`` (None: every domain the caller may see): the
    reports in order. A tenant key's other-tenant domain is not found, like a missing one."""
    from penguinctl.dns.expectations import build_expectations
    from penguinctl.dns.query import Nameserver, Resolver
    from penguinctl.dns.verify import Verifier
    from penguinctl.services.dkim import owned_domains
    from penguinctl.state import repo
    from penguinctl.state.db import session_scope

    wanted = owned_domains(ctx, names)
    if wanted == []:
        return []
    res = Resolver([Nameserver.parse(t) for t in resolvers or ctx.settings.dns_resolvers])
    with session_scope(ctx.db) as session:
        rows = repo.list_resources(session, tenant=ctx.tenant)
    expectations = build_expectations(
        rows,
        wanted,
        secrets=ctx.secrets(),
        resolver=res,
        override=[Nameserver.parse(t) for t in nameservers],
    )
    return Verifier(res, timeout=timeout, fcrdns=fcrdns).verify(expectations)


def expected_records(ctx: ServiceContext, domain: str) -> list[dict[str, Any]]:
    from penguinctl.services.dkim import owned_domains
    from penguinctl.services.resources import describe
    from penguinctl.state.db import session_scope

    owned_domains(ctx, [domain])
    with session_scope(ctx.db) as session:
        return describe(session, "domain", domain, tenant=ctx.tenant)["records"]
