"""Checks across documents: unique names, references that resolve, per-domain limits.

Each check takes the :class:`SpecSet` of valid documents and returns a list of issues (empty when
all is well). Reference checks look names up in ``specs.declared`` (names written in every
document of a known kind, valid or not), so one invalid document does not cascade into an
"undefined" issue at every document that refers to it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from typing import Any

from penguinctl.errors import Location, SpecIssue
from penguinctl.spec.documents import NOUNS, Declared, Document, SpecSet, describe
from penguinctl.spec.source import quote

SPF_LOOKUP_LIMIT = 10  # RFC 7208, section 4.6.4
# SPF terms that cost a DNS lookup each when a receiver evaluates the record.
SPF_LOOKUP_TERMS = frozenset({"include", "a", "mx", "ptr", "exists", "redirect"})


def _label(doc: Document[Any] | Declared) -> str:
    return describe(doc.kind, doc.name)


def _where(location: Location) -> str:
    return f"{location.file}:{location.line}"


def _not_defined(target: str, names: set[str], wanted: str) -> str:
    plural = NOUNS[target][1]
    if not names:
        return f"is not defined (no {target} documents in the given paths); add one"
    ordered = sorted(names)
    shown = ", ".join(ordered[:10])
    if len(ordered) > 10:
        shown += f" and {len(ordered) - 10} more"
    close = difflib.get_close_matches(wanted, ordered, n=1)
    hint = f"did you mean {quote(close[0])}?" if close else f"add a {target} or fix the name"
    return f"is not defined (defined {plural}: {shown}); {hint}"


def check_unique_names(specs: SpecSet) -> list[SpecIssue]:
    """Each name is used once per kind; the duplicate points at the later document."""
    issues: list[SpecIssue] = []
    first: dict[tuple[str, str], Declared] = {}
    for doc in specs.declared:
        name = doc.name
        if name is None:
            continue
        earlier = first.setdefault((doc.kind, name), doc)
        if earlier is not doc:
            issues.append(
                SpecIssue(
                    doc.location_of("metadata", "name"),
                    f"{_label(doc)} is defined twice (first at "
                    f"{_where(earlier.raw.location)}); rename or remove one",
                )
            )
    return issues


# (kind of the referring document, field path, kind it names)
REFERENCES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("Server", ("metadata", "tenant"), "Tenant"),
    ("DnsProvider", ("metadata", "tenant"), "Tenant"),
    ("Domain", ("metadata", "tenant"), "Tenant"),
    ("BackupPolicy", ("metadata", "tenant"), "Tenant"),
    ("Server", ("spec", "backup"), "BackupPolicy"),
    ("Domain", ("spec", "server"), "Server"),
    ("Domain", ("spec", "dns"), "DnsProvider"),
)


def check_references(specs: SpecSet) -> list[SpecIssue]:
    """Tenants, servers, DNS providers and backup policies named in a document exist.

    Invalid documents are checked too (a reference is checked when it is a string).
    """
    issues: list[SpecIssue] = []
    names = {kind: specs.declared_names(kind) for kind in {ref[2] for ref in REFERENCES}}
    for doc in specs.declared:
        for kind, path, target in REFERENCES:
            wanted = doc.text(*path) if doc.kind == kind else None
            if wanted is None or wanted in names[target]:
                continue
            what = "tenant" if target == "Tenant" else path[-1]
            issues.append(
                SpecIssue(
                    doc.location_of(*path),
                    f"{_label(doc)}: {what} {quote(wanted)} "
                    + _not_defined(target, names[target], wanted),
                )
            )
    return issues


def check_tenant_ownership(specs: SpecSet) -> list[SpecIssue]:
    """A domain uses a server and DNS provider of its own tenant, or shared ones (no tenant)."""
    issues: list[SpecIssue] = []
    tenants = specs.declared_names("Tenant")
    for domain in specs.domains.values():
        if domain.tenant not in tenants:
            continue  # reported as an undefined tenant
        used = (
            ("server", specs.servers.get(domain.spec.server)),
            ("dns", specs.dns_providers.get(domain.spec.dns)),
        )
        for field, target in used:
            if target is None or target.tenant in (None, domain.tenant):
                continue
            noun = NOUNS[target.kind][0]
            issues.append(
                SpecIssue(
                    domain.location_of("spec", field),
                    f"{_label(domain)}: {field} {quote(target.name)} belongs to tenant "
                    f"{quote(target.tenant)}, not {quote(domain.tenant)}; use a {noun} of "
                    f"tenant {quote(domain.tenant)} or a shared one (without metadata.tenant)",
                )
            )
    return issues


def check_mailboxes(specs: SpecSet) -> list[SpecIssue]:
    """Mailbox local parts are unique within a domain."""
    issues: list[SpecIssue] = []
    for domain in specs.domains.values():
        seen: dict[str, int] = {}
        for index, mailbox in enumerate(domain.spec.mailboxes):
            first = seen.setdefault(mailbox.local, index)
            if first != index:
                where = domain.location_of("spec", "mailboxes", first, "local")
                issues.append(
                    SpecIssue(
                        domain.location_of("spec", "mailboxes", index, "local"),
                        f"{_label(domain)}: mailbox {quote(mailbox.local)} is listed twice "
                        f"(first at line {where.line}); remove one",
                    )
                )
    return issues


def spf_lookups(terms: Iterable[str]) -> int:
    """How many DNS lookups these SPF terms cost (``include:x`` one, ``ip4:...`` none).

    Lookups inside included records are not counted: they are only known at query time.
    """
    count = 0
    for term in terms:
        name = re.split(r"[:/=]", term.lower().lstrip("+-~?"), maxsplit=1)[0]
        count += name in SPF_LOOKUP_TERMS
    return count


def check_spf(specs: SpecSet) -> list[SpecIssue]:
    """SPF includes are not repeated and stay within the 10-lookup limit."""
    issues: list[SpecIssue] = []
    for domain in specs.domains.values():
        includes = domain.spec.spf.include
        seen: set[str] = set()
        for index, name in enumerate(includes):
            if name in seen:
                issues.append(
                    SpecIssue(
                        domain.location_of("spec", "spf", "include", index),
                        f"{_label(domain)}: spf include {quote(name)} is listed twice; remove one",
                    )
                )
            seen.add(name)
        lookups = spf_lookups(f"include:{name}" for name in seen)
        if lookups > SPF_LOOKUP_LIMIT:
            issues.append(
                SpecIssue(
                    domain.location_of("spec", "spf", "include"),
                    f"{_label(domain)}: spf needs {lookups} DNS lookups, more than the "
                    f"{SPF_LOOKUP_LIMIT} receivers allow; remove includes (each included record's "
                    "own lookups count too)",
                )
            )
    return issues


def check_server_hostnames(specs: SpecSet) -> list[SpecIssue]:
    """Server host names (HELO = PTR = A) are unique. (Their syntax is checked by the model.)"""
    issues: list[SpecIssue] = []
    first: dict[str, Document[Any]] = {}
    for server in specs.servers.values():
        earlier = first.setdefault(server.spec.hostname, server)
        if earlier is not server:
            issues.append(
                SpecIssue(
                    server.location_of("spec", "hostname"),
                    f"{_label(server)}: hostname {quote(server.spec.hostname)} is already used by "
                    f"server {earlier.name} ({_where(earlier.location)}); each server needs its "
                    "own",
                )
            )
    return issues


def check_ssh_routes(specs: SpecSet) -> list[SpecIssue]:
    """A server's ``ssh.via`` Server exists, is not external, belongs to the server's tenant or
    is shared, and the jump hosts do not go round in a loop."""
    issues: list[SpecIssue] = []
    servers = specs.servers
    declared = specs.declared_names("Server")
    for server in servers.values():
        via = server.spec.ssh.via if server.spec.ssh is not None else None
        if via is None or via.lower().startswith("ssh://"):
            continue
        where = server.location_of("spec", "ssh", "via")
        jump = servers.get(via)
        problem = None
        if via not in declared:
            problem = f"server {quote(via)} " + _not_defined("Server", declared, via)
        elif jump is None:
            continue  # an invalid document: reported on its own
        elif jump.spec.provider == "external":
            problem = f"server {quote(via)} is external: penguinctl has no SSH access to it"
        elif jump.tenant not in (None, server.tenant):
            owner = f"tenant {quote(server.tenant)}" if server.tenant else "a shared server"
            problem = (
                f"server {quote(via)} belongs to tenant {quote(jump.tenant)}, not to "
                f"{owner}; use a jump Server of the same tenant or a shared one"
            )
        else:
            route, at = [server.name], jump
            while at is not None and at.spec.ssh is not None and at.spec.ssh.via is not None:
                route.append(at.name)
                if at.spec.ssh.via in route:
                    problem = "the jump hosts loop: " + " -> ".join([*route, at.spec.ssh.via])
                    break
                at = servers.get(at.spec.ssh.via)
        if problem:
            issues.append(SpecIssue(where, f"{_label(server)}: ssh.via {problem}"))
    return issues


def check_plan_limits(specs: SpecSet) -> list[SpecIssue]:
    """Each tenant's plan is in the catalog and its domains/mailboxes fit the plan's limits."""
    from penguinctl.billing.limits import plan_limit_issues

    return plan_limit_issues(specs)


CHECKS: tuple[Callable[[SpecSet], list[SpecIssue]], ...] = (
    check_unique_names,
    check_references,
    check_tenant_ownership,
    check_mailboxes,
    check_spf,
    check_server_hostnames,
    check_ssh_routes,
    check_plan_limits,
)


def run_checks(specs: SpecSet) -> list[SpecIssue]:
    """Run every cross-document check and return all issues found."""
    return [issue for check in CHECKS for issue in check(specs)]
