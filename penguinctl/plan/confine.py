"""Ownership and confinement: what one tenant's spec may name, plan and delete.

Every named thing belongs to exactly one tenant, or to the platform (tenant ""): a domain (and
every DNS name inside it), a mailbox address, an alias address, a server name, a server hostname,
a Hostwinds label, a zone file. The owner is whoever the state store recorded it for first
(``resources.created_at``); a domain moves only through ``penguinctl domains transfer``.

- ``check_ownership`` (at plan time, before any side effect): a spec whose tenant names a thing
  recorded for another tenant is refused (``OwnershipConflict``, exit 3, one issue per name with
  its file:line), and so is a spec in which two tenants claim one name. The message names the
  owner for the operator (who has the state store); ``Conflict.anonymous()`` is the wording for a
  caller not allowed to know it (the API's tenants).
- ``confine`` (on a plan's changes): a change may only touch what its own tenant owns. A delete
  of something another tenant owns (rows squatted before ownership existed) only forgets the
  row: provider ``state``, no side effect. A destroy keeps a platform server or DNS provider that
  another tenant's domains still use.
- ``guard`` (in the engine, right before a batch's side effects): the same rule, re-checked
  against the state store as it is then; a change that would touch another tenant's thing fails.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from penguinctl.errors import Location, SpecError, SpecIssue
from penguinctl.plan.changes import Action, Change
from penguinctl.resources import ResourceKey

# What a recorded resource's name claims: kind of thing and how its name maps to it.
DOMAIN_KINDS = ("domain", "maildomain", "dkim", "dnsrecord")
NOUN = {
    "domain": "domain",
    "mailbox": "mailbox",
    "alias": "alias",
    "server": "server",
    "hostname": "server hostname",
    "label": "Hostwinds label",
    "zonefile": "zone file",
    "secret": "secret reference",
}


class OwnershipConflict(SpecError):
    """A spec names something another tenant owns (exit 3, like any invalid spec)."""

    def __init__(self, conflicts: list[Conflict]) -> None:
        self.conflicts = conflicts
        super().__init__([c.issue() for c in conflicts])
        self.hint = (
            "another tenant owns it: remove it from this spec, or move a domain with "
            "`penguinctl domains transfer DOMAIN --to TENANT`"
        )

    def messages(self, *, reveal_owner: bool) -> list[str]:
        """One line per conflict; without ``reveal_owner`` none names the owner (the wording
        for a caller that may not know who owns it: a tenant's API key)."""
        out = []
        for c in self.conflicts:
            text = c.message(reveal_owner=reveal_owner)
            out.append(f"{c.location}: {text}" if c.location else text)
        return out


@dataclass(frozen=True)
class Conflict:
    kind: str  # a NOUN key
    name: str
    tenant: str  # who claims it ("" = the platform)
    owner: str  # who owns it
    location: Location | None = None
    within: str | None = None  # the owner's domain this name lies in (or contains)
    in_spec: bool = False  # two tenants of the same spec claim it

    @staticmethod
    def _who(tenant: str) -> str:
        return f"tenant {tenant}" if tenant else "the platform"

    def message(self, *, reveal_owner: bool = True) -> str:
        what = f"{NOUN[self.kind]} {self.name}"
        claimant = self._who(self.tenant)
        if self.in_spec:
            owner = self._who(self.owner) if reveal_owner else "another tenant"
            if self.within and self.within != self.name:
                return (
                    f"{what} ({claimant}) overlaps domain {self.within} of {owner} in this "
                    "spec; a domain and the names in it belong to one tenant"
                )
            return f"{what} is claimed by {claimant} and by {owner} in this spec; keep one"
        owner = self._who(self.owner) if reveal_owner else "another tenant"
        if self.within and self.within != self.name:
            return (
                f"{what} ({claimant}) overlaps domain {self.within}, which belongs to {owner}"
                if reveal_owner
                else f"{what} overlaps a domain that belongs to another tenant"
            )
        return f"{what} belongs to {owner}; {claimant} cannot claim it"

    def anonymous(self) -> str:
        """The message for a caller not allowed to know who owns it (a tenant's API key)."""
        return self.message(reveal_owner=False)

    def issue(self) -> SpecIssue:
        return SpecIssue(self.location or Location("(spec)"), self.message())


# -- recorded ownership ------------------------------------------------------------------------
@dataclass
class Owners:
    """Who owns each named thing, as the state store recorded it (first claim wins)."""

    things: dict[tuple[str, str], str] = field(default_factory=dict)
    _under: dict[str, list[tuple[str, str]]] | None = field(default=None, repr=False)

    def owner(self, kind: str, name: str) -> str | None:
        return self.things.get((kind, name.lower().rstrip(".")))

    def claim(self, kind: str, name: str, tenant: str) -> None:
        self.things.setdefault((kind, name.lower().rstrip(".")), tenant)
        self._under = None

    def domain_of(self, name: str) -> tuple[str, str] | None:
        """``(domain, owner)`` of the recorded domain that ``name`` is or lies in."""
        labels = name.lower().rstrip(".").split(".")
        for i in range(len(labels) - 1):
            parent = ".".join(labels[i:])
            owner = self.things.get(("domain", parent))
            if owner is not None:
                return parent, owner
        return None

    def domains_under(self, name: str) -> list[tuple[str, str]]:
        """Recorded domains strictly inside ``name`` with their owners."""
        if self._under is None:  # one pass: every proper parent of every recorded domain
            self._under = {}
            for (kind, domain), tenant in self.things.items():
                if kind == "domain":
                    labels = domain.split(".")
                    for i in range(1, len(labels)):
                        self._under.setdefault(".".join(labels[i:]), []).append((domain, tenant))
        return self._under.get(name.lower().rstrip("."), [])

    def of_key(self, key: ResourceKey) -> str | None:
        """The owner of what ``key``'s resource touches (None: nobody recorded owns it)."""
        for kind, name in things_of(key.kind, key.name, {}):
            owner = self.owner(kind, name)
            if owner is not None:
                return owner
        return None


def things_of(kind: str, name: str, data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The named things a resource row of ``kind``/``name`` claims (the first is its own)."""
    if kind in DOMAIN_KINDS:
        return [("domain", name.split("/", 1)[0])]
    if kind == "mailbox":
        return [("mailbox", name), ("domain", name.rpartition("@")[2])]
    if kind == "mailalias":
        return [("alias", name), ("domain", name.rpartition("@")[2])]
    if kind in ("server", "mailstack"):
        out = [("server", name)]
        if data.get("hostname"):
            out.append(("hostname", str(data["hostname"])))
        if data.get("srvrname"):
            out.append(("label", str(data["srvrname"])))
        return out
    return []


WITH_DATA = ("domain", "server", "dnsprovider")  # whose data names more things


def _rows(conn: Any) -> list[Any]:
    """(tenant, kind, name, data) of every row that claims a name, oldest first; ``data`` only
    where it names something (a record's or key's data is never loaded)."""
    from penguinctl.state.models import ResourceRow

    t = ResourceRow.__table__
    order = (t.c.created_at, t.c.id)
    with_data = conn.execute(
        sa.select(t.c.tenant, t.c.kind, t.c.name, t.c.data, *order).where(t.c.kind.in_(WITH_DATA))
    ).all()
    names = conn.execute(
        sa.select(t.c.tenant, t.c.kind, t.c.name, sa.null(), *order).where(
            t.c.kind.in_(["maildomain", "dkim", "dnsrecord", "mailbox", "mailalias"])
        )
    ).all()
    rows = sorted([*with_data, *names], key=lambda r: (_aware(r[4]), r[5]))
    return [r[:4] for r in rows]


def _aware(ts: Any) -> Any:
    from datetime import UTC, datetime

    if ts is None:
        return datetime.min.replace(tzinfo=UTC)
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def recorded_owners(db: Any) -> Owners:
    """Ownership as recorded in the state store ``db`` (an engine, connection or session)."""
    if isinstance(db, sa.engine.Engine):
        with db.connect() as conn:
            rows = _rows(conn)
    else:
        rows = _rows(db)
    owners = Owners()
    zone_dirs: dict[tuple[str, str], str] = {}
    for tenant, kind, name, data in rows:
        data = data or {}
        if kind == "dnsprovider":
            if data.get("type") == "zonefile" and data.get("directory"):
                zone_dirs[(tenant, name)] = str(data["directory"])
            continue
        for thing, value in things_of(kind, name, data):
            owners.claim(thing, value, tenant)
    for tenant, kind, name, data in rows:  # zone files, once directories are known
        if kind == "domain":
            dns = (data or {}).get("dns")
            directory = zone_dirs.get((tenant, dns)) or zone_dirs.get(("", dns))
            if directory:
                owners.claim("zonefile", zone_file(directory, name), tenant)
    return owners


def domain_owners(db: Any) -> dict[str, str]:
    """``{domain: tenant}`` of every recorded domain (where each domain's DKIM keys live)."""
    owners = recorded_owners(db)
    return {name: t for (kind, name), t in owners.things.items() if kind == "domain"}


@functools.lru_cache(maxsize=256)
def _real(directory: str) -> str:
    return os.path.realpath(directory)


def zone_file(directory: str | Path, domain: str) -> str:
    """The zone file's path, symlinks resolved (two directories may be one)."""
    from penguinctl.providers.dns.zonefile import ZONE_SUFFIX

    return os.path.join(_real(str(directory)), f"{domain.lower().rstrip('.')}{ZONE_SUFFIX}")


# -- what a spec claims ------------------------------------------------------------------------
@dataclass(frozen=True)
class Claim:
    kind: str
    name: str
    tenant: str
    doc: Any = None  # the document and field path it is written at (located only on need)
    path: tuple[str | int, ...] = ("metadata", "name")

    @property
    def location(self) -> Location | None:
        return None if self.doc is None else self.doc.location_of(*self.path)


def spec_claims(specs: Any, zones_dir: Path) -> list[Claim]:
    """Every named thing the documents of ``specs`` claim, with where it is written."""
    from penguinctl.desired import dns_directory, srvrname

    out: list[Claim] = []
    for name, doc in specs.servers.items():
        tenant = doc.metadata.tenant or ""
        out.append(Claim("server", name, tenant, doc))
        if doc.spec.hostname:
            out.append(Claim("hostname", doc.spec.hostname, tenant, doc, ("spec", "hostname")))
        if doc.spec.provider == "hostwinds":
            out.append(Claim("label", srvrname(tenant, name), tenant, doc))
    directories: dict[str, str] = {}
    for name, doc in specs.domains.items():
        tenant = doc.metadata.tenant or ""
        out.append(Claim("domain", name, tenant, doc))
        for i, mb in enumerate(doc.spec.mailboxes):
            out.append(Claim("mailbox", mb.address(name), tenant, doc, ("spec", "mailboxes", i)))
        for i, alias in enumerate(doc.spec.aliases):
            out.append(Claim("alias", alias.address(name), tenant, doc, ("spec", "aliases", i)))
        dns = specs.dns_providers.get(doc.spec.dns)
        if dns is not None and dns.spec.type == "zonefile":
            if dns.name not in directories:
                directories[dns.name] = os.path.realpath(dns_directory(dns, zones_dir))
            out.append(Claim("zonefile", zone_file(directories[dns.name], name), tenant, doc))
    return out


def _secret_refs(model: Any, path: tuple[str | int, ...] = ()):
    """``(field path, SecretRef)`` of every secret reference in a spec model."""
    from pydantic import BaseModel

    from penguinctl.spec.refs import SecretRef

    if isinstance(model, SecretRef):
        yield path, model
    elif isinstance(model, BaseModel):
        for name in type(model).model_fields:
            yield from _secret_refs(getattr(model, name), (*path, name))
    elif isinstance(model, list | tuple):
        for i, item in enumerate(model):
            yield from _secret_refs(item, (*path, i))
    elif isinstance(model, dict):
        for key, item in model.items():
            yield from _secret_refs(item, (*path, str(key)))


def ref_conflicts(specs: Any) -> list[Conflict]:
    """``keystore:`` and ``vault:`` references of a tenant's documents that name another
    tenant's secrets (``tenants/<other>/...``) or the platform's (``platform/...``): a spec
    may read only its own tenant's secrets from penguinctl's layout."""
    out: list[Conflict] = []
    for doc in (*specs.servers.values(), *specs.dns_providers.values(), *specs.domains.values()):
        tenant = doc.metadata.tenant or ""
        if not tenant:
            continue  # the platform's documents may name any secret
        for path, ref in _secret_refs(doc.spec, ("spec",)):
            if ref.scheme not in ("keystore", "vault"):
                continue
            parts = ref.path.strip("/").split("/")
            owner = None
            for i, part in enumerate(parts):
                if part == "tenants" and i + 1 < len(parts) and parts[i + 1] != tenant:
                    owner = parts[i + 1]
                    break
                if part == "platform" and i <= 1:
                    owner = ""
                    break
            if owner is not None:
                out.append(Conflict("secret", str(ref), tenant, owner, doc.location_of(*path)))
    return out


def _norm(name: str) -> str:
    return name.lower().rstrip(".")


def find_conflicts(claims: Iterable[Claim], owners: Owners) -> list[Conflict]:
    """Claims of one spec against each other and against the recorded owners."""
    conflicts: list[Conflict] = []
    seen: dict[tuple[str, str], Claim] = {}
    spec_domains: dict[str, Claim] = {}
    for c in claims:
        key = (c.kind, _norm(c.name))
        first = seen.setdefault(key, c)
        if first.tenant != c.tenant:
            conflicts.append(
                Conflict(c.kind, c.name, c.tenant, first.tenant, c.location, None, True)
            )
            continue
        owner = owners.owner(c.kind, c.name)
        if owner is not None and owner != c.tenant:
            conflicts.append(Conflict(c.kind, c.name, c.tenant, owner, c.location))
            continue
        if c.kind == "domain":
            spec_domains[_norm(c.name)] = c
    # DNS names inside (or around) another tenant's domain: a subdomain would be written into
    # its parent's zone by an API provider; the platform's own servers are exempt.
    for c in claims:
        if c.kind not in ("domain", "hostname") or not c.tenant:
            continue
        name = _norm(c.name)
        inside = owners.domain_of(name)
        if inside is not None and inside[1] != c.tenant and inside[0] != name:
            conflicts.append(Conflict(c.kind, c.name, c.tenant, inside[1], c.location, inside[0]))
            continue
        labels = name.split(".")
        for i in range(1, len(labels) - 1):
            parent = spec_domains.get(".".join(labels[i:]))
            if parent is not None and parent.tenant != c.tenant:
                conflicts.append(
                    Conflict(c.kind, c.name, c.tenant, parent.tenant, c.location, parent.name, True)
                )
                break
        else:
            if c.kind == "domain":
                for domain, owner in owners.domains_under(name):
                    if owner != c.tenant:
                        conflicts.append(
                            Conflict(c.kind, c.name, c.tenant, owner, c.location, domain)
                        )
                        break
    return conflicts


def check_ownership(specs: Any, owners: Owners, zones_dir: Path) -> None:
    """Raise ``OwnershipConflict`` when the spec names what another tenant owns."""
    conflicts = find_conflicts(spec_claims(specs, zones_dir), owners) + ref_conflicts(specs)
    if conflicts:
        raise OwnershipConflict(conflicts)


# -- confinement of changes --------------------------------------------------------------------
def foreign(change: Change, owners: Owners) -> str | None:
    """The owner of what ``change`` touches when it is not the change's tenant, else None."""
    owner = owners.of_key(change.key)
    if owner is None or owner == change.key.tenant:
        return None
    return owner


def platform_users(db_conn: Any, kind: str, name: str, tenants: Iterable[str]) -> list[str]:
    """Tenants other than ``tenants`` whose recorded domains use the platform server or DNS
    provider ``name``."""
    from penguinctl.state.models import ResourceRow

    t = ResourceRow.__table__
    field_name = "server" if kind == "server" else "dns"
    mine = set(tenants)
    users = set()
    for tenant, data in db_conn.execute(
        sa.select(t.c.tenant, t.c.data).where(t.c.kind == "domain")
    ):
        if tenant not in mine and (data or {}).get(field_name) == name:
            users.add(tenant)
    return sorted(users)


def confine(
    changes: list[Change],
    owners: Owners,
    *,
    tenants: Iterable[str],
    db: Any,
    destroy: bool,
) -> tuple[list[Change], list[str]]:
    """``changes`` confined to what their tenants own, and warnings saying what was confined.

    A delete of a row whose thing another tenant owns forgets the row only (provider
    ``state``). Any other change of such a thing is refused (``OwnershipConflict``): planning
    checks the spec first, so this is a second wall. A destroy keeps a platform server or DNS
    provider that other tenants' domains use."""
    mine = set(tenants)
    out: list[Change] = []
    warnings: list[str] = []
    refused: list[Conflict] = []
    in_use: dict[tuple[str, str], list[str]] = {}
    for c in changes:
        owner = foreign(c, owners)
        if owner is not None:
            if c.action is Action.DELETE:
                out.append(Change(c.action, c.key, "state", c.before, c.after))
                warnings.append(
                    f"{c.key.address}: belongs to tenant {owner or '(platform)'}; only the "
                    f"record of tenant {c.key.tenant or '(platform)'} is removed, nothing else"
                )
                continue
            things = things_of(c.key.kind, c.key.name, {})
            kind, name = things[-1] if c.key.kind in ("mailbox", "mailalias") else things[0]
            refused.append(Conflict(kind, name, c.key.tenant, owner))
            continue
        shared = c.key.kind in ("server", "dnsprovider", "mailstack") and not c.key.tenant
        if destroy and shared and c.action is Action.DELETE and mine - {""}:
            kind = "dnsprovider" if c.key.kind == "dnsprovider" else "server"
            users = in_use.get((kind, c.key.name))
            if users is None:
                with db.connect() as conn:
                    users = platform_users(conn, kind, c.key.name, mine)
                in_use[(kind, c.key.name)] = users
            if users:
                warnings.append(
                    f"{c.key.address}: kept, the platform's and still used by "
                    f"{len(users)} other tenant(s)"
                )
                continue
        out.append(c)
    if refused:
        raise OwnershipConflict(refused)
    return out, warnings


CLAIMS_LOCK = "(claims)"  # held by an apply that records new names (a lock row's "tenant")
CLAIMS_WAIT = 900.0  # seconds an apply waits for another one's claims
CLAIMING_KINDS = frozenset({"domain", "server", "mailbox", "mailalias"})


def claims_names(changes: Iterable[Change]) -> bool:
    """Whether applying ``changes`` records a name not recorded before."""
    return any(c.action is Action.CREATE and c.key.kind in CLAIMING_KINDS for c in changes)


def guard(changes: Iterable[Change], db: Any) -> None:
    """Right before side effects: every change touches only what its tenant owns (the state
    store as it is now). Raises ``OwnershipConflict``."""
    owners = recorded_owners(db)
    bad = []
    for c in changes:
        if c.provider == "state":
            continue
        owner = foreign(c, owners)
        if owner is not None:
            kind, name = things_of(c.key.kind, c.key.name, {})[0]
            bad.append(Conflict(kind, name, c.key.tenant, owner))
    if bad:
        raise OwnershipConflict(bad)
