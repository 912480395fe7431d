"""Standards checks ("lint") of the mail-authentication TXT records: SPF, DMARC and DKIM keys.

Pure functions: nothing here touches the network. ``check_spf`` follows ``include:`` and
``redirect=`` through a ``lookup_txt(domain) -> list[str]`` callable the caller passes in (``dns
verify`` passes its resolver, so the question goes to the server the operator chose, on any port);
without one it counts the lookups of the record itself and says the count is a lower bound.

- SPF (RFC 7208): ``parse_spf`` / ``check_spf``. Syntax of every term (qualifiers, ``ip4``/``ip6``
  networks and prefix lengths, ``a``/``mx`` dual CIDR, domain-specs and macros per section 7,
  ``redirect=``/``exp=`` at most once, unknown modifiers allowed), the DNS lookup limit (10) and
  the void lookup limit (2) of section 4.6.4 counted through the whole include tree, loops,
  targets with no or two SPF records, and advice (``ptr``, ``+all``, terms after ``all``,
  ``redirect=`` ignored next to ``all``, records over 450 octets).
- DMARC (RFC 7489 section 6.3): ``parse_dmarc`` / ``check_dmarc``.
- DKIM key records (RFC 6376 section 3.6.1, RFC 8301, RFC 8463): ``parse_dkim_key`` /
  ``check_dkim_key`` / ``dkim_public_key``. An empty ``p=`` is the *revoked* state (problem code
  ``dkim-revoked``, a warning), not a syntax error.

Every check returns a list of ``LintProblem(level, code, message)``: ``level`` is ``error`` (the
record is broken, or receivers will treat it as an error such as SPF ``permerror``) or
``warning`` (valid but unwise); ``code`` is a stable slug; ``message`` is one line and never
carries secret material (public keys are shown truncated). ``check_spf`` returns an
``SpfResult``: that list, plus ``lookups``, ``void_lookups`` and ``exact`` (``False`` when the
count is a lower bound), so callers can show "7/10 DNS lookups". The ``parse_*`` functions raise
``RecordSyntaxError`` (a ``ValueError``) and nothing else on bad input; the ``check_*`` functions
never raise on any text.

Why not a library (checked before writing this):

- ``checkdmarc`` does its own DNS lookups through ``dns.resolver`` with a list of nameserver
  addresses (no port, no injectable lookup function), mixes the lookups with the parsing, and
  pulls in requests, pyleri, publicsuffix, expiringdict, timeout-decorator and more; ``dns
  verify`` must ask a specific authoritative server (or the operator's resolver) on any port.
- ``pyspf`` is an SPF *evaluator*: it answers "does this (ip, sender, helo) pass", resolving
  through its own DNS layer, and reports the first permerror rather than every problem and the
  lookup totals as data.
- ``dkimpy`` signs and verifies messages; its key-record parsing is internal and does not grade
  keys (size, PKCS#1 versus SubjectPublicKeyInfo, testing flag, revocation).

So this is the standard library plus ``cryptography`` (already a dependency, used to load keys).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

Level = Literal["error", "warning"]
LookupFn = Callable[[str], Sequence[str]]

SPF_MAX_LOOKUPS = 10  # RFC 7208 section 4.6.4
SPF_MAX_VOID = 2  # RFC 7208 section 4.6.4 ("SHOULD limit void lookups to two")
SPF_MAX_MX_HOSTS = 10  # RFC 7208 section 4.6.4: more MX hosts than this is a permerror
SPF_LONG_OCTETS = 450  # RFC 7208 section 3.4: keep the record under this (512-octet UDP answers)
SPF_MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")
SPF_LOOKUP_MECHANISMS = frozenset({"include", "a", "mx", "ptr", "exists"})
DMARC_POLICIES = ("none", "quarantine", "reject")
DKIM_KEY_TYPES = ("rsa", "ed25519")
DKIM_MIN_RSA_BITS = 1024  # RFC 8301: verifiers ignore shorter keys
DKIM_GOOD_RSA_BITS = 2048  # RFC 8301: what signers SHOULD use


# -- problems ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LintProblem:
    """One finding about a record: ``level`` is ``error`` or ``warning``; ``code`` a stable slug."""

    level: Level
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.message} [{self.code}]"


class RecordSyntaxError(ValueError):
    """What the ``parse_*`` functions raise: the record is not valid. ``problems`` holds every
    error found (``code`` and the message are those of the first)."""

    def __init__(self, problems: Sequence[LintProblem]) -> None:
        self.problems = tuple(problems)
        self.code = self.problems[0].code if self.problems else "syntax"
        super().__init__(self.problems[0].message if self.problems else "invalid record")


def _error(code: str, message: str) -> LintProblem:
    return LintProblem("error", code, message)


def _warning(code: str, message: str) -> LintProblem:
    return LintProblem("warning", code, message)


def _show(text: str, limit: int = 48) -> str:
    """``text`` quoted for a one-line message (control characters escaped, long text cut)."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _short_key(key: str) -> str:
    return key if len(key) <= 16 else key[:12] + "..." + key[-4:]


def _dedupe(problems: Sequence[LintProblem]) -> list[LintProblem]:
    return list(dict.fromkeys(problems))


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
                _error(
                    "spf-bad-macro",
                    f"{where}: '%' must start a macro (%{{x}}, %%, %_ or %-) in {_show(text)}",
                )
            )
            return problems, False
        letter = m[1].lower()
        if letter not in _MACRO_LETTERS:
            problems.append(
                _error("spf-bad-macro", f"{where}: unknown macro letter in {_show(m[0])}")
            )
        elif letter in _EXP_ONLY_LETTERS and not exp:
            problems.append(
                _error(
                    "spf-bad-macro",
                    f"{where}: macro {_show(m[0])} is allowed only in explanation text",
                )
            )
        elif letter == "p":
            problems.append(
                _warning(
                    "spf-ptr",
                    f"{where}: the %{{p}} macro does slow PTR lookups; RFC 7208 says not to use it",
                )
            )
        if m[2] and int(m[2]) == 0:
            problems.append(
                _error("spf-bad-macro", f"{where}: a macro's digit transformer must be non-zero")
            )
        i = m.end()
        ends_with_macro = True
    return problems, ends_with_macro


def _check_domain_spec(spec: str, where: str) -> list[LintProblem]:
    """A domain-spec (RFC 7208 section 7.1): macros valid, ending in a macro or a top label."""
    if not spec:
        return [_error("spf-bad-domain", f"{where}: empty domain")]
    problems, _ = _scan_macros(spec, where)
    if any(p.level == "error" for p in problems):
        return problems
    body = spec[:-1] if spec.endswith(".") else spec
    _, ends_with_macro = _scan_macros(body, where)
    if not ends_with_macro:
        head, dot, top = body.rpartition(".")
        if not dot or not head:
            problems.append(
                _error(
                    "spf-bad-domain",
                    f"{where}: {_show(spec)} is not a domain name (it needs a dot and a top label)",
                )
            )
            return problems
        if not _TOPLABEL.fullmatch(top):
            hint = " (write ip4:/ip6: for addresses)" if top.isdigit() else ""
            problems.append(
                _error(
                    "spf-bad-domain",
                    f"{where}: {_show(spec)} does not end in a valid top-level label{hint}",
                )
            )
            return problems
    if "%" not in spec:
        labels = body.split(".")
        if any(not label for label in labels):
            problems.append(_error("spf-bad-domain", f"{where}: {_show(spec)} has an empty label"))
        elif any(len(label.encode()) > 63 for label in labels):
            problems.append(
                _error("spf-bad-domain", f"{where}: {_show(spec)} has a label over 63 octets")
            )
        elif len(body.encode()) > 253:
            problems.append(
                _error("spf-bad-domain", f"{where}: {_show(spec)} is longer than 253 octets")
            )
    return problems


def _cidr(digits: str, limit: int, where: str) -> tuple[int | None, list[LintProblem]]:
    if len(digits) > 1 and digits.startswith("0"):
        return None, [_error("spf-bad-cidr", f"{where}: prefix length /{digits} has a leading 0")]
    value = int(digits)
    if value > limit:
        return None, [_error("spf-bad-cidr", f"{where}: prefix length /{digits} is over {limit}")]
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
        msg = f"{where}: {_show(addr_text)} is not an IPv{version} address{hint}"
        return None, None, [_error("spf-bad-ip", msg)]
    prefix = limit
    if slash:
        if not _DIGITS.fullmatch(prefix_text):
            msg = f"{where}: bad prefix length {_show('/' + prefix_text)}"
            return None, None, [_error("spf-bad-cidr", msg)]
        value, problems = _cidr(prefix_text, limit, where)
        if value is None:
            return None, None, problems
        prefix = value
    network = ipaddress.ip_network(f"{addr}/{prefix}", strict=False)
    return network, (prefix if slash else None), []


def _parse_directive(
    qualifier: str, name: str, rest: str, raw: str
) -> tuple[SpfMechanism | None, list[LintProblem]]:
    where = _show(raw)
    q = qualifier or "+"
    if name == "all":
        if rest:
            return None, [_error("spf-bad-argument", f"{where}: 'all' takes no argument")]
        return SpfMechanism(q, name, text=raw), []
    if name in ("ip4", "ip6"):
        if not rest.startswith(":") or len(rest) == 1:
            return None, [_error("spf-bad-ip", f"{where}: {name} needs an address ({name}:ADDR)")]
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
                _error("spf-missing-domain", f"{where}: {name} needs a domain ({name}:DOMAIN)")
            ]
        if not rest.startswith(":"):
            return None, [_error("spf-bad-argument", f"{where}: write {name}:DOMAIN")]
        problems = _check_domain_spec(rest[1:], where)
        if any(p.level == "error" for p in problems):
            return None, problems
        return SpfMechanism(q, name, domain=rest[1:], text=raw), problems
    if name == "ptr":
        if rest and not rest.startswith(":"):
            return None, [_error("spf-bad-argument", f"{where}: write ptr or ptr:DOMAIN")]
        domain = rest[1:] if rest else None
        problems = _check_domain_spec(domain, where) if domain is not None else []
        if any(p.level == "error" for p in problems):
            return None, problems
        return SpfMechanism(q, name, domain=domain, text=raw), problems
    # a / mx: [":" domain-spec] [dual-cidr-length]
    if rest and rest[0] not in ":/":
        return None, [_error("spf-bad-argument", f"{where}: write {name}[:DOMAIN][/N][//N]")]
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
                _error("spf-bad-cidr", f"{where}: bad prefix length {_show(cidr_text)}")
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
                _error(
                    "spf-pass-all",
                    f"{_show(mech.text)} lets every host on the Internet send as this domain",
                )
            )
        elif mech.name == "ptr":
            problems.append(
                _warning(
                    "spf-ptr",
                    f"{_show(mech.text)}: the ptr mechanism is slow and unreliable; "
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
                _warning(
                    "spf-broad-network",
                    f"{_show(mech.text)} authorises a very large address range",
                )
            )
    after = len(record.mechanisms) - len(record.evaluated)
    if after:
        problems.append(
            _warning(
                "spf-terms-after-all",
                f"{after} mechanism(s) after {_show(record.evaluated[-1].text)} "
                "are never evaluated",
            )
        )
    if record.redirect is not None and record.all is not None:
        problems.append(
            _warning(
                "spf-redirect-ignored",
                f"redirect={record.redirect} is ignored because the record has an 'all' mechanism",
            )
        )
    return problems


def _parse_spf(text: str) -> tuple[SpfRecord | None, list[LintProblem]]:
    """The record (``None`` when ``text`` is not SPF at all) and every problem found; terms with
    errors are left out of the record."""
    if not is_spf(text):
        if text[:6].lower() == "v=spf1":
            msg = f"{_show(text[:12])}: 'v=spf1' must be followed by a space"
        else:
            msg = f"{_show(text, 24)} is not an SPF record (it must begin with 'v=spf1')"
        return None, [_error("spf-not-spf", msg)]
    problems: list[LintProblem] = []
    mechanisms: list[SpfMechanism] = []
    unknown: list[tuple[str, str]] = []
    special: dict[str, str] = {}
    for raw in text[6:].split(" "):
        if not raw:
            continue
        where = _show(raw)
        bad = next((c for c in raw if not 0x21 <= ord(c) <= 0x7E), None)
        if bad is not None:
            msg = f"term {where} has a character SPF does not allow ({bad!r})"
            problems.append(_error("spf-bad-term", msg))
            continue
        mod = _SPF_MODIFIER.fullmatch(raw)
        if mod is not None:
            name, value = mod[1].lower(), mod[2]
            if name in ("redirect", "exp"):
                if name in special:
                    problems.append(
                        _error("spf-duplicate-modifier", f"{name}= appears more than once")
                    )
                    continue
                found = _check_domain_spec(value, where)
                problems += found
                if not any(p.level == "error" for p in found):
                    special[name] = value
            elif name == "v":
                problems.append(
                    _error(
                        "spf-merged-records",
                        f"a second version term {where} inside the record (two records merged?)",
                    )
                )
            elif name in SPF_MECHANISMS:
                problems.append(
                    _error(
                        "spf-mechanism-as-modifier",
                        f"{where} is an unknown modifier that receivers ignore; "
                        f"did you mean {name}:{value}?",
                    )
                )
            else:
                problems.append(
                    _warning("spf-unknown-modifier", f"unknown modifier {where} (ignored)")
                )
                problems += _scan_macros(value, where)[0]
                unknown.append((mod[1], value))
            continue
        m = _SPF_DIRECTIVE.fullmatch(raw)
        if m is None or m[2].lower() not in SPF_MECHANISMS:
            problems.append(_error("spf-bad-term", f"unknown mechanism {where}"))
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
    record, problems = _parse_spf(text)
    errors = [p for p in problems if p.code in SPF_SYNTAX_CODES]
    if record is None or errors:
        raise RecordSyntaxError(errors or problems)
    return record


# -- SPF: lookups ------------------------------------------------------------------------------
class SpfResult(list[LintProblem]):
    """The problems of ``check_spf`` (a list), plus the lookup counts: ``lookups`` (RFC 7208
    section 4.6.4 terms, through the include tree), ``void_lookups`` and ``exact`` (``False``
    when ``lookups`` is a lower bound: includes not followed, a lookup failed, or a target
    holds macros)."""

    def __init__(
        self,
        problems: Sequence[LintProblem] = (),
        *,
        lookups: int = 0,
        void_lookups: int = 0,
        exact: bool = True,
        max_lookups: int = SPF_MAX_LOOKUPS,
    ) -> None:
        super().__init__(problems)
        self.lookups = lookups
        self.void_lookups = void_lookups
        self.exact = exact
        self.max_lookups = max_lookups

    @property
    def errors(self) -> list[LintProblem]:
        return [p for p in self if p.level == "error"]

    @property
    def summary(self) -> str:
        """``7/10 DNS lookups`` (``at least 3/10 ...`` when the count is a lower bound)."""
        bound = "" if self.exact else "at least "
        return f"{bound}{self.lookups}/{self.max_lookups} DNS lookups"


class _SpfWalk:
    """Counts lookups and void lookups through the include/redirect tree."""

    def __init__(
        self,
        lookup_txt: LookupFn | None,
        lookup_mx: LookupFn | None,
        lookup_a: LookupFn | None,
        cap: int,
    ) -> None:
        self.lookup_txt = lookup_txt
        self.lookup_mx = lookup_mx
        self.lookup_a = lookup_a
        self.cap = cap
        self.lookups = 0
        self.void = 0
        self.exact = True
        self.problems: list[LintProblem] = []
        self._txt_cache: dict[str, list[str]] = {}

    def _add(self, where: str, problem: LintProblem) -> None:
        if where:
            problem = replace(problem, message=f"in {where}: {problem.message}")
        self.problems.append(problem)

    def _ask(self, fn: LookupFn, name: str, rtype: str, where: str) -> list[str] | None:
        try:
            return [str(v) for v in fn(name)]
        except (LookupError, OSError, ValueError) as exc:
            detail = " ".join(str(exc).split())[:120] or type(exc).__name__
            msg = detail if name in detail else f"{rtype} lookup of {name} failed: {detail}"
            self._add(where, _warning("spf-lookup-failed", msg))
            self.exact = False
            return None

    def record(
        self, record: SpfRecord, domain: str | None, chain: tuple[str, ...], where: str
    ) -> None:
        """Count ``record`` (found at ``domain``; ``where`` prefixes its problems) and follow
        its includes and redirect; ``chain`` is the path of domains that led here."""
        for mech in record.evaluated:
            if not mech.costs_lookup:
                continue
            self.lookups += 1
            if mech.name == "include":
                self.follow(mech.domain or "", "include", chain, where)
            elif mech.name in ("a", "mx"):
                self.addresses(mech, domain, where)
        redirect = record.effective_redirect
        if redirect is not None:
            self.lookups += 1
            self.follow(redirect, "redirect", chain, where)

    def follow(self, target: str, kind: str, chain: tuple[str, ...], where: str) -> None:
        if self.lookup_txt is None or "%" in target:
            self.exact = False
            return
        name = target.lower().rstrip(".")
        if name in chain:
            path = " -> ".join((*chain[chain.index(name) :], name))
            self._add(where, _error("spf-loop", f"{kind}:{name} loops back ({path})"))
            return
        if self.lookups > self.cap:
            self.exact = False
            return
        txts = self._txt_cache.get(name)
        if txts is None:
            txts = self._ask(self.lookup_txt, name, "TXT", where)
            if txts is None:
                return
            self._txt_cache[name] = txts
        spf = [t for t in txts if is_spf(t)]
        if not txts:
            self.void += 1
        if not spf:
            msg = f"{kind}:{name} has no SPF record (receivers return permerror)"
            self._add(where, _error(f"spf-{kind}-no-record", msg))
            return
        if len(spf) > 1:
            msg = f"{name} publishes {len(spf)} SPF records (receivers return permerror)"
            self._add(where, _error("spf-multiple-records", msg))
            return
        record, problems = _parse_spf(spf[0])
        for problem in problems:
            self._add(name, problem)
        if record is not None:
            self.record(record, name, (*chain, name), name)

    def addresses(self, mech: SpfMechanism, domain: str | None, where: str) -> None:
        target = mech.domain if mech.domain is not None else domain
        if target is None or "%" in target:
            return
        name = target.lower().rstrip(".")
        fn = self.lookup_mx if mech.name == "mx" else self.lookup_a
        if fn is None:
            return
        values = self._ask(fn, name, "MX" if mech.name == "mx" else "address", where)
        if values is None:
            return
        if not values:
            self.void += 1
            what = "no MX records" if mech.name == "mx" else "no A/AAAA records"
            msg = f"{_show(mech.text)}: {name} has {what} (a void lookup)"
            self._add(where, _warning("spf-void-lookup", msg))
        elif mech.name == "mx" and len(values) > SPF_MAX_MX_HOSTS:
            msg = (
                f"{_show(mech.text)}: {name} has {len(values)} MX hosts; receivers return "
                f"permerror above {SPF_MAX_MX_HOSTS}"
            )
            self._add(where, _error("spf-mx-too-many-hosts", msg))


def check_spf(
    text: str,
    lookup_txt: LookupFn | None = None,
    max_lookups: int = SPF_MAX_LOOKUPS,
    max_void: int = SPF_MAX_VOID,
    *,
    domain: str | None = None,
    lookup_mx: LookupFn | None = None,
    lookup_a: LookupFn | None = None,
) -> SpfResult:
    """Every problem with an SPF record, and its DNS lookup count (see ``SpfResult``).

    ``lookup_txt(name)`` returns the TXT strings at ``name`` (each RR's character-strings
    joined; ``[]`` when there are none) and may raise ``LookupError`` when the lookup fails; it
    is used to follow ``include:`` and ``redirect=``. Without it only this record's own terms are
    counted and ``exact`` is ``False`` when it has includes. ``lookup_mx(name)`` (MX hosts) and
    ``lookup_a(name)`` (addresses), when given, find void ``a``/``mx`` lookups and ``mx``
    targets with more than 10 hosts. ``domain`` is the record's own domain: the target of a
    bare ``a``/``mx`` and the start of loop detection.
    """
    record, problems = _parse_spf(text)
    if record is None:
        return SpfResult(problems, exact=True, max_lookups=max_lookups)
    if record.all is None and record.redirect is None:
        problems.append(
            _warning(
                "spf-no-all",
                "the record has no 'all' or 'redirect=': other hosts get a neutral result "
                "(end it with ~all or -all)",
            )
        )
    octets = len(text.encode("utf-8"))
    if octets > SPF_LONG_OCTETS:
        problems.append(
            _warning(
                "spf-record-long",
                f"the record is {octets} octets; RFC 7208 section 3.4 advises under "
                f"{SPF_LONG_OCTETS} so answers fit in 512-octet UDP",
            )
        )
    own = domain.lower().rstrip(".") if domain else None
    walk = _SpfWalk(lookup_txt, lookup_mx, lookup_a, cap=max(4 * max_lookups, 40))
    walk.record(record, own, (own,) if own else (), "")
    problems += walk.problems
    if walk.lookups > max_lookups:
        bound = "" if walk.exact else "at least "
        problems.append(
            _error(
                "spf-too-many-lookups",
                f"SPF needs {bound}{walk.lookups} DNS lookups, more than the {max_lookups} "
                "RFC 7208 allows (receivers return permerror)",
            )
        )
    if walk.void > max_void:
        problems.append(
            _error(
                "spf-too-many-void-lookups",
                f"{walk.void} lookups find no records, more than the {max_void} receivers "
                "allow (permerror)",
            )
        )
    return SpfResult(
        _dedupe(problems),
        lookups=walk.lookups,
        void_lookups=walk.void,
        exact=walk.exact,
        max_lookups=max_lookups,
    )


# -- tag=value lists (DMARC, DKIM) ---------------------------------------------------------------
_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def _tag_list(text: str, prefix: str) -> tuple[list[tuple[str, str]], list[LintProblem]]:
    """``name=value`` pairs separated by ``;`` (a trailing ``;`` is allowed); names and values
    stripped of surrounding whitespace."""
    tags: list[tuple[str, str]] = []
    problems: list[LintProblem] = []
    if not text.strip():
        return tags, problems
    parts = text.split(";")
    if len(parts) > 1 and not parts[-1].strip():
        parts.pop()
    for part in parts:
        if not part.strip():
            problems.append(_warning(f"{prefix}-empty-tag", "an empty tag (';;') in the record"))
            continue
        name, eq, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if not eq or not _TAG_NAME.fullmatch(name):
            msg = f"{_show(part.strip())} is not a tag=value pair"
            problems.append(_error(f"{prefix}-bad-tag", msg))
            continue
        tags.append((name, value))
    return tags, problems


# -- DMARC ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DmarcRecord:
    """A parsed DMARC record with the RFC 7489 defaults filled in; values lowercased, except the
    report URIs. ``tags`` holds every tag as written (names lowercased), in order."""

    policy: str
    subdomain_policy: str
    pct: int = 100
    adkim: str = "r"
    aspf: str = "r"
    rua: tuple[str, ...] = ()
    ruf: tuple[str, ...] = ()
    fo: tuple[str, ...] = ("0",)
    rf: tuple[str, ...] = ("afrf",)
    ri: int = 86400
    tags: tuple[tuple[str, str], ...] = ()


_DMARC_TAG_NAMES = r"v|p|sp|np|pct|adkim|aspf|rua|ruf|fo|rf|ri|psd|t"
_DMARC_SEPARATOR_JUNK = re.compile(rf"[\s,]+(?:{_DMARC_TAG_NAMES})\s*=", re.IGNORECASE)
_DMARC_SIZE = re.compile(r"[0-9]+[kmgtKMGT]?")
_URI_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
_MAILTO_ADDRESS = re.compile(rf"[^@\s,;!]+@{_LABEL}(?:\.{_LABEL})+\.?")


def _dmarc_choice(choices: Sequence[str], code: str) -> Callable[[str, str], list[LintProblem]]:
    def check(name: str, value: str) -> list[LintProblem]:
        if value.lower() in choices:
            return []
        return [_error(code, f"{name}={_show(value)}: must be one of {', '.join(choices)}")]

    return check


def _dmarc_list(choices: Sequence[str], code: str) -> Callable[[str, str], list[LintProblem]]:
    def check(name: str, value: str) -> list[LintProblem]:
        bad = [v for v in (x.strip() for x in value.split(":")) if v.lower() not in choices]
        if not bad:
            return []
        msg = f"{name}={_show(value)}: a ':' list of {', '.join(choices)} (not {_show(bad[0])})"
        return [_error(code, msg)]

    return check


def _dmarc_int(limit: int, code: str) -> Callable[[str, str], list[LintProblem]]:
    def check(name: str, value: str) -> list[LintProblem]:
        if _DIGITS.fullmatch(value) and int(value) <= limit:
            return []
        return [_error(code, f"{name}={_show(value)}: must be a whole number from 0 to {limit}")]

    return check


def _dmarc_uris(name: str, value: str) -> list[LintProblem]:
    problems: list[LintProblem] = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            problems.append(_error("dmarc-bad-uri", f"{name}= has an empty URI (a stray comma)"))
            continue
        uri, bang, size = item.partition("!")
        if bang and not _DMARC_SIZE.fullmatch(size):
            msg = f"{name}: {_show(item)} has a bad size limit (use e.g. !10m)"
            problems.append(_error("dmarc-bad-uri", msg))
            continue
        scheme = _URI_SCHEME.match(uri)
        if scheme is None:
            hint = f" (write mailto:{uri})" if "@" in uri else ""
            msg = f"{name}: {_show(uri)} is not a URI{hint}"
            problems.append(_error("dmarc-bad-uri", msg))
        elif scheme[1].lower() != "mailto":
            msg = f"{name}: {_show(uri)} is not a mailto: URI; receivers send reports by mail"
            problems.append(_warning("dmarc-uri-not-mailto", msg))
        elif not _MAILTO_ADDRESS.fullmatch(uri[scheme.end() :]):
            msg = f"{name}: {_show(uri)} is not a valid mailto: address"
            problems.append(_error("dmarc-bad-uri", msg))
    return problems


_DMARC_TAGS: dict[str, Callable[[str, str], list[LintProblem]]] = {
    "p": _dmarc_choice(DMARC_POLICIES, "dmarc-bad-policy"),
    "sp": _dmarc_choice(DMARC_POLICIES, "dmarc-bad-policy"),
    "np": _dmarc_choice(DMARC_POLICIES, "dmarc-bad-policy"),  # RFC 9091 / DMARCbis
    "pct": _dmarc_int(100, "dmarc-bad-pct"),
    "adkim": _dmarc_choice(("r", "s"), "dmarc-bad-alignment"),
    "aspf": _dmarc_choice(("r", "s"), "dmarc-bad-alignment"),
    "rua": _dmarc_uris,
    "ruf": _dmarc_uris,
    "fo": _dmarc_list(("0", "1", "d", "s"), "dmarc-bad-fo"),
    "rf": _dmarc_list(("afrf",), "dmarc-bad-rf"),
    "ri": _dmarc_int(2**32 - 1, "dmarc-bad-ri"),
    "psd": _dmarc_choice(("y", "n", "u"), "dmarc-bad-value"),  # DMARCbis
    "t": _dmarc_choice(("y", "n"), "dmarc-bad-value"),  # DMARCbis
}


def _check_dmarc(text: str) -> tuple[list[tuple[str, str]], list[LintProblem]]:
    tags, problems = _tag_list(text, "dmarc")
    if tags and tags[0][0].lower() == "v" and not tags[0][1].upper().startswith("DMARC"):
        tags = []  # v=spf1, v=DKIM1...: some other record
    if not tags or tags[0][0].lower() != "v":
        if any(name.lower() == "v" for name, _ in tags):
            problems.append(_error("dmarc-version-not-first", "v=DMARC1 must be the first tag"))
        else:
            msg = f"{_show(text, 24)} is not a DMARC record (it must begin with v=DMARC1)"
            problems.append(_error("dmarc-not-dmarc", msg))
    seen: dict[str, str] = {}
    for name, value in tags:
        key = name.lower()
        if key in seen:
            problems.append(_error("dmarc-duplicate-tag", f"the {key}= tag appears more than once"))
            continue
        seen[key] = value
        if _DMARC_SEPARATOR_JUNK.search(value):
            msg = f"{name}={_show(value)}: tags must be separated by ';'"
            problems.append(_error("dmarc-bad-separator", msg))
            continue
        if key == "v":
            if value != "DMARC1":
                msg = f"v={_show(value)}: the version must be exactly DMARC1"
                problems.append(_error("dmarc-bad-version", msg))
            continue
        if not value:
            problems.append(_error("dmarc-empty-value", f"{name}= has no value"))
            continue
        check = _DMARC_TAGS.get(key)
        if check is None:
            problems.append(_warning("dmarc-unknown-tag", f"unknown tag {_show(name)} (ignored)"))
            continue
        problems += check(name, value)
    if tags and tags[0][0].lower() == "v":
        if "p" not in seen:
            problems.append(_error("dmarc-missing-p", "the p= tag (policy) is required"))
        elif len(tags) < 2 or tags[1][0].lower() != "p":
            problems.append(_error("dmarc-p-not-second", "p= must come right after v=DMARC1"))
        if "rua" not in seen:
            problems.append(
                _warning("dmarc-no-rua", "no rua= address: nobody receives aggregate reports")
            )
    return tags, _dedupe(problems)


def parse_dmarc(text: str) -> DmarcRecord:
    """Parse a DMARC record. Raises ``RecordSyntaxError`` on any error-level problem."""
    tags, problems = _check_dmarc(text)
    errors = [p for p in problems if p.level == "error"]
    if errors:
        raise RecordSyntaxError(errors)
    values: dict[str, str] = {}
    for name, value in tags:
        values.setdefault(name.lower(), value)

    def items(key: str, sep: str, default: tuple[str, ...]) -> tuple[str, ...]:
        if key not in values:
            return default
        return tuple(x.strip() for x in values[key].split(sep))

    policy = values["p"].lower()
    return DmarcRecord(
        policy=policy,
        subdomain_policy=values.get("sp", policy).lower(),
        pct=int(values.get("pct", "100")),
        adkim=values.get("adkim", "r").lower(),
        aspf=values.get("aspf", "r").lower(),
        rua=items("rua", ",", ()),
        ruf=items("ruf", ",", ()),
        fo=tuple(x.lower() for x in items("fo", ":", ("0",))),
        rf=tuple(x.lower() for x in items("rf", ":", ("afrf",))),
        ri=int(values.get("ri", "86400")),
        tags=tuple((name.lower(), value) for name, value in tags),
    )


def check_dmarc(text: str) -> list[LintProblem]:
    """Every problem with a DMARC record (RFC 7489 section 6.3)."""
    return _check_dmarc(text)[1]


# -- DKIM key records ----------------------------------------------------------------------------
DKIM_SYNTAX_CODES = frozenset(
    {
        "dkim-bad-tag",
        "dkim-duplicate-tag",
        "dkim-bad-value",
        "dkim-bad-version",
        "dkim-version-not-first",
        "dkim-bad-key-type",
        "dkim-missing-key",
        "dkim-bad-base64",
    }
)
_DKIM_TAGS = ("v", "h", "k", "n", "p", "s", "t")
_DKIM_VALCHARS = re.compile(r"[\x21-\x3a\x3c-\x7e \t\r\n]*")  # VALCHAR and folding white space
_WS = re.compile(r"[ \t\r\n]+")


def _colon_list(value: str) -> list[str]:
    return [x.strip() for x in value.split(":")]


def _key_kind(public: object) -> str:
    if isinstance(public, ed25519.Ed25519PublicKey):
        return "an Ed25519 key (use k=ed25519 with the raw 32-byte key)"
    if isinstance(public, ec.EllipticCurvePublicKey):
        return "an elliptic-curve key"
    if isinstance(public, dsa.DSAPublicKey):
        return "a DSA key"
    return "a key of another type"


def _check_key_data(key: str, key_type: str) -> list[LintProblem]:
    """The ``p=`` value (whitespace removed, not empty) as a key of ``key_type``."""
    shown = _short_key(key)
    try:
        der = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        return [_error("dkim-bad-base64", f"p= is not valid base64 ({shown})")]
    if key_type == "ed25519":
        if len(der) == 32:
            try:
                ed25519.Ed25519PublicKey.from_public_bytes(der)
            except (ValueError, UnsupportedAlgorithm):
                return [_error("dkim-bad-key", f"p= is not an Ed25519 public key ({shown})")]
            return []
        try:
            loaded = serialization.load_der_public_key(der)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            loaded = None
        if isinstance(loaded, ed25519.Ed25519PublicKey):
            msg = (
                "k=ed25519 takes the raw 32-byte key (RFC 8463), not a SubjectPublicKeyInfo "
                f"({shown})"
            )
        else:
            msg = f"k=ed25519 keys are 32 bytes; p= decodes to {len(der)} ({shown})"
        return [_error("dkim-bad-key", msg)]
    try:
        public = serialization.load_der_public_key(der)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        msg = f"p= is not a DER SubjectPublicKeyInfo public key ({shown})"
        return [_error("dkim-bad-key", msg)]
    if not isinstance(public, rsa.RSAPublicKey):
        msg = f"k=rsa but p= holds {_key_kind(public)} ({shown})"
        return [_error("dkim-key-type-mismatch", msg)]
    problems: list[LintProblem] = []
    bits = public.key_size
    if bits < DKIM_MIN_RSA_BITS:
        msg = f"the RSA key has {bits} bits; verifiers ignore keys under {DKIM_MIN_RSA_BITS}"
        problems.append(_error("dkim-weak-key", msg))
    elif bits < DKIM_GOOD_RSA_BITS:
        msg = f"the RSA key has {bits} bits; use {DKIM_GOOD_RSA_BITS} (RFC 8301)"
        problems.append(_warning("dkim-short-key", msg))
    spki = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if der != spki:
        pkcs1 = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
        if der == pkcs1:
            msg = (
                "p= is a bare PKCS#1 RSAPublicKey; most verifiers expect a "
                f"SubjectPublicKeyInfo ({shown})"
            )
            problems.append(_warning("dkim-pkcs1-key", msg))
    return problems


def _check_dkim(text: str) -> tuple[dict[str, str], list[LintProblem]]:
    tags, problems = _tag_list(text, "dkim")
    values: dict[str, str] = {}
    for name, value in tags:
        if name in values:
            msg = f"the {name}= tag appears more than once (the whole record is invalid)"
            problems.append(_error("dkim-duplicate-tag", msg))
            continue
        values[name] = value
        if not _DKIM_VALCHARS.fullmatch(value):
            msg = f"{name}= has a character DKIM does not allow ({_show(value, 24)})"
            problems.append(_error("dkim-bad-value", msg))
        if name not in _DKIM_TAGS:
            hint = " (tag names are case-sensitive)" if name.lower() in _DKIM_TAGS else ""
            problems.append(
                _warning("dkim-unknown-tag", f"unknown tag {_show(name)} (ignored){hint}")
            )
    if "v" in values:
        if tags[0][0] != "v":
            problems.append(
                _error("dkim-version-not-first", "v=DKIM1 must be the first tag when present")
            )
        if values["v"] != "DKIM1":
            msg = f"v={_show(values['v'])}: the version must be exactly DKIM1"
            problems.append(_error("dkim-bad-version", msg))
    key_type = values.get("k", "rsa")
    if key_type not in DKIM_KEY_TYPES:
        msg = f"k={_show(key_type)}: the key type must be one of {', '.join(DKIM_KEY_TYPES)}"
        problems.append(_error("dkim-bad-key-type", msg))
    if "h" in values:
        hashes = _colon_list(values["h"])
        if "" in hashes:
            problems.append(_error("dkim-bad-value", f"h={_show(values['h'])}: an empty item"))
        unknown = [h for h in hashes if h and h not in ("sha1", "sha256")]
        if unknown:
            msg = f"h= lists unknown hash algorithm(s) {', '.join(map(_show, unknown))} (ignored)"
            problems.append(_warning("dkim-unknown-hash", msg))
        if "sha256" not in hashes:
            msg = f"h={_show(values['h'])} excludes sha256; verifiers reject sha1 (RFC 8301)"
            problems.append(_error("dkim-no-sha256", msg))
    if "s" in values:
        services = _colon_list(values["s"])
        unknown = [s for s in services if s not in ("*", "email")]
        if unknown:
            msg = f"s= lists unknown service type(s) {', '.join(map(_show, unknown))} (ignored)"
            problems.append(_warning("dkim-unknown-service", msg))
        if "*" not in services and "email" not in services:
            msg = f"s={_show(values['s'])}: the key may not be used for email (use s=email or *)"
            problems.append(_error("dkim-not-for-email", msg))
    if "t" in values:
        flags = _colon_list(values["t"])
        unknown = [f for f in flags if f not in ("y", "s")]
        if unknown:
            msg = f"t= lists unknown flag(s) {', '.join(map(_show, unknown))} (ignored)"
            problems.append(_warning("dkim-unknown-flag", msg))
        if "y" in flags:
            msg = "t=y: testing mode, receivers may treat signed mail as unsigned"
            problems.append(_warning("dkim-testing", msg))
    if "p" not in values:
        problems.append(_error("dkim-missing-key", "the p= tag (public key) is required"))
    else:
        key = _WS.sub("", values["p"])
        values["p"] = key
        if not key:
            problems.append(_warning("dkim-revoked", "the key is revoked (empty p=)"))
        elif key_type in DKIM_KEY_TYPES:
            problems += _check_key_data(key, key_type)
    return values, _dedupe(problems)


def parse_dkim_key(text: str) -> dict[str, str]:
    """The tags of a DKIM key record (names as written, values stripped; ``p`` with all
    whitespace removed; ``p == ""`` means revoked). Raises ``RecordSyntaxError`` when the tag
    syntax is invalid (the codes in ``DKIM_SYNTAX_CODES``); a weak or unusable key does not
    raise (see ``check_dkim_key``)."""
    values, problems = _check_dkim(text)
    errors = [p for p in problems if p.code in DKIM_SYNTAX_CODES]
    if errors:
        raise RecordSyntaxError(errors)
    return values


def check_dkim_key(text: str) -> list[LintProblem]:
    """Every problem with a DKIM key record (RFC 6376 section 3.6.1). A revoked key (empty
    ``p=``) is the warning ``dkim-revoked``."""
    return _check_dkim(text)[1]


def dkim_public_key(text: str) -> str | None:
    """The ``p=`` value with whitespace removed, to compare with the key the secrets backend
    holds: ``""`` for a revoked key, ``None`` when the record has no ``p=`` tag."""
    tags, _ = _tag_list(text, "dkim")
    for name, value in tags:
        if name == "p":
            return _WS.sub("", value)
    return None
