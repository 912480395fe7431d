"""Moving a domain between tenants (`penguinctl domains transfer DOMAIN --to TENANT`).

The only way a domain changes owner. Nothing is deleted or re-created: the domain's DKIM keys,
DNS records, MailU domain, mailboxes and aliases keep their data (the same key pairs, the same
published records); what changes is whose they are:

1. checks, before anything moves: the domain is recorded, the target tenant exists (applied),
   is not the owner already, its plan allows one more domain and the domain's mailboxes
   (``billing.catalog`` limits), the domain's server is the platform's or the target's, the
   target has (or the platform has) the domain's DNS provider, and no active campaign of the
   old tenant sends from the domain;
2. the secrets (DKIM key pairs, generated mailbox passwords) are copied to the target tenant's
   paths and read back (a different secret already there stops the transfer; copies it made
   are removed again);
3. one transaction: the resources rows and the recorded Domain document change tenant, both
   tenants get an audit event (``domain.transfer``) and a ``domain.transferred`` event (each
   names only its own side);
4. the old secret paths are deleted.

A crash before 3 leaves identical copies that a re-run reuses; after 3 only old copies, which a
re-run (or ``secrets list tenants/<old>/``) shows. Both tenants are locked throughout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from penguinctl import secret_paths
from penguinctl.errors import NotFound, SecretError, UsageError

MOVED_KINDS = ("domain", "maildomain", "dkim", "dnsrecord", "mailbox", "mailalias")


@dataclass
class Transfer:
    domain: str
    source: str
    target: str
    rows: list[Any] = field(default_factory=list)  # (id, kind, name, data, provider)
    secrets: list[tuple[str, str]] = field(default_factory=list)  # (old path, new path)

    def counts(self) -> dict[str, int]:
        kinds = [r.kind for r in self.rows]
        return {
            "dkim_keys": kinds.count("dkim"),
            "mailboxes": kinds.count("mailbox"),
            "aliases": kinds.count("mailalias"),
            "records": kinds.count("dnsrecord"),
            "resources": len(kinds),
            "secrets": len(self.secrets),
        }

    def to_json(self) -> dict[str, Any]:
        return {"domain": self.domain, "from": self.source, "to": self.target, **self.counts()}


def _belongs(kind: str, name: str, domain: str) -> bool:
    if kind in ("domain", "maildomain"):
        return name == domain
    if kind in ("dkim", "dnsrecord"):
        return name.split("/", 1)[0] == domain
    return name.rpartition("@")[2].lower() == domain


def prepare(db: Any, domain: str, target: str, *, catalog: Any = None) -> Transfer:
    """Check the transfer and say what it moves (reads only). Raises ``NotFound`` (no such
    domain or tenant) or ``UsageError`` (refused, with why)."""
    from penguinctl.plan.confine import recorded_owners
    from penguinctl.state.models import ResourceRow

    domain = domain.lower().rstrip(".")
    t = ResourceRow.__table__
    owners = recorded_owners(db)
    source = owners.owner("domain", domain)
    if source is None:
        raise NotFound(f"no recorded domain {domain}", hint="see `penguinctl get domains`")
    if source == target:
        raise UsageError(f"domain {domain} already belongs to tenant {target}")
    with db.connect() as conn:
        tenant_row = conn.execute(
            sa.select(t.c.data).where(t.c.kind == "tenant", t.c.tenant == target)
        ).first()
        if tenant_row is None:
            raise NotFound(
                f"tenant {target} does not exist (no applied Tenant document)",
                hint="apply the tenant's spec first",
            )
        rows = [
            r
            for r in conn.execute(
                sa.select(t.c.id, t.c.kind, t.c.name, t.c.data, t.c.provider).where(
                    t.c.tenant == source, t.c.kind.in_(MOVED_KINDS)
                )
            )
            if _belongs(r.kind, r.name, domain)
        ]
        theirs = conn.execute(
            sa.select(t.c.kind, t.c.name, t.c.data).where(t.c.tenant == target)
        ).all()
        dns_providers = {
            (r.tenant, r.name)
            for r in conn.execute(sa.select(t.c.tenant, t.c.name).where(t.c.kind == "dnsprovider"))
        }
    data = next((r.data or {} for r in rows if r.kind == "domain"), {})
    server = data.get("server")
    server_owner = owners.owner("server", server) if server else None
    if server_owner not in (None, "", target):
        raise UsageError(
            f"domain {domain} is on server {server} of tenant {source}: tenant {target} could "
            "not name it in its spec",
            hint="move the domain to a platform server (no metadata.tenant) or one of "
            f"{target}'s first, then transfer it",
        )
    dns = data.get("dns")
    if dns and (target, dns) not in dns_providers and ("", dns) not in dns_providers:
        raise UsageError(
            f"tenant {target} has no DNS provider {dns} (domain {domain} is published with it)",
            hint=f"apply a DnsProvider {dns} for tenant {target} (or a platform one) first",
        )
    clash = {(k, n) for k, n, _ in theirs} & {(r.kind, r.name) for r in rows}
    if clash:
        kind, name = sorted(clash)[0]
        raise UsageError(
            f"tenant {target} has stale records of {domain} ({kind}/{name})",
            hint=f"apply or destroy tenant {target}'s spec first: its old records are forgotten",
        )
    _check_limits(target, tenant_row.data or {}, theirs, rows, catalog)
    _check_campaigns(db, source, domain)
    transfer = Transfer(domain, source, target, rows)
    for r in rows:
        if r.kind == "dkim":
            _, _, selector = r.name.partition("/")
            transfer.secrets.append(
                (
                    secret_paths.dkim_key(source, domain, selector),
                    secret_paths.dkim_key(target, domain, selector),
                )
            )
        elif r.kind == "mailbox" and not (r.data or {}).get("password"):
            transfer.secrets.append(
                (secret_paths.mailbox(source, r.name), secret_paths.mailbox(target, r.name))
            )
    return transfer


def _check_campaigns(db: Any, source: str, domain: str) -> None:
    """An active campaign of the old tenant sending from the domain's mailboxes would lose its
    senders mid-run: it is paused or completed first."""
    from penguinctl.campaigns.models import Campaign

    c = Campaign.__table__
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(c.c.name, c.c.spec).where(c.c.tenant == source, c.c.status == "active")
        ).all()
    for name, spec in rows:
        senders = (spec or {}).get("senders") or []
        if any(str(s).rpartition("@")[2].lower() == domain for s in senders):
            raise UsageError(
                f"tenant {source}'s active campaign {name} sends from {domain}",
                hint=f"pause or complete it first (`penguinctl campaign pause {name} "
                f"--tenant {source}`)",
            )


def _check_limits(target: str, tenant: dict, theirs: list, rows: list, catalog: Any) -> None:
    from penguinctl.billing.catalog import load_catalog

    catalog = catalog or load_catalog()
    plan = catalog.plans.get(tenant.get("plan"))
    if plan is None:
        raise UsageError(f"tenant {target}: plan {tenant.get('plan')!r} is not in the catalog")
    have = {
        "domains": sum(1 for k, _, _ in theirs if k == "domain"),
        "mailboxes": sum(1 for k, _, _ in theirs if k == "mailbox"),
    }
    adds = {"domains": 1, "mailboxes": sum(1 for r in rows if r.kind == "mailbox")}
    for what, n in adds.items():
        allowed = getattr(plan.limits, what)
        if allowed is not None and have[what] + n > allowed:
            raise UsageError(
                f"tenant {target}'s plan {tenant.get('plan')} allows {allowed} {what}; it has "
                f"{have[what]} and the transfer adds {n}",
                hint=f"move tenant {target} to a bigger plan first (`penguinctl billing plans`)",
            )


def copy_secrets(backend: Any, transfer: Transfer) -> list[str]:
    """Copy each secret to its new path and read it back; returns the paths it created. A
    different secret at a new path: the copies made are removed and ``SecretError`` raised."""
    created: list[str] = []
    try:
        for old, new in transfer.secrets:
            src = backend.get(old)
            if src is None:
                continue  # nothing to move (a key already missing: plan reports it)
            fields = {k: v.reveal() for k, v in src.items()}
            dst = backend.get(new)
            if dst is None:
                backend.put(new, fields)
                created.append(new)
                dst = backend.get(new)
            if dst is None or {k: v.reveal() for k, v in dst.items()} != fields:
                raise SecretError(
                    f"{new} already holds a different secret; nothing was transferred",
                    hint="find out whose it is (`penguinctl secrets get`), remove it, retry",
                )
    except BaseException:
        for path in created:
            backend.delete(path)
        raise
    return created


def record(db: Any, transfer: Transfer, *, actor: str) -> None:
    """The state change, in one transaction: rows, recorded spec document, audit, events."""
    from penguinctl.control import specs
    from penguinctl.control.tables import SpecDocument
    from penguinctl.events.outbox import emit
    from penguinctl.state import audit
    from penguinctl.state.models import ResourceRow, utcnow

    t = ResourceRow.__table__
    docs = SpecDocument.__table__
    counts = transfer.counts()
    with db.begin() as conn:
        ids = [r.id for r in transfer.rows]
        if ids:
            conn.execute(
                sa.update(t)
                .where(t.c.id.in_(ids))
                .values(tenant=transfer.target, updated_at=utcnow())
            )
        doc = conn.execute(
            sa.select(docs.c.id, docs.c.document).where(
                docs.c.tenant == transfer.source,
                docs.c.kind == "Domain",
                docs.c.name == transfer.domain,
            )
        ).first()
        if doc is not None:
            document = dict(doc.document)
            document["metadata"] = {**document.get("metadata", {}), "tenant": transfer.target}
            conn.execute(
                sa.delete(docs).where(
                    docs.c.tenant == transfer.target,
                    docs.c.kind == "Domain",
                    docs.c.name == transfer.domain,
                )
            )
            conn.execute(
                sa.update(docs)
                .where(docs.c.id == doc.id)
                .values(
                    tenant=transfer.target,
                    document=document,
                    sha256=specs.content_hash(document),
                    actor=actor,
                    recorded_at=utcnow(),
                )
            )
        events = []
        for tenant, direction, other in (
            (transfer.source, "out", transfer.target),
            (transfer.target, "in", transfer.source),
        ):
            events.append(
                {
                    "actor": actor,
                    "tenant": tenant,
                    "action": "domain.transfer",
                    "resource": f"domain/{transfer.domain}",
                    "result": "ok",
                    "details": {"direction": direction, "other_tenant": other, **counts},
                }
            )
            emit(
                conn,
                "domain.transferred",
                tenant=tenant,
                subject=f"domain/{transfer.domain}",
                payload={
                    "domain": transfer.domain,
                    "direction": direction,
                    "dkim_keys": counts["dkim_keys"],
                    "mailboxes": counts["mailboxes"],
                    "records": counts["records"],
                },
            )
        audit.record_many(conn, events)


def finish(backend: Any, transfer: Transfer) -> list[str]:
    """Delete the old secret paths (after ``record``); returns those left behind."""
    left = []
    for old, new in transfer.secrets:
        if backend.get(new) is None:
            continue  # never copied (it was missing): nothing to delete
        backend.delete(old)
        if backend.get(old) is not None:
            left.append(old)
    return left
