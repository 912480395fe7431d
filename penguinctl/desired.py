"""Desired state: turn a loaded spec into resources keyed by (kind, tenant, name). Pure, no I/O.

Values that only exist after apply (a DKIM public key not generated yet) are ``COMPUTED``; the
engine rebuilds the desired state between stages, once those values are recorded.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from penguinctl.dkim import selector_for
from penguinctl.dkim_phases import ACTIVE, DKIM_OUTPUTS, REVOKED
from penguinctl.dns.records import (
    DomainDnsInput,
    build_records,
    in_zone,
    make_record,
    record_name,
    relative_to,
)
from penguinctl.errors import Location, SpecError, SpecIssue
from penguinctl.resources import COMPUTED, Resource, ResourceKey

RecordedData = Mapping[ResourceKey, dict[str, Any]]
SUPPORTED_SERVER_PROVIDERS = ("external", "static", "hostwinds")
# what the hostwinds provider fills in at apply time
HOSTWINDS_OUTPUTS = frozenset(
    {"service_id", "ips", "main_ip", "status", "rdns", "monthly_cost", "ordered_at"}
)


def srvrname(tenant: str, server: str) -> str:
    """The Hostwinds label of a server: unique per (tenant, server), how a lost order is found."""
    return f"pc-{tenant or 'shared'}-{server}"


def _server_ips(server, recorded: RecordedData | None = None) -> list[str] | None:
    """The server's IPs; None when they are only known after apply (a new Hostwinds server)."""
    spec = server.spec
    if spec.provider == "hostwinds":
        key = ResourceKey("server", server.metadata.tenant or "", server.metadata.name)
        ips = (recorded or {}).get(key, {}).get("ips")
        return list(ips) if ips else None
    if spec.provider == "external":
        return [str(ip) for ip in spec.external.ips]
    if spec.provider == "static":
        try:
            return [str(ipaddress.ip_address(spec.static.address))]
        except ValueError:
            return []
    return []


def _dump(model) -> Any:
    return model.model_dump(mode="json", exclude_none=True) if model is not None else None


def dns_directory(provider_doc, default: Path) -> str:
    directory = provider_doc.spec.directory
    if directory is None:
        return str(default)
    path = Path(directory).expanduser()
    return str(path if path.is_absolute() else (provider_doc.source_dir / path).resolve())


def dns_provider_data(doc, zones_dir: Path) -> dict[str, Any]:
    """A DnsProvider's recorded config: secret references (never values), absolute paths."""
    from penguinctl.providers.secrets.resolve import absolute_ref

    spec = doc.spec
    data = _dump(spec)
    if spec.type == "zonefile":
        data["directory"] = dns_directory(doc, zones_dir)
    elif spec.type == "rfc2136" and spec.tsig is not None:
        data["tsig"]["secret"] = absolute_ref(spec.tsig.secret, doc.source_dir)
    elif spec.type == "cloudflare":
        data["api_token"] = absolute_ref(spec.api_token, doc.source_dir)
    return data


def build_desired(
    specs, *, recorded: RecordedData, today: date, zones_dir: Path
) -> dict[ResourceKey, Resource]:
    """All resources the spec wants. ``recorded`` supplies outputs (DKIM public keys, selectors)."""
    out: dict[ResourceKey, Resource] = {}
    issues: list[SpecIssue] = []

    def add(res: Resource) -> None:
        out[res.key] = res

    for name, doc in specs.tenants.items():
        add(Resource(ResourceKey("tenant", name, name), _dump(doc.spec)))

    for name, doc in specs.servers.items():
        spec = doc.spec
        if spec.provider not in SUPPORTED_SERVER_PROVIDERS:
            issues.append(
                SpecIssue(
                    doc.location,
                    f"server {name}: provider '{spec.provider}' is not available in this version "
                    f"(available: {', '.join(SUPPORTED_SERVER_PROVIDERS)})",
                )
            )
            continue
        tenant = doc.metadata.tenant or ""
        deps = (ResourceKey("tenant", tenant, tenant),) if tenant else ()
        ips = _server_ips(doc, recorded)
        data = {
            "provider": spec.provider,
            "hostname": spec.hostname,
            "ips": COMPUTED if ips is None else ips,
            "mail": _dump(spec.mail),
        }
        block = getattr(spec, spec.provider)
        if block is not None:
            data[spec.provider] = _dump(block)
        if spec.ssh is not None and _dump(spec.ssh):
            data["ssh"] = _dump(spec.ssh)  # how penguinctl reaches it (a jump host)
        if spec.provider == "static" and spec.static.initial_key is not None:
            from penguinctl.providers.secrets.resolve import absolute_ref

            data["static"]["initial_key"] = absolute_ref(spec.static.initial_key, doc.source_dir)
        outputs: frozenset[str] = frozenset()
        if spec.provider == "hostwinds":
            data["srvrname"] = srvrname(tenant, name)
            outputs = HOSTWINDS_OUTPUTS
        key = ResourceKey("server", tenant, name)
        add(Resource(key, data, f"server:{spec.provider}", deps, outputs=outputs))

    for name, doc in specs.dns_providers.items():
        tenant = doc.metadata.tenant or ""
        add(Resource(ResourceKey("dnsprovider", tenant, name), dns_provider_data(doc, zones_dir)))

    recorded_keys: dict[str, dict[str, dict[str, Any]]] = {}
    for key, data in recorded.items():
        if key.kind == "dkim":
            recorded_keys.setdefault(data["domain"], {})[data["selector"]] = data

    planned_keys: dict[str, dict[str, dict[str, Any]]] = {}
    for name, doc in specs.domains.items():
        if issues:
            break
        spec = doc.spec
        tenant = doc.metadata.tenant
        server_doc = specs.servers[spec.server]
        server_key = ResourceKey("server", server_doc.metadata.tenant or "", spec.server)
        dns_doc = specs.dns_providers[spec.dns]
        dns_key = ResourceKey("dnsprovider", dns_doc.metadata.tenant or "", spec.dns)
        domain_key = ResourceKey("domain", tenant, name)
        add(
            Resource(
                domain_key,
                {
                    "server": spec.server,
                    "dns": spec.dns,
                    "dmarc": _dump(spec.dmarc),
                    "dkim": _dump(spec.dkim),
                    "spf": _dump(spec.spf),
                    "tracking": _dump(spec.tracking),
                },
                depends_on=(ResourceKey("tenant", tenant, tenant), server_key, dns_key),
            )
        )
        add_mail_resources(add, doc, server_doc, domain_key)

        keys = recorded_keys.get(name) or {selector_for(today): {"phase": ACTIVE}}
        planned_keys[name] = keys
        dkim_pairs = []
        for selector, rec in sorted(keys.items()):
            phase = rec.get("phase") or ACTIVE
            data = {
                "domain": name,
                "selector": selector,
                # a recorded key keeps its type; a spec change applies to the next key
                "algorithm": rec.get("algorithm", spec.dkim.algorithm),
                "bits": rec.get("bits", spec.dkim.bits),
                "phase": phase,
            }
            add(
                Resource(
                    ResourceKey("dkim", tenant, f"{name}/{selector}"),
                    data,
                    "dkim",
                    (domain_key,),
                    outputs=DKIM_OUTPUTS,
                )
            )
            # a revoked key is published with an empty p= (RFC 6376 3.6.1)
            public = "" if phase == REVOKED else rec.get("public_key") or COMPUTED
            dkim_pairs.append((selector, public))

        sending_ips = _server_ips(server_doc, recorded)
        inp = DomainDnsInput(
            domain=name,
            mail_host=server_doc.spec.hostname,
            sending_ips=sending_ips or [],
            dkim=dkim_pairs,
            dmarc_policy=spec.dmarc.policy,
            dmarc_rua=list(spec.dmarc.rua),
            dmarc_pct=spec.dmarc.pct,
            spf_include=list(spec.spf.include),
            spf_all=spec.spf.all,
            tracking=(spec.tracking.host, spec.tracking.target) if spec.tracking else None,
            mta_sts=(
                (spec.mta_sts.mode, spec.mta_sts.max_age, spec.mta_sts.host)
                if spec.mta_sts
                else None
            ),
            tls_rpt_rua=spec.tls_rpt.rua if spec.tls_rpt else None,
            ttl=dns_doc.spec.ttl,
        )
        dkim_deps = tuple(ResourceKey("dkim", tenant, f"{name}/{s}") for s, _ in dkim_pairs)
        records = build_records(inp)
        if sending_ips is None:
            records = _ips_computed(records, name, server_doc.spec.hostname)
        for rec in records:
            key = ResourceKey(
                "dnsrecord", tenant, record_name(rec["zone"], rec["name"], rec["type"])
            )
            deps = (domain_key, dns_key) + (dkim_deps if rec["name"].endswith("_domainkey") else ())
            add(Resource(key, rec, f"dns:{spec.dns}", deps))

    from penguinctl.mailu.stack import mailstack_resources

    for res in mailstack_resources(specs, out, planned_keys):
        add(res)

    if issues:
        raise SpecError(issues)
    link_mailstacks(out)
    return out


# -- MailU domains, mailboxes and aliases ------------------------------------------------------
MAILDOMAIN_DEFAULTS = {"max_users": -1, "max_aliases": -1, "max_quota_bytes": 0}


def mail_provider(server_doc) -> str:
    """Who applies a domain's mail objects: ``mail:<server>`` (MailU's API) on a server penguinctl
    runs MailU on, else ``state`` (an external server or ``mail.stack: none``: recorded only)."""
    if server_doc.spec.provider == "external" or server_doc.spec.mail.stack != "mailu":
        return "state"
    return f"mail:{server_doc.metadata.name}"


def add_mail_resources(add, doc, server_doc, domain_key: ResourceKey) -> None:
    """A domain's ``maildomain`` (on a MailU server), ``mailbox`` and ``mailalias`` resources."""
    from penguinctl.providers.secrets.resolve import absolute_ref

    name, spec, tenant = doc.metadata.name, doc.spec, doc.metadata.tenant
    provider = mail_provider(server_doc)
    deps: tuple[ResourceKey, ...] = (domain_key,)
    if provider != "state":
        maildomain = ResourceKey("maildomain", tenant, name)
        add(
            Resource(
                maildomain,
                {"server": spec.server, **MAILDOMAIN_DEFAULTS, "signup_enabled": False},
                provider,
                (domain_key,),
            )
        )
        deps = (domain_key, maildomain)
    for mb in spec.mailboxes:
        add(
            Resource(
                ResourceKey("mailbox", tenant, mb.address(name)),
                {
                    "domain": name,
                    "display_name": mb.display_name,
                    "daily_limit": mb.daily_limit,
                    "password": absolute_ref(mb.password, doc.source_dir) if mb.password else None,
                },
                provider,
                deps,
            )
        )
    for alias in spec.aliases:
        destinations = sorted({d.lower() for d in alias.destinations})
        # the destinations that are mailboxes of this domain are created first
        boxes = tuple(
            ResourceKey("mailbox", tenant, d)
            for d in destinations
            if d.rpartition("@")[2] == name and any(m.address(name) == d for m in spec.mailboxes)
        )
        add(
            Resource(
                ResourceKey("mailalias", tenant, alias.address(name)),
                {"domain": name, "destinations": destinations},
                provider,
                deps + boxes,
            )
        )


def link_mailstacks(out: dict[ResourceKey, Resource]) -> None:
    """A MailU domain waits for MailU itself: its server's ``mailstack`` resource, when the
    desired state has one."""
    stacks = {k.name: k for k in out if k.kind == "mailstack"}
    for res in out.values():
        if res.key.kind != "maildomain":
            continue
        stack = stacks.get(res.data["server"])
        if stack is not None and stack not in res.depends_on:
            res.depends_on = (*res.depends_on, stack)


def _ips_computed(records: list[dict], zone: str, mail_host: str) -> list[dict]:
    """Records of a domain whose server's IPs are not known yet: the SPF value and the mail
    host's A record are ``COMPUTED`` until the server exists (the engine rebuilds them then)."""
    out = []
    for rec in records:
        if rec["type"] == "TXT" and rec["name"] == "@":
            rec = {**rec, "values": [COMPUTED]}
        out.append(rec)
    if in_zone(mail_host, zone):
        host = relative_to(mail_host, zone)
        out.append(make_record(zone, host, "A", records[0]["ttl"], [COMPUTED]))
    return out


def spec_location(specs, kind: str, name: str) -> Location | None:
    table = {
        "tenant": specs.tenants,
        "server": specs.servers,
        "dnsprovider": specs.dns_providers,
        "domain": specs.domains,
    }.get(kind, {})
    doc = table.get(name)
    return doc.location if doc else None
