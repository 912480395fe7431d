"""The ``mailstack`` resource: MailU installed and converged on one server.

One per server whose spec says ``mail: {stack: mailu}`` and that penguinctl reaches over SSH
(``static`` or ``hostwinds``). Its data holds every non-secret input of the install (version, TLS
flavor, host names, the main domain, the message rate limit, which selector signs each domain)
and a digest of the playbook and templates, so a change to any of them, or a new penguinctl
release with different templates, plans an update. Secrets (MailU's secret key, API token,
admin password, the DKIM private keys) stay in the secrets backend and are read at apply time.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

from penguinctl.dkim_phases import ACTIVE
from penguinctl.resources import Resource, ResourceKey

MIN_MESSAGE_RATELIMIT = 1000  # per user per day; MailU's default of 200 would stop cold email
PLAYBOOK = "mailu"
TEMPLATES = ("mailu.env.j2", "docker-compose.yml.j2", "dkim_signing.conf.j2")


def playbook_digest() -> str:
    """sha256 over the MailU playbook and its templates: the shipped ones, or the operator's
    copies in ``<config dir>/playbooks`` and ``<config dir>/templates`` where there are some."""
    from penguinctl import shipped

    return _digest(
        shipped.find("playbooks", f"{PLAYBOOK}.yaml"),
        tuple(shipped.find("templates", f"mailu/{name}") for name in TEMPLATES),
    )


@cache
def _digest(playbook: Path, templates: tuple[Path, ...]) -> str:
    h = hashlib.sha256()
    h.update(playbook.read_bytes())
    for name, path in zip(TEMPLATES, templates, strict=True):
        h.update(name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def message_ratelimit(daily_limits: list[int]) -> int:
    """Per-user daily limit for MailU: twice the largest mailbox limit, at least 1000."""
    return max(MIN_MESSAGE_RATELIMIT, 2 * max(daily_limits, default=0))


def signing_selector(keys: dict[str, dict[str, Any]]) -> str | None:
    """The selector that signs a domain: its active key's."""
    active = [s for s, rec in keys.items() if (rec.get("phase") or ACTIVE) == ACTIVE]
    return max(active) if active else None


def mailstack_resources(
    specs, out: dict[ResourceKey, Resource], dkim_keys: dict[str, dict[str, dict[str, Any]]]
) -> list[Resource]:
    """The mailstack resources of ``specs``. ``dkim_keys`` maps each domain to its keys (selector
    -> data with ``phase``) as planned; ``out`` holds the resources built so far."""
    found = []
    for name, doc in sorted(specs.servers.items()):
        spec = doc.spec
        if spec.provider == "external" or spec.mail.stack != "mailu":
            continue
        tenant = doc.metadata.tenant or ""
        domains = sorted(d for d, dd in specs.domains.items() if dd.spec.server == name)
        signing: dict[str, str] = {}
        deps: list[ResourceKey] = [ResourceKey("server", tenant, name)]
        limits: list[int] = []
        for domain in domains:
            ddoc = specs.domains[domain]
            limits += [mb.daily_limit for mb in ddoc.spec.mailboxes]
            selector = signing_selector(dkim_keys.get(domain, {}))
            if selector is None:
                continue
            signing[domain] = selector
            key = ResourceKey("dkim", ddoc.metadata.tenant or "", f"{domain}/{selector}")
            if key in out:
                deps.append(key)
        hostname = spec.hostname.rstrip(".")
        data = {
            "version": spec.mail.version,
            "tls": spec.mail.tls,
            "root": spec.mail.root,
            "hostnames": [hostname],
            "domain": domains[0] if domains else hostname.split(".", 1)[-1],
            "message_ratelimit": message_ratelimit(limits),
            "api_url": spec.mail_api_url,
            "signing": signing,
            "playbook": playbook_digest(),
        }
        found.append(
            Resource(ResourceKey("mailstack", tenant, name), data, f"mailstack:{name}", tuple(deps))
        )
    return found
