"""DMARC records (RFC 7489 section 6.3): ``parse_dmarc`` / ``check_dmarc``."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from penguinctl.dns.lint.base import (
    LintProblem,
    RecordSyntaxError,
    clip,
    dedupe,
    lint_error,
    lint_warning,
    tag_list,
)

DMARC_POLICIES = ("none", "quarantine", "reject")


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
_DIGITS = re.compile(r"[0-9]+")
_DMARC_SIZE = re.compile(r"[0-9]+[kmgtKMGT]?")
_URI_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
_MAILTO_ADDRESS = re.compile(rf"[^@\s,;!]+@{_LABEL}(?:\.{_LABEL})+\.?")


def _dmarc_choice(choices: Sequence[str], code: str) -> Callable[[str, str], list[LintProblem]]:
    def check(name: str, value: str) -> list[LintProblem]:
        if value.lower() in choices:
            return []
        return [lint_error(code, f"{name}={clip(value)}: must be one of {', '.join(choices)}")]

    return check


def _dmarc_list(choices: Sequence[str], code: str) -> Callable[[str, str], list[LintProblem]]:
    def check(name: str, value: str) -> list[LintProblem]:
        bad = [v for v in (x.strip() for x in value.split(":")) if v.lower() not in choices]
        if not bad:
            return []
        msg = f"{name}={clip(value)}: a ':' list of {', '.join(choices)} (not {clip(bad[0])})"
        return [lint_error(code, msg)]

    return check


def _dmarc_int(limit: int, code: str) -> Callable[[str, str], list[LintProblem]]:
    def check(name: str, value: str) -> list[LintProblem]:
        if _DIGITS.fullmatch(value) and int(value) <= limit:
            return []
        return [lint_error(code, f"{name}={clip(value)}: must be a whole number from 0 to {limit}")]

    return check


def _dmarc_uris(name: str, value: str) -> list[LintProblem]:
    problems: list[LintProblem] = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            problems.append(
                lint_error("dmarc-bad-uri", f"{name}= has an empty URI (a stray comma)")
            )
            continue
        uri, bang, size = item.partition("!")
        if bang and not _DMARC_SIZE.fullmatch(size):
            msg = f"{name}: {clip(item)} has a bad size limit (use e.g. !10m)"
            problems.append(lint_error("dmarc-bad-uri", msg))
            continue
        scheme = _URI_SCHEME.match(uri)
        if scheme is None:
            hint = f" (write mailto:{uri})" if "@" in uri else ""
            msg = f"{name}: {clip(uri)} is not a URI{hint}"
            problems.append(lint_error("dmarc-bad-uri", msg))
        elif scheme[1].lower() != "mailto":
            msg = f"{name}: {clip(uri)} is not a mailto: URI; receivers send reports by mail"
            problems.append(lint_warning("dmarc-uri-not-mailto", msg))
        elif not _MAILTO_ADDRESS.fullmatch(uri[scheme.end() :]):
            msg = f"{name}: {clip(uri)} is not a valid mailto: address"
            problems.append(lint_error("dmarc-bad-uri", msg))
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
    tags, problems = tag_list(text, "dmarc")
    if tags and tags[0][0].lower() == "v" and not tags[0][1].upper().startswith("DMARC"):
        tags = []  # v=spf1, v=DKIM1...: some other record
    if not tags or tags[0][0].lower() != "v":
        if any(name.lower() == "v" for name, _ in tags):
            problems.append(lint_error("dmarc-version-not-first", "v=DMARC1 must be the first tag"))
        else:
            msg = f"{clip(text, 24)} is not a DMARC record (it must begin with v=DMARC1)"
            problems.append(lint_error("dmarc-not-dmarc", msg))
    seen: dict[str, str] = {}
    for name, value in tags:
        key = name.lower()
        if key in seen:
            problems.append(
                lint_error("dmarc-duplicate-tag", f"the {key}= tag appears more than once")
            )
            continue
        seen[key] = value
        if _DMARC_SEPARATOR_JUNK.search(value):
            msg = f"{name}={clip(value)}: tags must be separated by ';'"
            problems.append(lint_error("dmarc-bad-separator", msg))
            continue
        if key == "v":
            if value != "DMARC1":
                msg = f"v={clip(value)}: the version must be exactly DMARC1"
                problems.append(lint_error("dmarc-bad-version", msg))
            continue
        if not value:
            problems.append(lint_error("dmarc-empty-value", f"{name}= has no value"))
            continue
        check = _DMARC_TAGS.get(key)
        if check is None:
            problems.append(
                lint_warning("dmarc-unknown-tag", f"unknown tag {clip(name)} (ignored)")
            )
            continue
        problems += check(name, value)
    if tags and tags[0][0].lower() == "v":
        if "p" not in seen:
            problems.append(lint_error("dmarc-missing-p", "the p= tag (policy) is required"))
        elif len(tags) < 2 or tags[1][0].lower() != "p":
            problems.append(lint_error("dmarc-p-not-second", "p= must come right after v=DMARC1"))
        if "rua" not in seen:
            problems.append(
                lint_warning("dmarc-no-rua", "no rua= address: nobody receives aggregate reports")
            )
    return tags, dedupe(problems)


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
