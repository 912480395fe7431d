"""Standards checks ("lint") of the mail-authentication TXT records: SPF, DMARC and DKIM keys.

Modules: ``spf`` (one record's syntax and advice), ``spf_lookups`` (``check_spf``: the include
tree and the lookup limits), ``dmarc``, ``dkim`` (key records), ``base`` (``LintProblem``,
``RecordSyntaxError``, tag lists). This package re-exports their public names.

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

from penguinctl.dns.lint.base import (
    Level,
    LintProblem,
    LookupFn,
    RecordSyntaxError,
)
from penguinctl.dns.lint.dkim import (
    DKIM_GOOD_RSA_BITS,
    DKIM_KEY_TYPES,
    DKIM_MIN_RSA_BITS,
    DKIM_SYNTAX_CODES,
    check_dkim_key,
    dkim_public_key,
    parse_dkim_key,
)
from penguinctl.dns.lint.dmarc import (
    DMARC_POLICIES,
    DmarcRecord,
    check_dmarc,
    parse_dmarc,
)
from penguinctl.dns.lint.spf import (
    SPF_LONG_OCTETS,
    SPF_LOOKUP_MECHANISMS,
    SPF_MAX_LOOKUPS,
    SPF_MAX_MX_HOSTS,
    SPF_MAX_VOID,
    SPF_MECHANISMS,
    SPF_SYNTAX_CODES,
    SpfMechanism,
    SpfRecord,
    is_spf,
    parse_spf,
    read_spf,
)
from penguinctl.dns.lint.spf_lookups import (
    SpfResult,
    check_spf,
)

__all__ = [
    "DKIM_GOOD_RSA_BITS",
    "DKIM_KEY_TYPES",
    "DKIM_MIN_RSA_BITS",
    "DKIM_SYNTAX_CODES",
    "DMARC_POLICIES",
    "SPF_LONG_OCTETS",
    "SPF_LOOKUP_MECHANISMS",
    "SPF_MAX_LOOKUPS",
    "SPF_MAX_MX_HOSTS",
    "SPF_MAX_VOID",
    "SPF_MECHANISMS",
    "SPF_SYNTAX_CODES",
    "DmarcRecord",
    "Level",
    "LintProblem",
    "LookupFn",
    "RecordSyntaxError",
    "SpfMechanism",
    "SpfRecord",
    "SpfResult",
    "check_dkim_key",
    "check_dmarc",
    "check_spf",
    "dkim_public_key",
    "is_spf",
    "parse_dkim_key",
    "parse_dmarc",
    "parse_spf",
    "read_spf",
]
