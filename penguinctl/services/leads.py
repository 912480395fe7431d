"""Leads and suppressions: CSV import into a campaign, a person's data (export) and erasure
(forget), suppression entries (add, check, list). ``penguinctl leads``/``suppress`` and the API
call these; a tenant key sees and changes its own tenant's entries only."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from penguinctl.services.context import ServiceContext


def import_csv(
    ctx: ServiceContext,
    campaign_name: str,
    path: Path,
    *,
    tenant: str | None = None,
    shown: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Any:
    """Import the CSV at ``path`` into the campaign; the ``LeadImport`` result (the caller
    raises for its issues: ``raise_for_import``)."""
    from penguinctl.campaigns.leads import import_leads as run_import
    from penguinctl.services.campaigns import find_campaign
    from penguinctl.state.audit import record
    from penguinctl.state.db import session_scope

    with session_scope(ctx.db) as session:
        campaign = find_campaign(session, campaign_name, tenant, only=ctx.tenant)
        result = run_import(session, campaign, path, shown=shown or str(path), progress=progress)
        if result.created or result.merged or result.rejected:
            record(
                session,
                actor=ctx.actor,
                tenant=campaign.tenant,
                action="leads.import",
                resource=f"campaign/{campaign.name}",
                result="ok" if not result.issues else "partial",
                details={k: v for k, v in result.as_dict().items() if k != "errors"},
            )
    return result


def raise_for_import(result: Any, shown: str) -> None:
    from penguinctl.errors import PartialApply, SpecError

    if not result.issues:
        return
    imported = result.created + result.merged + result.suppressed
    if not imported or not result.complete:
        raise SpecError(result.issues)
    raise PartialApply(
        f"{result.rejected} row(s) of {shown} rejected; the other rows were imported",
        hint="fix the rows listed and import the file again (imports merge)",
    )


def _own_suppression(entry: dict[str, Any], tenant: str) -> bool:
    """Does the entry apply to ``tenant`` (global, the tenant's, or one of its campaigns')?"""
    if entry["scope"] == "global":
        return True
    if entry["scope"] == "tenant":
        return entry["scope_ref"] == tenant
    if entry["scope"] == "campaign":
        return entry["scope_ref"].startswith(tenant + "/")
    return False


def export(ctx: ServiceContext, email: str) -> dict[str, Any]:
    """Everything held about a person (a tenant key: what its tenant holds only). Audited."""
    from penguinctl.campaigns.privacy import audit_resource, export_person
    from penguinctl.state.audit import record
    from penguinctl.state.db import session_scope

    with session_scope(ctx.db) as session:
        data = export_person(session, email)
        if ctx.tenant is not None:
            own = ctx.tenant
            lead_ids = {x.get("lead_id") for x in data["leads"] if x.get("tenant") == own}
            data["leads"] = [x for x in data["leads"] if x.get("tenant") == own]
            data["sends"] = [x for x in data["sends"] if x.get("tenant") == own]
            data["suppressions"] = [x for x in data["suppressions"] if _own_suppression(x, own)]
            data["inbound_events"] = [
                x for x in data["inbound_events"] if x.get("lead_id") in lead_ids
            ]
        record(
            session,
            actor=ctx.actor,
            tenant=ctx.tenant or "",
            action="leads.export",
            resource=audit_resource(email),
            result="ok",
            details={
                "leads": len(data["leads"]),
                "sends": len(data["sends"]),
                "suppressions": len(data["suppressions"]),
            },
        )
    return data


def forget(ctx: ServiceContext, email: str) -> dict[str, Any]:
    """Erase a person everywhere (platform-wide: only a hashed global suppression remains)."""
    from penguinctl.campaigns.privacy import audit_resource, forget_person
    from penguinctl.errors import Forbidden
    from penguinctl.state.audit import record
    from penguinctl.state.db import session_scope

    if ctx.tenant is not None:
        raise Forbidden("erasure is platform-wide: a platform key (or the CLI) forgets people")
    with session_scope(ctx.db) as session:
        result = forget_person(session, email)
        record(
            session,
            actor=ctx.actor,
            tenant="",
            action="leads.forget",
            resource=audit_resource(email),
            result="ok",
            details=result.as_dict(),
        )
    return result.as_dict()


def _scope(ctx: ServiceContext, tenant: str | None, campaign: str | None) -> tuple[str, str]:
    from penguinctl.campaigns import suppression
    from penguinctl.errors import Forbidden

    if ctx.tenant is not None:
        if tenant not in (None, ctx.tenant):
            raise Forbidden("a tenant key suppresses for its own tenant only")
        tenant = ctx.tenant
    return suppression.scope_of(tenant, campaign)


def suppress_add(
    ctx: ServiceContext,
    emails: Sequence[str],
    *,
    tenant: str | None = None,
    campaign: str | None = None,
    reason: str = "manual",
) -> dict[str, Any]:
    """Suppress addresses: globally (platform), for a tenant, or for one of its campaigns."""
    from penguinctl.campaigns import suppression
    from penguinctl.campaigns.csvrows import check_address
    from penguinctl.errors import UsageError
    from penguinctl.state.audit import record
    from penguinctl.state.db import session_scope

    scope, ref = _scope(ctx, tenant, campaign)
    addresses = []
    for email in emails:
        address, error = check_address(email)
        if error:
            raise UsageError(error)
        addresses.append(address)
    added = []
    with session_scope(ctx.db) as session:
        for address in addresses:
            if suppression.add(session, address, scope, ref, reason):
                added.append(address)
        if added:
            record(
                session,
                actor=ctx.actor,
                tenant=ref.split("/", 1)[0] if ref else "",
                action="suppress.add",
                resource=f"suppression/{scope}/{ref}" if ref else "suppression/global",
                result="ok",
                details={
                    "count": len(added),
                    "reason": reason,
                    "hashes": [suppression.email_hash(a)[:16] for a in added],
                },
            )
    return {
        "scope": scope,
        "scope_ref": ref,
        "added": len(added),
        "existing": len(addresses) - len(added),
    }


def suppress_check(
    ctx: ServiceContext, email: str, *, tenant: str | None = None, campaign: str | None = None
) -> dict[str, Any]:
    from penguinctl.campaigns import suppression
    from penguinctl.state.db import session_scope

    if ctx.tenant is not None:
        _scope(ctx, tenant, campaign)
        tenant = ctx.tenant
    elif campaign and not tenant:
        suppression.scope_of(tenant, campaign)  # raises the usage error
    with session_scope(ctx.db) as session:
        entries = suppression.check(session, email, tenant, campaign)
    found = [e.as_dict() for e in entries]
    if ctx.tenant is not None:
        found = [e for e in found if _own_suppression(e, ctx.tenant)]
    return {"email": email, "suppressed": bool(found), "entries": found}
