"""The DNS records penguinctl publishes for a sending domain. Pure functions, no I/O.

A record (an RRset) is plain data::

    {"zone": "acme.example", "name": "@", "type": "TXT", "ttl": 3600, "values": ["v=spf1 ..."]}

- ``name`` is relative to the zone (``@`` for the apex), lowercase.
- ``values`` are in presentation form and sorted: MX ``"10 mail.acme.example."``, CNAME targets
  absolute with the trailing dot, A/AAAA in ``ipaddress`` canonical form, TXT as the FULL string,
  unquoted and unchunked (splitting into 255-octet character-strings happens only when a zone is
  rendered: one RR holding several strings, never several RRs).
- The resource name of a record is ``record_name(zone, name, type)`` = ``zone/name/type``.

Record set per sending domain (product contract, section 4): MX ``@`` -> the mail server (priority
10); A/AAAA for the mail server when it lives in this zone; SPF ``v=spf1 ip4:.. ip6:..
include:.. ~all`` (at most 10 DNS lookups); DKIM TXT ``<selector>._domainkey`` per selector;
DMARC ``_dmarc``; optional tracking CNAME; optional MTA-STS (``_mta-sts`` TXT, ``mta-sts``
CNAME to the policy host) and TLS-RPT (``_smtp._tls``).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from penguinctl.dkim import dkim_txt_value
from penguinctl.resources import COMPUTED

RECORD_TYPES = ("MX", "A", "AAAA", "TXT", "CNAME")
TXT_CHUNK = 255  # octets per character-string (RFC 1035 section 3.3)
SPF_MAX_LOOKUPS = 10  # RFC 7208 section 4.6.4
SPF_ALL = ("~all", "-all", "?all")
DMARC_POLICIES = ("none", "quarantine", "reject")
MTA_STS_MODES = ("testing", "enforce", "none")
MX_PRIORITY = 10
_SPF_LOOKUP_TERMS = frozenset({"include", "a", "mx", "ptr", "exists"})

Record = dict[str, Any]


def record_name(zone: str, name: str, rtype: str) -> str:
    """The resource name of a record: ``zone/name/type``."""
    return f"{zone}/{name}/{rtype}"


def split_record_name(resource_name: str) -> tuple[str, str, str]:
    """The inverse of ``record_name``: ``(zone, name, type)``."""
    zone, name, rtype = resource_name.split("/")
    return zone, name, rtype


def make_record(zone: str, name: str, rtype: str, ttl: int, values: Sequence[str]) -> Record:
    """A record data dict with its values sorted."""
    return {"zone": zone, "name": name, "type": rtype, "ttl": ttl, "values": sorted(values)}


@dataclass
class DomainDnsInput:
    """Everything ``build_records`` needs about one sending domain."""

    domain: str
    mail_host: str
    sending_ips: list[str]
    # (selector, base64 public key); the key is ``resources.COMPUTED`` until it is generated.
    dkim: list[tuple[str, str]] = field(default_factory=list)
    dmarc_policy: str = "none"
    dmarc_rua: list[str] = field(default_factory=list)  # addresses or mailto: URIs
    dmarc_pct: int = 100
    spf_include: list[str] = field(default_factory=list)
    spf_all: str = "~all"
    tracking: tuple[str, str] | None = None  # (host relative to the zone, target)
    mta_sts: tuple[str, int, str | None] | None = None  # (mode, max_age, policy host)
    tls_rpt_rua: str | None = None
    ttl: int = 3600


# -- helpers ---------------------------------------------------------------------------------
def _bare(name: str) -> str:
    return name.strip().rstrip(".").lower()


def absolute(name: str) -> str:
    """``name`` as an absolute DNS name with the trailing dot."""
    return _bare(name) + "."


def in_zone(host: str, zone: str) -> bool:
    """Whether ``host`` is the zone apex or a name below it."""
    host, zone = _bare(host), _bare(zone)
    return host == zone or host.endswith("." + zone)


def relative_to(host: str, zone: str) -> str:
    """``host`` relative to ``zone`` (``@`` for the apex); ``host`` must be inside the zone."""
    host, zone = _bare(host), _bare(zone)
    if host == zone:
        return "@"
    if not host.endswith("." + zone):
        raise ValueError(f"{host} is not inside the zone {zone}")
    return host[: -len(zone) - 1]


def _owner(name: str, zone: str) -> str:
    """A name given relative to the zone, or absolute inside it, as a relative name."""
    bare = _bare(name)
    if bare in ("", "@"):
        return "@"
    return relative_to(bare, zone) if in_zone(bare, zone) else bare


def report_uri(value: str) -> str:
    """A report address as a URI: ``mailto:`` is added to a bare e-mail address."""
    value = value.strip()
    if value.startswith(("mailto:", "https://")):
        return value
    return f"mailto:{value}"


def txt_chunks(value: str) -> list[str]:
    """``value`` split into character-strings of at most 255 UTF-8 octets, never inside a
    character. All of them go into ONE TXT RR; verifiers concatenate them with no separator."""
    data = value.encode("utf-8")
    if len(data) <= TXT_CHUNK:
        return [value]
    chunks: list[str] = []
    start = 0
    while start < len(data):
        end = min(start + TXT_CHUNK, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:  # continuation byte: step back
            end -= 1
        chunks.append(data[start:end].decode("utf-8"))
        start = end
    return chunks


def spf_lookup_count(spf: str) -> int:
    """How many DNS lookups evaluating this SPF record costs at its own level (RFC 7208 4.6.4):
    ``include``, ``a``, ``mx``, ``ptr``, ``exists`` and ``redirect=``; ``ip4``/``ip6``/``all``
    are free. Lookups made by included records are not counted (they need DNS)."""
    count = 0
    for term in spf.split()[1:] if spf.lower().startswith("v=spf1") else spf.split():
        term = term.lower()
        if term.startswith("redirect="):
            count += 1
            continue
        mech = term.lstrip("+-~?")
        for sep in (":", "/", "="):
            mech = mech.split(sep, 1)[0]
        if mech in _SPF_LOOKUP_TERMS:
            count += 1
    return count


def spf_value(ips: Sequence[str], includes: Sequence[str], all_term: str = "~all") -> str:
    """``v=spf1 ip4:.. ip6:.. include:.. ~all`` (addresses sorted, duplicates dropped)."""
    if all_term not in SPF_ALL:
        raise ValueError(f"SPF must end in one of {', '.join(SPF_ALL)}, not {all_term!r}")
    addrs = sorted({ipaddress.ip_address(ip.strip()) for ip in ips}, key=lambda a: (a.version, a))
    terms = ["v=spf1"]
    terms += [f"ip{a.version}:{a}" for a in addrs]
    seen: set[str] = set()
    for inc in includes:
        inc = _bare(inc)
        if inc not in seen:
            seen.add(inc)
            terms.append(f"include:{inc}")
    terms.append(all_term)
    value = " ".join(terms)
    lookups = spf_lookup_count(value)
    if lookups > SPF_MAX_LOOKUPS:
        raise ValueError(
            f"the SPF record needs {lookups} DNS lookups, more than the {SPF_MAX_LOOKUPS} "
            "RFC 7208 allows: use fewer includes"
        )
    return value


def dmarc_value(policy: str, rua: Sequence[str], pct: int = 100) -> str:
    """``v=DMARC1; p=<policy>; rua=mailto:..,mailto:..`` (``; pct=N`` only when N != 100)."""
    if policy not in DMARC_POLICIES:
        raise ValueError(f"DMARC policy must be one of {', '.join(DMARC_POLICIES)}, not {policy!r}")
    if not 0 <= pct <= 100:
        raise ValueError(f"DMARC pct must be 0-100, not {pct}")
    value = f"v=DMARC1; p={policy}"
    uris = list(dict.fromkeys(report_uri(u) for u in rua))
    if uris:
        value += "; rua=" + ",".join(uris)
    if pct != 100:
        value += f"; pct={pct}"
    return value


def mta_sts_policy(mode: str, max_age: int, mail_host: str) -> str:
    """The RFC 8461 policy text served at ``https://mta-sts.<domain>/.well-known/mta-sts.txt``."""
    if mode not in MTA_STS_MODES:
        raise ValueError(f"MTA-STS mode must be one of {', '.join(MTA_STS_MODES)}, not {mode!r}")
    if not 0 <= max_age <= 31_557_600:
        raise ValueError(f"MTA-STS max_age must be 0-31557600 seconds, not {max_age}")
    return f"version: STSv1\nmode: {mode}\nmx: {_bare(mail_host)}\nmax_age: {max_age}\n"


def mta_sts_id(policy: str) -> str:
    """The ``id=`` of the ``_mta-sts`` record: 12 hex characters of the policy's SHA-256, so it
    changes exactly when the policy text changes."""
    return hashlib.sha256(policy.encode("utf-8")).hexdigest()[:12]


# -- the record set ----------------------------------------------------------------------------
def build_records(inp: DomainDnsInput) -> list[Record]:
    """The records of one sending domain, in a stable order (see the module docstring)."""
    zone = _bare(inp.domain)
    ttl = inp.ttl
    mail_host = _bare(inp.mail_host)
    out: list[Record] = []

    def add(name: str, rtype: str, values: Sequence[str]) -> None:
        out.append(make_record(zone, name, rtype, ttl, values))

    add("@", "MX", [f"{MX_PRIORITY} {absolute(mail_host)}"])

    ips = [ipaddress.ip_address(ip.strip()) for ip in inp.sending_ips]
    if in_zone(mail_host, zone):
        host = relative_to(mail_host, zone)
        for version, rtype in ((4, "A"), (6, "AAAA")):
            family = sorted({str(ip) for ip in ips if ip.version == version})
            if family:
                add(host, rtype, family)

    add("@", "TXT", [spf_value([str(ip) for ip in ips], inp.spf_include, inp.spf_all)])

    for selector, public_key in inp.dkim:
        value = COMPUTED if public_key == COMPUTED else dkim_txt_value(public_key)
        add(f"{_bare(selector)}._domainkey", "TXT", [value])

    add("_dmarc", "TXT", [dmarc_value(inp.dmarc_policy, inp.dmarc_rua, inp.dmarc_pct)])

    if inp.tracking is not None:
        host, target = inp.tracking
        name = _owner(host, zone)
        if name == "@":
            raise ValueError("the tracking host cannot be the zone apex (a CNAME there is invalid)")
        add(name, "CNAME", [absolute(target)])

    if inp.mta_sts is not None:
        mode, max_age, policy_host = inp.mta_sts
        policy = mta_sts_policy(mode, max_age, mail_host)
        add("_mta-sts", "TXT", [f"v=STSv1; id={mta_sts_id(policy)}"])
        if policy_host:
            add("mta-sts", "CNAME", [absolute(policy_host)])

    if inp.tls_rpt_rua:
        add("_smtp._tls", "TXT", [f"v=TLSRPTv1; rua={report_uri(inp.tls_rpt_rua)}"])

    return out
