"""Where every secret lives: the one module that builds secret paths (product.md, section 4).

Every path is under its owner, so that a Vault policy can be scoped per tenant and no tenant's
spec can name another tenant's secret:

- ``tenants/<tenant>/domains/<domain>/dkim/<selector>``: a DKIM key pair;
- ``tenants/<tenant>/mailboxes/<address>``: a mailbox password;
- ``tenants/<tenant>/servers/<server>/{ssh,mailu}``: a server's admin SSH key, MailU credentials;
- ``tenants/<tenant>/providers/<name>``: API keys and TSIG secrets;
- ``tenants/<tenant>/backups/<server>``: a server's restic repository password;
- ``tenants/<tenant>/webhooks/<endpoint>``: a webhook endpoint's signing secret;
- the same under ``platform/`` for what no tenant owns (a server or provider without
  ``metadata.tenant``, platform webhooks), and ``platform/recovery/...``, ``platform/alerts/...``.

Before this layout, paths had no owner (``domains/<domain>/dkim/<selector>``, ...): one tenant's
spec could name, adopt and delete another's keys. ``penguinctl secrets migrate-layout`` moves
such secrets (``legacy_*`` below describe the old layout); commands that use secrets refuse to
run on a store that still holds them (``penguinctl.secret_layout``).
"""

from __future__ import annotations

import re

PLATFORM = "platform"
TENANTS = "tenants"
# The first segment of a path in the old, ownerless layout.
LEGACY_ROOTS = ("domains", "mailboxes", "servers", "backups", "providers")
_SAFE = re.compile(r"[A-Za-z0-9@+_-][A-Za-z0-9@+._-]*\Z")


def _segment(value: str, what: str) -> str:
    """``value`` when it is one safe path segment; a ``SecretError`` otherwise (never a path
    that climbs or splits: no ``/``, no leading dot, no control character)."""
    if not isinstance(value, str) or not _SAFE.match(value):
        from penguinctl.errors import SecretError

        raise SecretError(f"invalid {what} for a secret path: {value!r}")
    return value


def owner_prefix(tenant: str | None) -> str:
    """``tenants/<tenant>``, or ``platform`` for what no tenant owns (tenant "" or None)."""
    if not tenant:
        return PLATFORM
    return f"{TENANTS}/{_segment(tenant, 'tenant')}"


def domain_prefix(tenant: str, domain: str) -> str:
    """Everything of one domain (its DKIM keys): what a transfer moves."""
    return f"{owner_prefix(tenant)}/domains/{_segment(domain, 'domain')}/"


def dkim_key(tenant: str, domain: str, selector: str) -> str:
    """The key pair of ``selector`` of ``domain`` (fields ``private_key``, ``public_key``)."""
    return f"{domain_prefix(tenant, domain)}dkim/{_segment(selector, 'selector')}"


def mailbox(tenant: str, address: str) -> str:
    """A mailbox's password (field ``password``; ``next_password`` during a rotation)."""
    return f"{owner_prefix(tenant)}/mailboxes/{_segment(address, 'address')}"


def server_ssh(tenant: str | None, server: str) -> str:
    """The server's admin SSH key (``private_key``, ``public_key``)."""
    return f"{owner_prefix(tenant)}/servers/{_segment(server, 'server')}/ssh"


def server_mailu(tenant: str | None, server: str) -> str:
    """MailU's ``secret_key``, ``api_token`` and ``admin_password`` on the server."""
    return f"{owner_prefix(tenant)}/servers/{_segment(server, 'server')}/mailu"


def provider(tenant: str | None, name: str) -> str:
    """A provider's API key or TSIG secret."""
    return f"{owner_prefix(tenant)}/providers/{_segment(name, 'provider')}"


def backup_password_path(tenant: str | None, server: str) -> str:
    """The restic repository password of ``server``'s backups (field ``password``; S3 keys)."""
    return f"{owner_prefix(tenant)}/backups/{_segment(server, 'server')}"


def webhook(tenant: str | None, endpoint_id: str) -> str:
    """A webhook endpoint's signing secret."""
    return f"{owner_prefix(tenant)}/webhooks/{_segment(endpoint_id, 'endpoint id')}"


def recovery(name: str) -> str:
    """Platform recovery material (escrow)."""
    return f"{PLATFORM}/recovery/{_segment(name, 'name')}"


ALERTS_SMTP = f"{PLATFORM}/alerts/smtp"
UNSUBSCRIBE_KEY = f"{PLATFORM}/campaigns/unsubscribe"  # signs unsubscribe links
NOTIFY_WEBHOOK = f"{PLATFORM}/notify/webhook"  # signs health notifications
# Old-layout paths of platform secrets penguinctl reads or writes itself, and where they go.
LEGACY_PLATFORM = {
    "providers/hostwinds": f"{PLATFORM}/providers/hostwinds",
    "providers/stripe": f"{PLATFORM}/providers/stripe",
    "campaigns/unsubscribe": UNSUBSCRIBE_KEY,
    "notify/webhook": NOTIFY_WEBHOOK,
}


# -- the old, ownerless layout (for migrate-layout) -------------------------------------------
def is_legacy(path: str) -> bool:
    """True for a path of the old layout (``domains/...``, ``mailboxes/...``, ...)."""
    return path.strip("/").split("/", 1)[0] in LEGACY_ROOTS


def legacy_subject(path: str) -> tuple[str, str] | None:
    """``(kind, name)`` an old-layout path belongs to: ``("domain", d)``, ``("mailbox", a)``,
    ``("server", s)`` for ``servers/`` and ``backups/``, ``("provider", p)``; None otherwise."""
    parts = path.strip("/").split("/")
    if len(parts) < 2 or parts[0] not in LEGACY_ROOTS:
        return None
    kind = {
        "domains": "domain",
        "mailboxes": "mailbox",
        "servers": "server",
        "backups": "server",
        "providers": "provider",
    }[parts[0]]
    return kind, parts[1]


def relocate(path: str, tenant: str | None) -> str:
    """The new-layout path of the old-layout ``path`` owned by ``tenant`` ("" or None: the
    platform): the owner prefix in front, the rest unchanged."""
    rel = path.strip("/")
    if not is_legacy(rel):
        raise ValueError(f"not an old-layout secret path: {path!r}")
    return f"{owner_prefix(tenant)}/{rel}"


def move_domain(path: str, old_tenant: str, new_tenant: str, domain: str) -> str:
    """``path`` (under ``domain_prefix(old_tenant, domain)``) under the new tenant."""
    old = domain_prefix(old_tenant, domain)
    if not path.startswith(old):
        raise ValueError(f"{path!r} is not a secret of domain {domain}")
    return domain_prefix(new_tenant, domain) + path[len(old) :]
