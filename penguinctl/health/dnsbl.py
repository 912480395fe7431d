"""DNS block lists: is an IP (reversed octets / nibbles) or a domain listed in a zone?

A listing is an A record under ``<reversed-ip-or-domain>.<zone>`` in 127.0.0.0/8; NXDOMAIN is
clean. Answers that are not listings are reported as ``error``, never as clean or listed:
Spamhaus' 127.255.255.x codes (query through a public or open resolver, rate limit, no DQS key),
URIBL/SURBL's 127.0.0.1 ("query refused"), and anything outside 127/8 (a resolver that rewrites
NXDOMAIN). The lists and the resolver to ask are configurable; the default lists are the shipped
``config/dnsbl.yaml`` or the operator's copy (``penguinctl.shipped``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from penguinctl.dns.query import Resolver
from penguinctl.health.results import Result

Zone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9_.-]{1,253}$")]


class BlockLists(BaseModel):
    """``config/dnsbl.yaml``: the zones asked for IP addresses and for domains."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    apiVersion: Literal["penguinctl/v1"]
    kind: Literal["BlockLists"]
    ip: tuple[Zone, ...] = Field(max_length=100)
    domain: tuple[Zone, ...] = Field(max_length=100)


def default_lists(env: Mapping[str, str] | None = None) -> BlockLists:
    """The block lists in force: the operator's ``config/dnsbl.yaml``, else the shipped one."""
    from penguinctl import shipped

    path = shipped.find("config", "dnsbl.yaml", env)
    return shipped.load_model(path, BlockLists, what="the block lists")


def ip_lists(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    return default_lists(env).ip


def domain_lists(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    return default_lists(env).domain


def query_name(value: str, zone: str) -> str:
    """``2.0.0.127.zen.spamhaus.org.`` for 127.0.0.2; nibbles for IPv6; a domain as is."""
    zone = zone.strip(".")
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return f"{value.strip('.').lower()}.{zone}."
    if ip.version == 4:
        return ".".join(reversed(str(ip).split("."))) + f".{zone}."
    return ".".join(reversed(ip.exploded.replace(":", ""))) + f".{zone}."


def _refusal(zone: str, answers: list[str]) -> str | None:
    for a in answers:
        ip = ipaddress.ip_address(a)
        if ip not in ipaddress.ip_network("127.0.0.0/8"):
            return f"answer {a} is not a list code (does the resolver rewrite NXDOMAIN?)"
        if ip in ipaddress.ip_network("127.255.255.0/24"):
            return f"the list refused the query ({a}: public/open resolver, rate limit or no key)"
        if a == "127.0.0.1" and ("uribl" in zone or "surbl" in zone):
            return f"the list refused the query ({a}: query through your own resolver)"
    return None


def check(
    resolver: Resolver, value: str, zone: str, *, target_kind: str, target: str, tenant: str
) -> Result:
    name = query_name(value, zone)
    res = Result(target_kind, target, tenant, f"dnsbl:{zone}", value, "ok")
    answer = resolver.lookup(name, "A")
    if answer.status == "NXDOMAIN" or answer.status == "NODATA":
        res.detail = "not listed"
        return res
    if answer.status == "ERROR":
        res.status, res.detail = "error", f"lookup of {name} failed: {answer.error}"
        return res
    values = list(answer.values)
    refused = _refusal(zone, values)
    if refused:
        res.status, res.detail = "error", refused
        return res
    reason = ""
    txt = resolver.lookup(name, "TXT")
    if txt.exists:
        reason = "; ".join(txt.values)[:200]
    res.status, res.critical = "fail", True
    res.detail = f"LISTED ({', '.join(values)})" + (f": {reason}" if reason else "")
    res.data = {"codes": values, "reason": reason, "query": name}
    return res
