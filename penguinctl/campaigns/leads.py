"""``leads import CAMPAIGN FILE.csv``: validate, merge and store a campaign's leads, streaming.

Columns (header names are matched case-insensitively; ``First Name``, ``firstName`` and
``first_name`` are the same column; a few aliases such as ``fname``, ``organization``, ``tz``
are understood):

- ``email`` (required): validated with email-validator (syntax only, no DNS), stored
  lower-cased with the domain in ASCII (IDNA). Non-ASCII local parts are refused (they need
  SMTPUTF8, which most receivers do not offer).
- ``first_name``, ``last_name``, ``company``: optional; ``timezone``: optional IANA name
  checked against zoneinfo.
- Any other column is a custom field (its header in ``lower_snake_case`` is the template
  variable). Blank cells are "not set".

Rows: a row whose address appears again (in the file or already in the campaign) is merged:
non-blank cells overwrite, custom fields are merged, status and progress are kept. A row that
lacks a variable the campaign's templates use without a default is rejected. An address
suppressed for the campaign (globally, for its tenant or the campaign) is stored with status
``suppressed``; one whose owner asked to be forgotten is not stored at all.

A cell holding a control character (a line break inside a quoted cell, a NUL, an escape: see
penguinctl.spec.text) is refused at the character (``FILE:LINE:COL``): a line break in a name
would reach a mail header. Every bad row is reported with its line (``FILE:LINE:COL``); the
good ones are imported. The file
is read as a stream and written in batches of :data:`BATCH` rows, so memory does not grow with
the file. Hostile input is bounded (file size, rows, columns, cell length, encoding, NUL bytes,
malformed quoting), as in :mod:`penguinctl.spec.csvimport`.
"""

from __future__ import annotations

import csv
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from penguinctl.campaigns.csvrows import (
    DOT_ATOM,
    MAX_ADDRESS,
    check_address,
    check_timezone,
    column_name,
    csv_file_problem,
    domain_verdict,
    iter_records,
    read_issue,
)
from penguinctl.campaigns.csvstream import CsvStream
from penguinctl.campaigns.lead_writer import NewLead, fields_json, writer_for
from penguinctl.campaigns.models import Campaign, Suppression
from penguinctl.campaigns.spec import BUILTIN_VARIABLES, LEAD_COLUMNS, spec_of
from penguinctl.campaigns.suppression import _matching, email_hash, suppressed_hashes
from penguinctl.errors import Location, SpecIssue
from penguinctl.spec.csvimport import field_offsets
from penguinctl.spec.source import quote
from penguinctl.spec.text import control_problem, find_control
from penguinctl.state.models import utcnow

MAX_FILE_BYTES = 2 * 1024 * 1024 * 1024
MAX_ROWS = 5_000_000
MAX_COLUMNS = 200
MAX_CELL_CHARS = 10_000
MAX_ISSUES = 10_000  # issues kept in full; more are only counted
BATCH = 1000

_KNOWN = frozenset(LEAD_COLUMNS)
_FIELD = re.compile(r"[a-z_][a-z0-9_]{0,63}")


@dataclass
class LeadImport:
    """What an import did: counts and every problem (``issues``, each with its line)."""

    file: str
    campaign: str
    rows: int = 0
    created: int = 0  # new active leads
    merged: int = 0  # rows merged into a lead already stored (or earlier in the file)
    suppressed: int = 0  # created with status suppressed
    skipped_forgotten: int = 0
    rejected: int = 0
    issues: list[SpecIssue] = field(default_factory=list)
    complete: bool = True  # False when reading stopped early (a file-level problem)

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "campaign": self.campaign,
            "rows": self.rows,
            "created": self.created,
            "merged": self.merged,
            "suppressed": self.suppressed,
            "skipped_forgotten": self.skipped_forgotten,
            "rejected": self.rejected,
            "complete": self.complete,
            "errors": [{"location": str(i.location), "message": i.message} for i in self.issues],
        }


def _header(
    record: list[str], line: int, shown: str, required: frozenset[str], issues: list[SpecIssue]
) -> list[str] | None:
    names = [column_name(cell) for cell in record]
    found: list[SpecIssue] = []
    if len(names) > MAX_COLUMNS:
        found.append(SpecIssue(Location(shown, line, 1), f"more than {MAX_COLUMNS} columns"))
    for index, name in enumerate(names):
        where = Location(shown, line, 1)
        label = f"header column {index + 1} ({quote(record[index].strip())})"
        if not name:
            found.append(SpecIssue(where, f"{label} has no name"))
        elif name in names[:index]:
            found.append(SpecIssue(where, f"{label}: column {name} appears twice"))
        elif name in BUILTIN_VARIABLES:
            found.append(SpecIssue(where, f"{label}: {name} is a built-in variable; rename it"))
        elif not _FIELD.fullmatch(name):
            found.append(
                SpecIssue(where, f"{label}: a column name must start with a letter ({name})")
            )
    if "email" not in names:
        found.append(
            SpecIssue(
                Location(shown, line, 1),
                "no 'email' column; the first line must be a header naming the columns "
                f"(email, {', '.join(LEAD_COLUMNS[1:])}, custom fields)",
            )
        )
    missing = sorted(required - set(names))
    if missing:
        found.append(
            SpecIssue(
                Location(shown, line, 1),
                f"the campaign's templates use {', '.join(missing)} without a default, but the "
                "file has no such column; add it, or give the variable a default in the spec",
            )
        )
    issues.extend(found)
    return None if found else names


def _control_issue(
    shown: str, line: int, raw: list[str], index: int, name: str, cell: str
) -> SpecIssue:
    """The issue of a cell holding a control character, located at that character in the raw
    record (its lines as read), or at the row when it cannot be found there."""
    text = "".join(raw)
    offsets = field_offsets(text)
    char = cell[find_control(cell)]
    at = text.find(char, offsets[index]) if index < len(offsets) else -1
    where = Location(shown, line, 1)
    if at >= 0:
        start = 0
        for number, raw_line in enumerate(raw):
            if at < start + len(raw_line):
                where = Location(shown, line + number, at - start + 1)
                break
            start += len(raw_line)
    problem = control_problem(cell)
    return SpecIssue(where, f"line {line}: {name}: {problem}; remove it from the cell")


def _parse_row(
    line: int,
    record: list[str],
    header: list[str],
    shown: str,
    required: frozenset[str],
    raw: Callable[[], list[str]] | None = None,
) -> tuple[NewLead | None, list[SpecIssue]]:
    problems: list[str] = []
    if len(record) != len(header):
        problems.append(
            f"row has {len(record)} fields but the header has {len(header)}; "
            "quote cells that contain a comma"
        )
        return None, [SpecIssue(Location(shown, line, 1), f"line {line}: {problems[0]}")]
    if not "".join(record).isprintable():  # else no cell holds a control character
        lines = raw() if raw else []
        controls = [
            _control_issue(shown, line, lines, index, name, cell)
            for index, (name, cell) in enumerate(zip(header, record, strict=True))
            if find_control(cell.strip()) >= 0
        ]
        if controls:
            return None, controls
    cells: dict[str, str] = {}
    for name, cell in zip(header, record, strict=True):
        value = cell.strip()
        if not value:
            continue
        if len(value) > MAX_CELL_CHARS:
            problems.append(f"{name}: {len(value):,} characters; the limit is {MAX_CELL_CHARS:,}")
        else:
            cells[name] = value
    address, error = check_address(cells.get("email", ""))
    if error:
        problems.append(error)
    tz = cells.get("timezone")
    if tz:
        tz_error = check_timezone(tz)
        if tz_error:
            problems.append(tz_error)
    for name in sorted(required):
        if name not in cells:
            problems.append(
                f"{name} is blank, but the templates use {{{{ {name} }}}} without a default"
            )
    if problems:
        label = f"line {line}" + (f" ({address})" if not error else "")
        return None, [SpecIssue(Location(shown, line, 1), f"{label}: {p}") for p in problems]
    get = cells.get
    custom = {k: v for k, v in cells.items() if k not in _KNOWN}
    return NewLead(
        address,
        get("first_name"),
        get("last_name"),
        get("company"),
        tz,
        fields_json(custom),
        "active",
    ), []


class _RowParser:
    """:func:`_parse_row` for one header, with a fast path for the common row (right number
    of cells, no control character, cells under the limit, a plain address email-validator
    accepts, a known time zone, the required variables set): the same lead as the full path,
    which any other row takes (so every message and location comes from it)."""

    def __init__(self, header: list[str], shown: str, required: frozenset[str]) -> None:
        self.header, self.shown, self.required = header, shown, required
        index = {name: i for i, name in enumerate(header)}
        self.width = len(header)
        self.email = index["email"]
        # a missing column reads the blank cell fast() appends to the record (index -1)
        self.known = [index.get(name, -1) for name in LEAD_COLUMNS[1:]]
        self.custom = [(i, name) for i, name in enumerate(header) if name not in _KNOWN]
        self.needed = [index[name] for name in sorted(required) if name in index]
        # the verdicts of csvrows.fast_address on each domain seen (False: full path)
        self.domains: dict[str, tuple[str, int] | bool] = {}
        self.zones: set[str] = set()  # time zones found valid
        self.fast = self._fast()

    def parse(
        self, line: int, record: list[str], raw: Callable[[], list[str]]
    ) -> tuple[NewLead | None, list[SpecIssue]]:
        lead = self.fast(record)
        if lead is not None:
            return lead, []
        return _parse_row(line, record, self.header, self.shown, self.required, raw)

    def _domain(self, domain: str) -> tuple[str, int] | bool:
        """csvrows.fast_address's verdict on the domain: (ASCII form, octets + 1) or False."""
        checked = domain.isascii() and domain_verdict(domain)
        verdict = (checked[0], checked[1] + 1) if checked else False
        if len(self.domains) >= 65_536:
            self.domains.clear()
        self.domains[domain] = verdict
        return verdict

    def _fast(self) -> Callable[[list[str]], NewLead | None]:
        """``fast(record)``: the lead of a plainly valid row (csvrows.fast_address inlined,
        its domain verdict kept per domain), or None: take :meth:`parse`'s full path. The hot
        path of an import: a closure over this header's positions, the checks it needs only."""
        width, email = self.width, self.email
        first, last, company, zone = self.known
        custom, needed = self.custom, self.needed
        domains, zones, verdict = self.domains, self.zones, self._domain
        limit, longest, dot_atom, new = MAX_CELL_CHARS, MAX_ADDRESS, DOT_ATOM.match, _lead

        def fast(record: list[str]) -> NewLead | None:
            if len(record) != width:
                return None
            joined = "".join(record)
            if len(joined) > limit or not joined.isprintable():
                return None
            local, at, domain = record[email].strip().rpartition("@")
            checked = domains.get(domain)
            if checked is None:
                checked = at and verdict(domain)  # no "@": the full path says why
            if not checked or len(local) + checked[1] > longest or dot_atom(local) is None:
                return None
            if needed:
                for i in needed:
                    if not record[i].strip():
                        return None
            record.append("")  # the cell of a column the file lacks (index -1)
            tz = record[zone].strip() or None
            if tz is not None and tz not in zones:
                if check_timezone(tz) is not None:
                    record.pop()
                    return None
                zones.add(tz)
            return new(  # type: ignore[no-any-return]
                NewLead,
                (
                    f"{local.lower()}@{checked[0]}",
                    record[first].strip() or None,
                    record[last].strip() or None,
                    record[company].strip() or None,
                    tz,
                    fields_json({name: v for i, name in custom if (v := record[i].strip())})
                    if custom
                    else "{}",
                    "active",
                ),
            )

        return fast


_lead = tuple.__new__  # a NewLead from a tuple without NamedTuple's Python-level __new__


def import_leads(
    session: Session,
    campaign: Campaign,
    path: Path,
    *,
    shown: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> LeadImport:
    """Import the CSV at ``path`` into ``campaign`` (see the module doc). Writes through
    ``session``'s connection in batches (lead_writer.py: bulk, linear); the caller commits (and
    audits). ``progress`` is called with the bytes read so far."""
    shown = shown or str(path)
    result = LeadImport(shown, campaign.key)
    spec = spec_of(campaign)
    required = spec.required_variables()
    problem = csv_file_problem(path, MAX_FILE_BYTES)
    if problem is None:
        try:
            handle = path.open("rb")
        except OSError as exc:
            problem = f"cannot read file: {(exc.strerror or type(exc).__name__).lower()}"
    if problem:
        result.issues.append(SpecIssue(Location(shown), problem))
        result.complete = False
        return result
    issues: list[SpecIssue] = []
    assert campaign.id is not None
    screen = _Screen(session, campaign)
    sort = functools.partial(screen.sort, result) if screen.active else None
    writer = writer_for(session, campaign.id, utcnow(), sort)
    with handle:
        stream = CsvStream(handle)
        parser: _RowParser | None = None
        try:
            for line, record in iter_records(None, shown, issues, reader=stream.reader):
                header = _header(record, line, shown, required, issues)
                if header is None:
                    result.complete = False
                else:
                    parser = _RowParser(header, shown, required)
                break
            if parser is not None:
                _read_rows(stream, parser, result, issues, writer.add, progress)
        finally:
            counts = writer.finish()
        result.created, result.suppressed, result.merged = counts
        if progress:
            progress(stream.bytes_read)
        if parser is None and result.complete and not issues:
            issues.append(SpecIssue(Location(shown), "file is empty; write a header line first"))
            result.complete = False
    if any("malformed" in i.message or "UTF-8" in i.message or "NUL" in i.message for i in issues):
        result.complete = False
    result.issues = issues
    return result


def _too_many(shown: str, line: int) -> SpecIssue:
    return SpecIssue(Location(shown, line, 1), f"more than {MAX_ROWS:,} rows; split it")


def _read_rows(
    stream: CsvStream,
    parser: _RowParser,
    result: LeadImport,
    issues: list[SpecIssue],
    store: Callable[[list[NewLead]], None],
    progress: Callable[[int], None] | None,
) -> None:
    """The rows after the header, as csvrows.iter_records reads them (blank records skipped,
    a read error ends them with its issue), handed to ``store`` in batches of BATCH. The hot
    loop of an import: a plainly valid row costs one call (``parser.fast``)."""
    reader, shown, fast, size = stream.reader, parser.shown, parser.fast, BATCH
    batch: list[NewLead] = []
    rows, end = result.rows, reader.line_num
    try:
        for record in reader:
            line, end = end + 1, reader.line_num
            row = fast(record)
            if row is None:
                if not "".join(record).strip():
                    continue
                rows += 1
                if rows > MAX_ROWS:
                    issues.append(_too_many(shown, line))
                    result.complete = False
                    break
                row, row_issues = parser.parse(
                    line, record, functools.partial(stream.raw, line, end)
                )
                if row is None:
                    result.rejected += 1
                    issues.extend(row_issues[: max(0, MAX_ISSUES - len(issues))])
                    continue
            else:
                rows += 1
                if rows > MAX_ROWS:
                    issues.append(_too_many(shown, line))
                    result.complete = False
                    break
            batch.append(row)
            if len(batch) >= size:
                store(batch)
                batch = []
                if progress:
                    progress(stream.bytes_read)
    except (csv.Error, UnicodeDecodeError) as exc:
        issues.append(read_issue(exc, shown, end + 1))
    result.rows = rows
    if batch:
        store(batch)


class _Screen:
    """Suppressed and forgotten addresses among new rows, asked a batch at a time; nothing is
    asked (nor hashed) when no suppression applies to the campaign at all."""

    def __init__(self, session: Session, campaign: Campaign) -> None:
        self.session = session
        self.campaign = campaign
        table = Suppression.__table__
        self.active = (
            session.execute(
                sa.select(table.c.id).where(_matching(campaign.tenant, campaign.key)).limit(1)
            ).first()
            is not None
        )

    def sort(self, result: LeadImport, rows: list[NewLead]) -> list[NewLead]:
        """The rows to store (forgotten people left out, counted), suppressed ones marked."""
        if not self.active:
            return rows
        hashes = {row.email: email_hash(row.email) for row in rows}
        c = self.campaign
        suppressed = suppressed_hashes(self.session, hashes.values(), c.tenant, c.key)
        if not suppressed:
            return rows
        forgotten = _forgotten(self.session, suppressed)
        kept: list[NewLead] = []
        for row in rows:
            hashed = hashes[row.email]
            if hashed in forgotten:
                result.skipped_forgotten += 1
            elif hashed in suppressed:
                kept.append(row._replace(status="suppressed"))
            else:
                kept.append(row)
        return kept


def _forgotten(session: Session, hashes: Any) -> set[str]:
    table = Suppression.__table__
    wanted = list(hashes)
    query = sa.select(table.c.email_hash).where(
        table.c.email_hash.in_(wanted),
        table.c.scope == "global",
        table.c.email.is_(None),  # only a forgotten person's entries have no address
    )
    return set(session.execute(query).scalars())
