"""``check_spf``: one SPF record's problems plus those of the whole ``include:``/``redirect=``
tree, walked through a ``lookup_txt`` callable, with the DNS lookup limit (10) and the void
lookup limit (2) of RFC 7208 section 4.6.4; the result carries the counts (``SpfResult``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from penguinctl.dns.lint.base import (
    LintProblem,
    LookupFn,
    clip,
    dedupe,
    lint_error,
    lint_warning,
)
from penguinctl.dns.lint.spf import (
    SPF_LONG_OCTETS,
    SPF_MAX_LOOKUPS,
    SPF_MAX_MX_HOSTS,
    SPF_MAX_VOID,
    SpfMechanism,
    SpfRecord,
    is_spf,
    read_spf,
)


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
            self._add(where, lint_warning("spf-lookup-failed", msg))
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
            self._add(where, lint_error("spf-loop", f"{kind}:{name} loops back ({path})"))
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
            self._add(where, lint_error(f"spf-{kind}-no-record", msg))
            return
        if len(spf) > 1:
            msg = f"{name} publishes {len(spf)} SPF records (receivers return permerror)"
            self._add(where, lint_error("spf-multiple-records", msg))
            return
        record, problems = read_spf(spf[0])
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
            msg = f"{clip(mech.text)}: {name} has {what} (a void lookup)"
            self._add(where, lint_warning("spf-void-lookup", msg))
        elif mech.name == "mx" and len(values) > SPF_MAX_MX_HOSTS:
            msg = (
                f"{clip(mech.text)}: {name} has {len(values)} MX hosts; receivers return "
                f"permerror above {SPF_MAX_MX_HOSTS}"
            )
            self._add(where, lint_error("spf-mx-too-many-hosts", msg))


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
    record, problems = read_spf(text)
    if record is None:
        return SpfResult(problems, exact=True, max_lookups=max_lookups)
    if record.all is None and record.redirect is None:
        problems.append(
            lint_warning(
                "spf-no-all",
                "the record has no 'all' or 'redirect=': other hosts get a neutral result "
                "(end it with ~all or -all)",
            )
        )
    octets = len(text.encode("utf-8"))
    if octets > SPF_LONG_OCTETS:
        problems.append(
            lint_warning(
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
            lint_error(
                "spf-too-many-lookups",
                f"SPF needs {bound}{walk.lookups} DNS lookups, more than the {max_lookups} "
                "RFC 7208 allows (receivers return permerror)",
            )
        )
    if walk.void > max_void:
        problems.append(
            lint_error(
                "spf-too-many-void-lookups",
                f"{walk.void} lookups find no records, more than the {max_void} receivers "
                "allow (permerror)",
            )
        )
    return SpfResult(
        dedupe(problems),
        lookups=walk.lookups,
        void_lookups=walk.void,
        exact=walk.exact,
        max_lookups=max_lookups,
    )
