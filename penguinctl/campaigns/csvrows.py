"""Reading CSV files of addresses as a stream, for ``leads import`` and ``suppress import``:
the encoding checked before reading (UTF-8, a BOM allowed; UTF-16/32 refused), records with the
line they start on, malformed quoting, NUL bytes and bad UTF-8 reported at their line, header
names normalised (``First Name`` -> ``first_name``, a few aliases), addresses validated.
"""

from __future__ import annotations

import codecs
import csv
import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from penguinctl.errors import Location, SpecIssue
from penguinctl.spec.source import quote

ALIASES = {
    "e_mail": "email",
    "email_address": "email",
    "mail": "email",
    "firstname": "first_name",
    "fname": "first_name",
    "given_name": "first_name",
    "lastname": "last_name",
    "lname": "last_name",
    "surname": "last_name",
    "family_name": "last_name",
    "organization": "company",
    "organisation": "company",
    "org": "company",
    "company_name": "company",
    "tz": "timezone",
    "time_zone": "timezone",
}
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_WORD = re.compile(r"[^a-z0-9]+")


def column_name(header: str) -> str:
    """``"First Name"``/``"firstName"``/``"FNAME"`` -> ``first_name`` (aliases applied)."""
    text = _CAMEL.sub("_", header.strip())
    name = _NON_WORD.sub("_", text.lower()).strip("_")
    return ALIASES.get(name, name)


# email-validator's own grammar for an unquoted ASCII local part (RFC 5322 dot-atom)
_ATEXT = r"[a-zA-Z0-9_!#$%&'*+\-/=?^`{|}~]+"
_DOT_ATOM = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*\Z")
_MAX_ADDRESS = 254  # octets (RFC 5321), as email-validator counts them


@functools.lru_cache(maxsize=65_536)
def _domain(domain: str) -> tuple[str, int] | None:
    """email-validator's verdict on a domain alone, done once per domain: ``(its IDNA ASCII
    form, lower-cased; the longest of its three forms in UTF-8 octets)``, or None when it
    refuses it."""
    import email_validator
    from email_validator.syntax import validate_email_domain_name

    try:
        info = validate_email_domain_name(
            domain,
            test_environment=email_validator.TEST_ENVIRONMENT,
            globally_deliverable=email_validator.GLOBALLY_DELIVERABLE,
        )
    except email_validator.EmailNotValidError:
        return None
    forms = (domain, info["domain"], info["ascii_domain"])
    return info["ascii_domain"].lower(), max(len(f.encode()) for f in forms)


def fast_address(cell: str) -> str | None:
    """The normalised address when ``cell`` is a plain ``dot-atom@domain`` address that
    email-validator accepts, found without its per-address work (the local part matched with
    its grammar, the domain checked once per domain, its three length checks on the original,
    normalised and ASCII forms): the very same verdict and form as :func:`check_address`'s
    full path. None: take the full path."""
    local, at, domain = cell.rpartition("@")
    if not at or not domain.isascii() or _DOT_ATOM.match(local) is None:
        return None
    checked = _domain(domain)
    if checked is None or len(local) + 1 + checked[1] > _MAX_ADDRESS:
        return None
    return f"{local.lower()}@{checked[0]}"


# the pieces of fast_address, for a caller that inlines it (leads.py's per-row fast path)
DOT_ATOM = _DOT_ATOM
MAX_ADDRESS = _MAX_ADDRESS
domain_verdict = _domain


def check_address(text: str) -> tuple[str, str | None]:
    """``(normalised address, None)`` or ``(text, reason it is not an address)``."""
    cell = text.strip()
    if not cell:
        return cell, "email is empty"
    fast = fast_address(cell)
    if fast is not None:
        return fast, None
    from email_validator import EmailNotValidError, validate_email

    try:
        result = validate_email(cell, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        return cell, f"email {quote(cell)} is not valid: {exc}"
    return (result.ascii_email or result.normalized).lower(), None


def check_timezone(text: str) -> str | None:
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        return f"timezone {quote(text)} is not an IANA time zone (e.g. Europe/Paris)"
    return None


class Counting:
    """A text line iterator that counts the characters read (for a progress bar) and keeps
    the lines of the record being read (``lines``, reset by iter_records before each)."""

    def __init__(self, handle: IO[str]) -> None:
        self._handle = handle
        self.chars = 0
        self.lines: list[str] = []

    def __iter__(self) -> Counting:
        return self

    def __next__(self) -> str:
        line = self._handle.readline()
        if not line:
            raise StopIteration
        if "\x00" in line:
            raise csv.Error("line contains NUL")
        self.chars += len(line)
        self.lines.append(line)
        return line


def open_csv_text(path: Path, max_bytes: int) -> tuple[IO[str] | None, str | None]:
    """Open a CSV file for streaming (UTF-8, a BOM allowed): ``(handle, None)`` or
    ``(None, problem)``."""
    problem = csv_file_problem(path, max_bytes)
    if problem:
        return None, problem
    return path.open(encoding="utf-8-sig", errors="strict", newline=""), None


def csv_file_problem(path: Path, max_bytes: int) -> str | None:
    """Why ``path`` cannot be read as a UTF-8 CSV file (size, type, UTF-16/32), or None."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            return "not a regular file"
        if size > max_bytes:
            return f"file is larger than {max_bytes // (1024 * 1024)} MiB; split it"
        with path.open("rb") as raw:
            head = raw.read(4)
    except OSError as exc:
        return f"cannot read file: {(exc.strerror or type(exc).__name__).lower()}"
    for bom, name in ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32")):
        if head.startswith(bom):
            return f"file is {name}-encoded; save it as UTF-8"
    for bom in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        if head.startswith(bom):
            return "file is UTF-16-encoded; save it as UTF-8"
    return None


def iter_records(
    handle: IO[str] | None,
    shown: str,
    issues: list[SpecIssue],
    counter: Counting | None = None,
    *,
    reader: Any = None,
) -> Iterator[tuple[int, list[str]]]:
    """``(line where the record starts, cells)`` for every non-blank record, read from
    ``handle`` (line by line) or from ``reader`` (a ``csv.reader``, e.g. a CsvStream's).
    Malformed input (bad quoting, NUL bytes, bad UTF-8) ends the stream with one issue at its
    line."""
    lines = None
    if reader is None:
        assert handle is not None
        lines = counter or Counting(handle)
        reader = csv.reader(lines, strict=True)
    while True:
        start = reader.line_num + 1
        if lines is not None:
            lines.lines = []
        try:
            record = next(reader)
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as exc:
            issues.append(read_issue(exc, shown, start))
            return
        if "".join(record).strip():
            yield start, record


def read_issue(exc: csv.Error | UnicodeDecodeError, shown: str, start: int) -> SpecIssue:
    """The issue that ends reading: malformed quoting, a NUL byte or bad UTF-8 in the record
    starting at line ``start``."""
    if isinstance(exc, UnicodeDecodeError):
        byte = exc.object[exc.start] if exc.start < len(exc.object) else 0
        return SpecIssue(
            Location(shown, start, 1),
            f"file is not valid UTF-8 near here (byte 0x{byte:02x}); save it as UTF-8",
        )
    text = str(exc)
    hint = "is a '\"' quote left open?" if "EOF" in text or "end" in text else ""
    if "NUL" in text:
        message = "NUL byte in file; is it a binary file?"
    else:
        message = f"malformed CSV in the row starting here: {text} {hint}".strip()
    return SpecIssue(Location(shown, start, 1), message)
