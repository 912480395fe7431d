"""What ``dns verify`` expects of each domain, gathered from the state store and secrets backend.

The expected records are those the last apply recorded; the mail host and sending IPs come from
the domain's recorded server; the DKIM public keys from the secrets backend (never from state, so
a key swapped behind penguinctl's back shows up). Authoritative servers are, in order: the ones
given on the command line; the ``rfc2136`` provider's server; the zone's NS hosts found through
the recursive resolver.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from penguinctl.dns.query import Nameserver, Resolver
from penguinctl.dns.verify import Expectation
from penguinctl.errors import UsageError
from penguinctl.providers.dkim import secret_path
from penguinctl.providers.secrets.base import SecretsBackend


def _servers_of(
    zone: str,
    provider: dict[str, Any] | None,
    resolver: Resolver,
    override: Sequence[Nameserver],
) -> tuple[list[Nameserver], str]:
    if override:
        return list(override), ""
    if provider and provider.get("type") == "rfc2136":
        text = f"{provider['server']}:{provider.get('port', 53)}"
        try:
            return [Nameserver.parse(text)], ""
        except UsageError as exc:
            return [], exc.message
    if provider and provider.get("type") == "zonefile":
        # the zone's servers are whatever serves these files: the provider's `nameservers`
        names = [n for n in provider.get("nameservers") or [] if not n.endswith(".invalid")]
        if not names:
            return [], (
                f"the zonefile provider of {zone} names no real name servers "
                "(pass --nameserver HOST[:PORT], or set `nameservers` in the DnsProvider)"
            )
        found = []
        for name in names:
            addrs, _ = resolver.addresses(name)
            found.extend(Nameserver(a, 53, name.rstrip(".")) for a in addrs)
        if found:
            return sorted(set(found)), ""
        return [], f"none of {', '.join(names)} resolves through {resolver.described}"
    found = resolver.nameservers(zone)
    if found:
        return found, ""
    return [], (
        f"cannot find the authoritative servers of {zone} through {resolver.described} "
        "(pass --nameserver HOST[:PORT])"
    )


def build_expectations(
    rows: Sequence[Any],
    domains: Sequence[str] | None,
    *,
    secrets: SecretsBackend,
    resolver: Resolver,
    override: Sequence[Nameserver] = (),
) -> list[Expectation]:
    """Expectations for ``domains`` (all recorded domains when None), from resource rows."""
    by_kind: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_kind[row.kind].append(row)
    domain_rows = {r.name: r for r in by_kind["domain"]}
    wanted = sorted(domain_rows) if domains is None else list(dict.fromkeys(domains))
    unknown = [d for d in wanted if d not in domain_rows]
    if unknown:
        raise UsageError(
            f"not a recorded domain: {', '.join(unknown[:5])}"
            + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""),
            hint="apply a spec containing it first (`penguinctl get domains` lists them)",
        )
    records: dict[str, list[dict]] = defaultdict(list)
    for row in by_kind["dnsrecord"]:
        records[row.data["zone"]].append(row.data)
    servers = {(r.tenant, r.name): r.data for r in by_kind["server"]}
    providers = {(r.tenant, r.name): r.data for r in by_kind["dnsprovider"]}
    selectors: dict[str, list[str]] = defaultdict(list)
    for row in by_kind["dkim"]:
        selectors[row.data["domain"]].append(row.data["selector"])

    def provider_of(row) -> dict[str, Any] | None:
        dns = row.data["dns"]
        return providers.get((row.tenant, dns)) or providers.get(("", dns))

    # finding the servers may take resolver round trips: all domains at once
    with ThreadPoolExecutor(max_workers=max(1, min(32, len(wanted)))) as pool:
        found = list(
            pool.map(
                lambda n: _servers_of(n, provider_of(domain_rows[n]), resolver, override), wanted
            )
        )
    out: list[Expectation] = []
    for name, (ns, problem) in zip(wanted, found, strict=True):
        row = domain_rows[name]
        data = row.data
        server = servers.get((row.tenant, data["server"])) or servers.get(("", data["server"]))
        keys: dict[str, str | None] = {}
        for selector in selectors.get(name, []):
            fields = secrets.get(secret_path(row.tenant, name, selector))
            public = fields.get("public_key") if fields else None
            keys[selector] = public.reveal() if public is not None else None
        out.append(
            Expectation(
                domain=name,
                records=records.get(name, []),
                servers=ns,
                mail_host=(server or {}).get("hostname"),
                sending_ips=list((server or {}).get("ips") or []),
                dkim_keys=keys,
                problem=problem,
            )
        )
    return out


def seen_check(
    *,
    resolver: Resolver,
    providers,
    override: Sequence[Nameserver] = (),
    timeout: float = 2.0,
):
    """A ``rotation.DnsCheck``: is this record answered by the zone's authoritative servers?

    Servers as for ``dns verify``; a ``zonefile`` zone (whose name servers penguinctl does not
    know) is checked in the zone file itself unless ``override`` names servers to ask, and so is
    a zone whose servers cannot be found.
    """
    from penguinctl.dns.query import ask
    from penguinctl.dns.verify import compare

    def check(dk, record, rkey) -> tuple[bool, str]:
        cfg = dk.dns or {}
        servers: list[Nameserver] = []
        if override or cfg.get("type") != "zonefile":
            servers, _problem = _servers_of(dk.domain, cfg, resolver, override)
        fqdn = f"{record['name']}.{dk.domain}."
        if servers:
            bad = []
            for ns in servers:
                result = compare("DKIM", record["values"], ask(ns, fqdn, "TXT", timeout=timeout))
                if not result.ok:
                    bad.append(
                        f"{ns}: {result.status}" + (f" ({result.detail})" if result.detail else "")
                    )
            if bad:
                return False, "not answered yet by " + "; ".join(bad)
            return True, "answered by " + ", ".join(str(s) for s in servers)
        live = providers.get(f"dns:{dk.data['dns']}").read([rkey])
        if live is None:
            return (
                False,
                "no name server to ask and the provider cannot be read (pass --nameserver)",
            )
        if (live.get(rkey) or {}).get("values") == record["values"]:
            return True, f"present in the zone as served by provider {dk.data['dns']}"
        return False, f"not present in the zone of provider {dk.data['dns']} yet"

    return check
