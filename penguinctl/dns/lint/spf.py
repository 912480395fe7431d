"""SPF records (RFC 7208): ``parse_spf`` and the syntax and advice checks of one record (every
term, macros, CIDR lengths, modifiers). Following ``include:``/``redirect=`` and counting DNS
lookups is ``spf_lookups.check_spf``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from penguinctl.dns.lint.base import (
    LintProblem,
    RecordSyntaxError,
    clip,
    lint_error,
    lint_warning,
)

SPF_MAX_LOOKUPS = 10  # RFC 7208 section 4.6.4
SPF_MAX_VOID = 2  # RFC 7208 section 4.6.4 ("SHOULD limit void lookups to two")
SPF_MAX_MX_HOSTS = 10  # RFC 7208 section 4.6.4: more MX hosts than this is a permerror
SPF_LONG_OCTETS = 450  # RFC 7208 section 3.4: keep the record under this (512-octet UDP answers)
SPF_MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")
SPF_LOOKUP_MECHANISMS = frozenset({"include", "a", "mx", "ptr", "exists"})


# -- SPF: the record ----------------------------------------------------------------------------
@dataclass(frozen=True)
class SpfMechanism:
    """One directive: ``qualifier`` (``+ - ~ ?``, ``+`` when not written), ``name`` lowercase,
    ``domain`` the domain-spec as written (``None``: the mechanism's default), ``network`` for
    ``ip4``/``ip6``, ``cidr4``/``cidr6`` the prefix lengths written (``None``: not given)."""

    qualifier: str
    name: str
    domain: str | None = None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    cidr4: int | None = None
    cidr6: int | None = None
    text: str = ""

    @property
    def costs_lookup(self) -> bool:
        """Whether evaluating it is one of the 10 DNS lookups (RFC 7208 section 4.6.4)."""
        return self.name in SPF_LOOKUP_MECHANISMS


@dataclass(frozen=True)
class SpfRecord:
    """A parsed ``v=spf1`` record. ``modifiers`` are the unknown ones, ``(name, value)``."""

    text: str
    mechanisms: tuple[SpfMechanism, ...] = ()
    redirect: str | None = None
    exp: str | None = None
    modifiers: tuple[tuple[str, str], ...] = ()

    @property
    def all(self) -> SpfMechanism | None:
        """The first ``all`` mechanism, if any."""
        return next((m for m in self.mechanisms if m.name == "all"), None)

    @property
    def evaluated(self) -> tuple[SpfMechanism, ...]:
        """The mechanisms a receiver can reach: everything up to and including the first ``all``
        (RFC 7208 section 5.1: later ones MUST be ignored)."""
        for i, mech in enumerate(self.mechanisms):
            if mech.name == "all":
                return self.mechanisms[: i + 1]
        return self.mechanisms

    @property
    def effective_redirect(self) -> str | None:
        """``redirect=``, unless an ``all`` mechanism makes receivers ignore it (section 6.1)."""
        return None if self.all is not None else self.redirect

    @property
    def own_lookups(self) -> int:
        """DNS lookups this record costs at its own level (included records not counted)."""
        count = sum(1 for m in self.evaluated if m.costs_lookup)
        return count + (1 if self.effective_redirect is not None else 0)


# Problem codes that mean "not valid SPF syntax" (parse_spf raises on these).
SPF_SYNTAX_CODES = frozenset(
    {
        "spf-not-spf",
        "spf-bad-term",
        "spf-bad-argument",
        "spf-missing-domain",
        "spf-bad-domain",
        "spf-bad-macro",
        "spf-bad-ip",
        "spf-bad-cidr",
        "spf-duplicate-modifier",
    }
)

_SPF_MODIFIER = re.compile(r"([A-Za-z][A-Za-z0-9_.\-]*)=(.*)", re.DOTALL)
_SPF_DIRECTIVE = re.compile(r"([+\-~?]?)([A-Za-z][A-Za-z0-9]*)(.*)", re.DOTALL)
_MACRO_EXPAND = re.compile(r"%\{([A-Za-z])([0-9]*)([rR]?)([.\-+,/_=]*)\}")
_MACRO_LETTERS = "slodiphcrtv"
_EXP_ONLY_LETTERS = "crt"
_TOPLABEL = re.compile(r"[A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*|[A-Za-z0-9][A-Za-z0-9\-]*[A-Za-z0-9]")
_DUAL_CIDR = re.compile(r"(?:/([0-9]+))?(?://([0-9]+))?")
_DIGITS = re.compile(r"[0-9]+")
_QUALIFIER_WORDS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}


def is_spf(text: str) -> bool:
    """Whether a TXT string is an SPF record: it begins with ``v=spf1`` then a space or its end
    (RFC 7208 section 4.5; case-insensitive like all ABNF literals)."""
    return text[:6].lower() == "v=spf1" and (len(text) == 6 or text[6] == " ")


def _scan_macros(text: str, where: str, *, exp: bool = False) -> tuple[list[LintProblem], bool]:
    """Problems with the macros of a macro-string (RFC 7208 section 7.1), and whether the text
    ends with a macro-expand."""
    problems: list[LintProblem] = []
    i, ends_with_macro = 0, False
    while i < len(text):
        if text[i] != "%":
            i += 1
            ends_with_macro = False
            continue
        nxt = text[i + 1 : i + 2]
        if nxt in ("%", "_", "-"):
            i += 2
            ends_with_macro = True
            continue
        m = _MACRO_EXPAND.match(text, i) if nxt == "{" else None
        if m is None:
            problems.append(
                lint_error(
                    "spf-bad-macro",
                    f"{where}: '%' must start a macro (%{{x}}, %%, %_ or %-) in {clip(text)}",
                )
            )
            return problems, False
        letter = m[1].lower()
        if letter not in _MACRO_LETTERS:
            problems.append(
                lint_error("spf-bad-macro", f"{where}: unknown macro letter in {clip(m[0])}")
            )
        elif letter in _EXP_ONLY_LETTERS and not exp:
            problems.append(
                lint_error(
                    "spf-bad-macro",
                    f"{where}: macro {clip(m[0])} is allowed only in explanation text",
                )
            )
        elif letter == "p":
            problems.append(
                lint_warning(
                    "spf-ptr",
                    f"{where}: the %{{p}} macro does slow PTR lookups; RFC 7208 says not to use it",
                )
            )
        if m[2] and int(m[2]) == 0:
            problems.append(
                lint_error(
                    "spf-bad-macro", f"{where}: a macro's digit transformer must be non-zero"
                )
            )
        i = m.end()
        ends_with_macro = True
    return problems, ends_with_macro


def _check_domain_spec(spec: str, where: str) -> list[LintProblem]:
    """A domain-spec (RFC 7208 section 7.1): macros valid, ending in a macro or a top label."""
    if not spec:
        return [lint_error("spf-bad-domain", f"{where}: empty domain")]
    problems, _ = _scan_macros(spec, where)
    if any(p.level == "error" for p in problems):
        return problems
    body = spec[:-1] if spec.endswith(".") else spec
    _, ends_with_macro = _scan_macros(body, where)
    if not ends_with_macro:
        head, dot, top = body.rpartition(".")
        if not dot or not head:
            problems.append(
                lint_error(
                    "spf-bad-domain",
                    f"{where}: {clip(spec)} is not a domain name (it needs a dot and a top label)",
                )
            )
            return problems
        if not _TOPLABEL.fullmatch(top):
            hint = " (write ip4:/ip6: for addresses)" if top.isdigit() else ""
            problems.append(
                lint_error(
                    "spf-bad-domain",
                    f"{where}: {clip(spec)} does not end in a valid top-level label{hint}",
                )
            )
            return problems
    if "%" not in spec:
        labels = body.split(".")
        if any(not label for label in labels):
            problems.append(
                lint_error("spf-bad-domain", f"{where}: {clip(spec)} has an empty label")
            )
        elif any(len(label.encode()) > 63 for label in labels):
            problems.append(
                lint_error("spf-bad-domain", f"{where}: {clip(spec)} has a label over 63 octets")
            )
        elif len(body.encode()) > 253:
            problems.append(
                lint_error("spf-bad-domain", f"{where}: {clip(spec)} is longer than 253 octets")
            )
    return problems


def _cidr(digits: str, limit: int, where: str) -> tuple[int | None, list[LintProblem]]:
    if len(digits) > 1 and digits.startswith("0"):
        return None, [
            lint_error("spf-bad-cidr", f"{where}: prefix length /{digits} has a leading 0")
        ]
    value = int(digits)
    if value > limit:
        return None, [
            lint_error("spf-bad-cidr", f"{where}: prefix length /{digits} is over {limit}")
        ]
    return value, []


def _split_cidr(arg: str) -> tuple[str, str]:
    """``domain-spec`` and ``dual-cidr-length`` of an ``a``/``mx`` argument: the CIDR part starts
    at the first ``/`` outside a macro."""
    i = 0
    while i < len(arg):
        if arg[i] == "%":
            if arg[i + 1 : i + 2] == "{":
                close = arg.find("}", i)
                if close < 0:
                    return arg, ""
                i = close + 1
            else:
                i += 2
            continue
        if arg[i] == "/":
            return arg[:i], arg[i:]
        i += 1
    return arg, ""


def _parse_ip(
    name: str, arg: str, where: str
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network | None, int | None, list[LintProblem]]:
    version, limit = (4, 32) if name == "ip4" else (6, 128)
    addr_text, slash, prefix_text = arg.partition("/")
    try:
        if "%" in addr_text:  # an IPv6 scope id; Python accepts it, SPF does not
            raise ValueError(addr_text)
        addr = (
            ipaddress.IPv4Address(addr_text) if version == 4 else ipaddress.IPv6Address(addr_text)
        )
    except ValueError:
        other = "ip6" if version == 4 else "ip4"
        hint = ""
        try:
            if "%" not in addr_text and ipaddress.ip_address(addr_text).version != version:
                hint = f" (use {other}:)"
        except ValueError:
            pass
        msg = f"{where}: {clip(addr_text)} is not an IPv{version} address{hint}"
        return None, None, [lint_error("spf-bad-ip", msg)]
    prefix = limit
    if slash:
        if not _DIGITS.fullmatch(prefix_text):
            msg = f"{where}: bad prefix length {clip('/' + prefix_text)}"
            return None, None, [lint_error("spf-bad-cidr", msg)]
        value, problems = _cidr(prefix_text, limit, where)
        if value is None:
            return None, None, problems
        prefix = value
    network = ipaddress.ip_network(f"{addr}/{prefix}", strict=False)
    return network, (prefix if slash else None), []


def _parse_directive(
    qualifier: str, name: str, rest: str, raw: str
) -> tuple[SpfMechanism | None, list[LintProblem]]:
    where = clip(raw)
    q = qualifier or "+"
    if name == "all":
        if rest:
            return None, [lint_error("spf-bad-argument", f"{where}: 'all' takes no argument")]
        return SpfMechanism(q, name, text=raw), []
    if name in ("ip4", "ip6"):
        if not rest.startswith(":") or len(rest) == 1:
            return None, [
                lint_error("spf-bad-ip", f"{where}: {name} needs an address ({name}:ADDR)")
            ]
        network, prefix, problems = _parse_ip(name, rest[1:], where)
        if network is None:
            return None, problems
        mech = SpfMechanism(
            q,
            name,
            network=network,
            cidr4=prefix if name == "ip4" else None,
            cidr6=prefix if name == "ip6" else None,
            text=raw,
        )
        return mech, problems
    if name in ("include", "exists"):
        if not rest:
            return None, [
                lint_error("spf-missing-domain", f"{where}: {name} needs a domain ({name}:DOMAIN)")
            ]
        if not rest.startswith(":"):
            return None, [lint_error("spf-bad-argument", f"{where}: write {name}:DOMAIN")]
        problems = _check_domain_spec(rest[1:], where)
        if any(p.level == "error" for p in problems):
            return None, problems
        return SpfMechanism(q, name, domain=rest[1:], text=raw), problems
    if name == "ptr":
        if rest and not rest.startswith(":"):
            return None, [lint_error("spf-bad-argument", f"{where}: write ptr or ptr:DOMAIN")]
        domain = rest[1:] if rest else None
        problems = _check_domain_spec(domain, where) if domain is not None else []
        if any(p.level == "error" for p in problems):
            return None, problems
        return SpfMechanism(q, name, domain=domain, text=raw), problems
    # a / mx: [":" domain-spec] [dual-cidr-length]
    if rest and rest[0] not in ":/":
        return None, [lint_error("spf-bad-argument", f"{where}: write {name}[:DOMAIN][/N][//N]")]
    domain: str | None = None
    cidr_text = rest
    problems: list[LintProblem] = []
    if rest.startswith(":"):
        domain, cidr_text = _split_cidr(rest[1:])
        problems = _check_domain_spec(domain, where)
    cidr4 = cidr6 = None
    if cidr_text:
        m = _DUAL_CIDR.fullmatch(cidr_text)
        if m is None:
            problems.append(
                lint_error("spf-bad-cidr", f"{where}: bad prefix length {clip(cidr_text)}")
            )
        else:
            if m[1] is not None:
                cidr4, more = _cidr(m[1], 32, where)
                problems += more
            if m[2] is not None:
                cidr6, more = _cidr(m[2], 128, where)
                problems += more
    if any(p.level == "error" for p in problems):
        return None, problems
    return SpfMechanism(q, name, domain=domain, cidr4=cidr4, cidr6=cidr6, text=raw), problems


def _advice(record: SpfRecord) -> list[LintProblem]:
    """Valid but unwise: ``+all``, ``ptr``, very broad networks, unreachable terms."""
    problems: list[LintProblem] = []
    for mech in record.evaluated:
        if mech.name == "all" and mech.qualifier == "+":
            problems.append(
                lint_error(
                    "spf-pass-all",
                    f"{clip(mech.text)} lets every host on the Internet send as this domain",
                )
            )
        elif mech.name == "ptr":
            problems.append(
                lint_warning(
                    "spf-ptr",
                    f"{clip(mech.text)}: the ptr mechanism is slow and unreliable; "
                    "RFC 7208 says not to use it",
                )
            )
        if mech.qualifier != "+":
            continue
        broad4 = mech.cidr4 is not None and mech.cidr4 < 8
        broad6 = mech.cidr6 is not None and mech.cidr6 < 16
        if (
            mech.network is not None
            and mech.network.prefixlen < (8 if mech.network.version == 4 else 16)
        ) or (mech.name in ("a", "mx") and (broad4 or broad6)):
            problems.append(
                lint_warning(
                    "spf-broad-network",
                    f"{clip(mech.text)} authorises a very large address range",
                )
            )
    after = len(record.mechanisms) - len(record.evaluated)
    if after:
        problems.append(
            lint_warning(
                "spf-terms-after-all",
                f"{after} mechanism(s) after {clip(record.evaluated[-1].text)} are never evaluated",
            )
        )
    if record.redirect is not None and record.all is not None:
        problems.append(
            lint_warning(
                "spf-redirect-ignored",
                f"redirect={record.redirect} is ignored because the record has an 'all' mechanism",
            )
        )
    return problems


def read_spf(text: str) -> tuple[SpfRecord | None, list[LintProblem]]:
    """The record (``None`` when ``text`` is not SPF at all) and every problem found; terms with
    errors are left out of the record."""
    if not is_spf(text):
        if text[:6].lower() == "v=spf1":
            msg = f"{clip(text[:12])}: 'v=spf1' must be followed by a space"
        else:
            msg = f"{clip(text, 24)} is not an SPF record (it must begin with 'v=spf1')"
        return None, [lint_error("spf-not-spf", msg)]
    problems: list[LintProblem] = []
    mechanisms: list[SpfMechanism] = []
    unknown: list[tuple[str, str]] = []
    special: dict[str, str] = {}
    for raw in text[6:].split(" "):
        if not raw:
            continue
        where = clip(raw)
        bad = next((c for c in raw if not 0x21 <= ord(c) <= 0x7E), None)
        if bad is not None:
            msg = f"term {where} has a character SPF does not allow ({bad!r})"
            problems.append(lint_error("spf-bad-term", msg))
            continue
        mod = _SPF_MODIFIER.fullmatch(raw)
        if mod is not None:
            name, value = mod[1].lower(), mod[2]
            if name in ("redirect", "exp"):
                if name in special:
                    problems.append(
                        lint_error("spf-duplicate-modifier", f"{name}= appears more than once")
                    )
                    continue
                found = _check_domain_spec(value, where)
                problems += found
                if not any(p.level == "error" for p in found):
                    special[name] = value
            elif name == "v":
                problems.append(
                    lint_error(
                        "spf-merged-records",
                        f"a second version term {where} inside the record (two records merged?)",
                    )
                )
            elif name in SPF_MECHANISMS:
                problems.append(
                    lint_error(
                        "spf-mechanism-as-modifier",
                        f"{where} is an unknown modifier that receivers ignore; "
                        f"did you mean {name}:{value}?",
                    )
                )
            else:
                problems.append(
                    lint_warning("spf-unknown-modifier", f"unknown modifier {where} (ignored)")
                )
                problems += _scan_macros(value, where)[0]
                unknown.append((mod[1], value))
            continue
        m = _SPF_DIRECTIVE.fullmatch(raw)
        if m is None or m[2].lower() not in SPF_MECHANISMS:
            problems.append(lint_error("spf-bad-term", f"unknown mechanism {where}"))
            continue
        mech, found = _parse_directive(m[1], m[2].lower(), m[3], raw)
        problems += found
        if mech is not None:
            mechanisms.append(mech)
    record = SpfRecord(
        text=text,
        mechanisms=tuple(mechanisms),
        redirect=special.get("redirect"),
        exp=special.get("exp"),
        modifiers=tuple(unknown),
    )
    return record, problems + _advice(record)


def parse_spf(text: str) -> SpfRecord:
    """Parse an SPF record. Raises ``RecordSyntaxError`` when it is not valid RFC 7208 syntax
    (the codes in ``SPF_SYNTAX_CODES``); advice such as ``+all`` does not raise."""
    record, problems = read_spf(text)
    errors = [p for p in problems if p.code in SPF_SYNTAX_CODES]
    if record is None or errors:
        raise RecordSyntaxError(errors or problems)
    return record
