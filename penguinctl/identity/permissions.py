"""Roles and the permission matrix, as data: every action the API checks, with the least
tenant role and the least platform role allowed to do it (``None``: no role of that kind may).

Platform roles (keys without a tenant, over every tenant): ``readonly`` < ``operator`` < ``admin``.
Tenant roles (keys of one tenant, over that tenant only): ``viewer`` < ``member`` < ``admin`` <
``owner``. Viewers read; members launch, pause and resume campaigns and import leads; admins
change domains and mailboxes, rotate DKIM and apply specs; owners also see billing and manage
keys. The README's matrix is generated from ``MATRIX`` (``markdown_table``; a test compares).
"""

from __future__ import annotations

from dataclasses import dataclass

PLATFORM_ROLES = ("readonly", "operator", "admin")
TENANT_ROLES = ("viewer", "member", "admin", "owner")
_PLATFORM_RANK = {r: i for i, r in enumerate(PLATFORM_ROLES)}
_TENANT_RANK = {r: i for i, r in enumerate(TENANT_ROLES)}


@dataclass(frozen=True)
class Rule:
    tenant: str | None  # least tenant role, None: platform keys only
    platform: str  # least platform role
    what: str  # for the README


MATRIX: dict[str, Rule] = {
    "read": Rule(
        "viewer",
        "readonly",
        "read tenants, servers, domains, mailboxes, DKIM, "
        "campaigns, stats, suppressions, checks, backups, jobs, events, webhooks",
    ),
    "specs.validate": Rule("viewer", "readonly", "validate specs"),
    "plans.create": Rule("member", "operator", "compute a plan"),
    "plans.apply": Rule("admin", "operator", "apply a plan"),
    "domains.verify": Rule("member", "operator", "verify a domain's DNS"),
    "dkim.rotate": Rule("admin", "operator", "start or advance a DKIM rotation"),
    "campaigns.launch": Rule("member", "operator", "launch a campaign"),
    "campaigns.pause": Rule("member", "operator", "pause or resume a campaign"),
    "campaigns.resolve": Rule("admin", "operator", "settle ambiguous sends"),
    "leads.import": Rule("member", "operator", "import leads (CSV)"),
    "leads.export": Rule("member", "operator", "export leads"),
    "leads.forget": Rule(None, "operator", "forget a person (platform-wide erasure)"),
    "suppressions.write": Rule("member", "operator", "add suppressions"),
    "jobs.run": Rule("admin", "operator", "run a job now (the dashboard)"),
    "webhooks.manage": Rule("admin", "operator", "add, test and remove webhook endpoints"),
    "audit.read": Rule("admin", "readonly", "read the audit log"),
    "invoices.read": Rule("owner", "readonly", "read invoices"),
    "keys.manage": Rule("owner", "admin", "create, rotate and revoke the tenant's API keys"),
}


def is_role(role: str, *, tenant: bool) -> bool:
    return role in (_TENANT_RANK if tenant else _PLATFORM_RANK)


def allowed(action: str, role: str, *, tenant: bool) -> bool:
    """May a key with ``role`` (a tenant key when ``tenant``) do ``action``?"""
    rule = MATRIX[action]  # an unknown action is a programming error
    if tenant:
        if rule.tenant is None or role not in _TENANT_RANK:
            return False
        return _TENANT_RANK[role] >= _TENANT_RANK[rule.tenant]
    if role not in _PLATFORM_RANK:
        return False
    return _PLATFORM_RANK[role] >= _PLATFORM_RANK[rule.platform]


def least_role(action: str, *, tenant: bool) -> str | None:
    rule = MATRIX[action]
    return rule.tenant if tenant else rule.platform


def markdown_table() -> str:
    """The matrix as a Markdown table (README, section "HTTP API")."""
    head = ["action", "what", *[f"tenant {r}" for r in TENANT_ROLES], *PLATFORM_ROLES]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for action, rule in MATRIX.items():
        cells = [f"`{action}`", rule.what]
        cells += ["yes" if allowed(action, r, tenant=True) else "-" for r in TENANT_ROLES]
        cells += ["yes" if allowed(action, r, tenant=False) else "-" for r in PLATFORM_ROLES]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
