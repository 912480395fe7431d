"""CSV bulk import: one row per sending domain -> validated ``Domain`` documents.

Reads one CSV file (nothing else: no other I/O) and returns every row as a ``DomainEnvelope``,
the same pydantic model a YAML ``Domain`` document is validated with, so the rules are identical.
Every problem is a :class:`~penguinctl.errors.SpecIssue` located at ``FILE:LINE:COL`` (the line
where the row starts in the file, the column where the cell starts), so the output reads like
``penguinctl validate``'s. Nothing here raises for bad input.

Columns (header names are case-insensitive; whitespace around names and cells is ignored):

- ``domain``, ``tenant``, ``server``, ``dns``: required; ``server`` and ``dns`` name a Server and a
  DnsProvider defined in the specs the import is checked against.
- ``mailboxes``: entries separated by ``;``, each ``local:Display Name:daily_limit`` (display name
  and limit optional): ``john:John Smith:40;sara:Sara Lee;info``.
- ``dmarc_policy`` (``none``, ``quarantine``, ``reject``), ``dmarc_rua`` (addresses separated by
  ``;``), ``tracking_host`` (default ``track``), ``tracking_target``.

Layout of the written documents: one file per domain, ``<tenant>/<domain>.yaml``. For git review
of hundreds of domains this beats one file per tenant: an onboarding batch is a set of *new*
files (a pull request adds files and never rewrites a long shared one), two batches for the same
tenant never conflict, a later edit to one client's domain is a one-file diff, offboarding a
client is deleting its file, and re-importing an overlapping CSV only touches the rows that
changed. The tenant directory keeps a tenant's domains together (and lets CODEOWNERS map
tenants to reviewers).

Hostile input is bounded: files over ``MAX_CSV_BYTES``, more than ``MAX_ROWS`` data rows, cells
over ``MAX_CELL_CHARS``, bad encodings, NUL bytes and malformed quoting are each one clear issue.
"""

from __future__ import annotations

import csv
import difflib
import io
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from penguinctl.errors import Location, SpecIssue
from penguinctl.spec.checks import _not_defined
from penguinctl.spec.documents import API_VERSION, NOUNS, DomainEnvelope, SpecSet
from penguinctl.spec.names import check_dns_name
from penguinctl.spec.source import quote
from penguinctl.spec.yamlread import byte_location

MAX_CSV_BYTES = 20 * 1024 * 1024
MAX_ROWS = 100_000
MAX_CELL_CHARS = 10_000
REQUIRED = ("domain", "tenant", "server", "dns")
OPTIONAL = ("mailboxes", "dmarc_policy", "dmarc_rua", "tracking_host", "tracking_target")
COLUMNS = REQUIRED + OPTIONAL
MAILBOX_FORMAT = "local:Display Name:daily_limit, entries separated by ';'"
YAML_HEADER = "# Written by `penguinctl domains import`; a normal spec file from now on.\n"

_UTF8_BOM = b"\xef\xbb\xbf"
_OTHER_BOMS = ((b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"))
_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
# Where a model field is written in the CSV (the pydantic error location -> column).
_FIELD_COLUMNS = {
    ("metadata", "name"): "domain",
    ("metadata", "tenant"): "tenant",
    ("spec", "server"): "server",
    ("spec", "dns"): "dns",
    ("spec", "dmarc", "policy"): "dmarc_policy",
    ("spec", "dmarc", "rua"): "dmarc_rua",
    ("spec", "tracking", "host"): "tracking_host",
    ("spec", "tracking", "target"): "tracking_target",
    ("spec", "tracking"): "tracking_target",
    ("spec", "mailboxes"): "mailboxes",
}


@dataclass(frozen=True)
class CsvRow:
    """One data row as written: stripped cells by column name, and where each cell starts."""

    file: str
    line: int
    cells: dict[str, str]  # in header order
    label: str  # "domain NAME", or "row" when the domain cell is not a valid name
    text: str | None  # the row's line, when it is on one line (to find cells' columns)

    def at(self, column: str) -> Location:
        """Where ``column``'s cell starts (column 1 when the row spans several lines)."""
        return Location(self.file, self.line, self._columns.get(column, 1))

    @cached_property
    def _columns(self) -> dict[str, int]:
        found = _field_columns(self.text) if self.text is not None else []
        return dict(zip(self.cells, found, strict=False))


@dataclass(frozen=True)
class ImportedDomain:
    """A valid row: the Domain document it becomes and the row it came from."""

    envelope: DomainEnvelope
    row: CsvRow

    @property
    def name(self) -> str:
        return self.envelope.metadata.name

    @property
    def tenant(self) -> str:
        return self.envelope.metadata.tenant

    @property
    def path(self) -> PurePosixPath:
        """Where the document goes below the output directory: ``<tenant>/<domain>.yaml``."""
        return PurePosixPath(self.tenant, f"{self.name}.yaml")

    def to_yaml(self) -> str:
        """The document as YAML: only what the row set (defaults stay implicit)."""
        data = self.envelope.model_dump(mode="json", exclude_unset=True)
        text = yaml.dump(
            data, Dumper=_DUMPER, sort_keys=False, allow_unicode=True, default_flow_style=False
        )
        return YAML_HEADER + text


@dataclass
class CsvImport:
    """What one CSV file holds: its rows, the valid ones as documents, and every issue."""

    file: str
    rows: list[CsvRow] = field(default_factory=list)
    domains: list[ImportedDomain] = field(default_factory=list)
    issues: list[SpecIssue] = field(default_factory=list)


# -- reading ----------------------------------------------------------------------------------
def read_csv(path: Path, shown: str | None = None) -> CsvImport:
    """Read, parse and validate the CSV file at ``path`` (``shown`` names it in locations)."""
    shown = str(path) if shown is None else shown
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CSV_BYTES + 1)
    except (OSError, ValueError) as exc:
        reason = exc.strerror.lower() if isinstance(exc, OSError) and exc.strerror else "error"
        return _failed(shown, Location(shown), f"cannot read file: {reason}")
    return parse_csv(shown, data)


def parse_csv(shown: str, data: bytes) -> CsvImport:
    """Parse and validate CSV ``data`` (UTF-8, a leading BOM allowed)."""
    if len(data) > MAX_CSV_BYTES:
        limit = MAX_CSV_BYTES // (1024 * 1024)
        return _failed(shown, Location(shown), f"file is larger than {limit} MiB; split it")
    for bom, name in _OTHER_BOMS:
        if data.startswith(bom):
            return _failed(shown, Location(shown, 1, 1), f"file is {name}-encoded; save as UTF-8")
    data = data.removeprefix(_UTF8_BOM)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = byte_location(shown, data, exc.start)
        message = f"file is not valid UTF-8 (byte 0x{data[exc.start]:02x}); save it as UTF-8"
        return _failed(shown, where, message)
    nul = text.find("\x00")
    if nul >= 0:
        where = byte_location(shown, data, len(text[:nul].encode()))
        return _failed(shown, where, "NUL byte in file; is it a binary file?")
    result = CsvImport(shown)
    _read_rows(text, result)
    seen: dict[str, int] = {}
    for row in result.rows:
        duplicate = _is_duplicate(row, seen, result.issues)
        domain = _build(row, result.issues)
        if domain is not None and not duplicate:
            result.domains.append(domain)
    if not result.rows and not result.issues:
        empty = "file is empty" if not text.strip() else "no domains: the file has only a header"
        message = f"{empty}; write a header line ({','.join(REQUIRED)}) and one row per domain"
        result.issues.append(SpecIssue(Location(shown), message))
    return result


def _failed(shown: str, location: Location, message: str) -> CsvImport:
    return CsvImport(shown, issues=[SpecIssue(location, message)])


class _Lines:
    """The file's lines (split like the csv module does), remembering those of the last record."""

    def __init__(self, text: str) -> None:
        self._lines = iter(io.StringIO(text, newline=""))
        self.record: list[str] = []

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.record.append(line)
        return line


def _read_rows(text: str, result: CsvImport) -> None:
    lines = _Lines(text)
    reader = csv.reader(lines, strict=True, skipinitialspace=True)
    header: list[str] | None = None
    count = 0
    while True:
        start = reader.line_num + 1
        lines.record = []
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            message = f"malformed CSV in the row starting here: {exc} ({_csv_hint(exc)})"
            result.issues.append(SpecIssue(Location(result.file, start, 1), message))
            return
        if not any(cell.strip() for cell in record):
            continue  # a blank line, or a spreadsheet's empty row (",,,")
        text = lines.record[0] if len(lines.record) == 1 else None
        if header is None:
            header = _header(record, _field_columns(text) if text else [], start, result)
            if header is None:
                return
            continue
        count += 1
        if count > MAX_ROWS:
            where = Location(result.file, start, 1)
            message = f"more than {MAX_ROWS:,} rows; split the file"
            result.issues.append(SpecIssue(where, message))
            return
        if len(record) != len(header):
            where = Location(result.file, start, 1)
            message = (
                f"row has {len(record)} fields but the header has {len(header)}; "
                "quote cells that contain a comma"
            )
            result.issues.append(SpecIssue(where, message))
            continue
        cells = {name: cell.strip() for name, cell in zip(header, record, strict=True)}
        result.rows.append(CsvRow(result.file, start, cells, _label(cells["domain"]), text))


def _csv_hint(exc: csv.Error) -> str:
    text = str(exc)
    if "end of data" in text:
        return "is a '\"' quote left open?"
    if "field limit" in text:
        return "a cell this long is usually a '\"' quote left open"
    return 'inside a quoted cell, write a \'"\' as two: ""'


def _label(domain: str) -> str:
    """How messages name a row: ``domain NAME`` when its domain cell is a valid name."""
    try:
        return f"domain {check_dns_name(domain)}"
    except ValueError:
        return "row"


def field_offsets(text: str) -> list[int]:
    """The 0-based index in ``text`` (one record, which may span lines inside quotes) where
    each of its fields starts, by the reader's rules."""
    offsets = [0]
    state = "start"  # start of a field, "plain" text, inside "quoted" text, just "closed" it
    for index, char in enumerate(text):
        if state == "quoted":
            if char == '"':
                state = "closed"
        elif char == ",":
            offsets.append(index + 1)
            state = "start"
        elif char == '"' and state in ("start", "closed"):
            state = "quoted"  # an opening quote, or the second of a doubled one
        elif char != " " or state != "start":
            state = "plain"
    return offsets


def _field_columns(line: str) -> list[int]:
    """The 1-based column where each field of a one-line record starts."""
    return [offset + 1 for offset in field_offsets(line)]


def _header(record: list[str], cols: list[int], line: int, result: CsvImport) -> list[str] | None:
    names = [cell.strip().lower() for cell in record]
    issues: list[SpecIssue] = []
    for index, name in enumerate(names):
        where = Location(result.file, line, cols[index] if index < len(cols) else 1)
        if not name:
            issues.append(SpecIssue(where, f"column {index + 1} of the header has no name"))
        elif name in names[:index]:
            issues.append(SpecIssue(where, f"column {quote(name)} appears twice in the header"))
        elif name not in COLUMNS:
            close = difflib.get_close_matches(name, COLUMNS, n=1)
            hint = f"did you mean {quote(close[0])}? " if close else ""
            message = f"unknown column {quote(name)}; {hint}known columns: {', '.join(COLUMNS)}"
            issues.append(SpecIssue(where, message))
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        message = (
            f"missing required column(s): {', '.join(missing)}; the header must name "
            f"{', '.join(REQUIRED)} (any order)"
        )
        issues.append(SpecIssue(Location(result.file, line, 1), message))
    result.issues.extend(issues)
    return None if issues else names


# -- validating -------------------------------------------------------------------------------
def _is_duplicate(row: CsvRow, seen: dict[str, int], issues: list[SpecIssue]) -> bool:
    name = row.cells["domain"].lower().removesuffix(".")
    first = seen.setdefault(name, row.line) if name else row.line
    if first != row.line:
        message = f"domain {name} is listed twice (first at line {first}); remove one"
        issues.append(SpecIssue(row.at("domain"), message))
    return first != row.line


def _build(row: CsvRow, issues: list[SpecIssue]) -> ImportedDomain | None:
    """The row's Domain document, or None (the reasons appended to ``issues``)."""
    found: list[SpecIssue] = []
    reported: set[str] = set()  # columns with an issue already: no second one from the model

    def problem(column: str, message: str) -> None:
        found.append(SpecIssue(row.at(column), f"{row.label}: {column}: {message}"))
        reported.add(column)

    for column, cell in row.cells.items():
        if len(cell) > MAX_CELL_CHARS:
            problem(column, f"{len(cell):,} characters long; the limit is {MAX_CELL_CHARS:,}")
        elif column in REQUIRED and not cell:
            problem(column, "empty; every row needs " + ", ".join(REQUIRED))
    mailboxes, bad_format = _mailboxes(row.cells.get("mailboxes", ""))
    if bad_format and "mailboxes" not in reported:
        problem("mailboxes", bad_format)
    try:
        envelope = DomainEnvelope.model_validate(_document(row, mailboxes))
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_input=False):
            issue = _issue(row, error)
            if issue[0] not in reported:
                found.append(issue[1])
    else:
        locals_ = [mailbox.local for mailbox in envelope.spec.mailboxes]
        twice = sorted({local for index, local in enumerate(locals_) if local in locals_[:index]})
        if twice:
            problem("mailboxes", f"{', '.join(map(quote, twice))} listed twice; remove one")
    issues.extend(found)
    return None if found else ImportedDomain(envelope, row)


def _document(row: CsvRow, mailboxes: list[dict[str, str]]) -> dict[str, Any]:
    cells = row.cells
    spec: dict[str, Any] = {"server": cells["server"], "dns": cells["dns"]}
    dmarc: dict[str, Any] = {}
    if cells.get("dmarc_policy"):
        dmarc["policy"] = cells["dmarc_policy"]
    if cells.get("dmarc_rua"):
        dmarc["rua"] = [uri.strip() for uri in cells["dmarc_rua"].split(";") if uri.strip()]
    if dmarc:
        spec["dmarc"] = dmarc
    tracking = {
        key: cells[f"tracking_{key}"] for key in ("host", "target") if cells.get(f"tracking_{key}")
    }
    if tracking:
        spec["tracking"] = tracking
    if mailboxes:
        spec["mailboxes"] = mailboxes
    return {
        "apiVersion": API_VERSION,
        "kind": "Domain",
        "metadata": {"name": cells["domain"], "tenant": cells["tenant"]},
        "spec": spec,
    }


def _mailboxes(cell: str) -> tuple[list[dict[str, str]], str | None]:
    """``local:Display Name:limit;...`` -> mailbox mappings (or a problem)."""
    boxes: list[dict[str, str]] = []
    for entry in (part.strip() for part in cell.split(";")):
        if not entry:
            continue
        parts = [part.strip() for part in entry.split(":")]
        if len(parts) > 3:
            return [], f"{quote(entry)} has {len(parts)} parts; write {MAILBOX_FORMAT}"
        box = {"local": parts[0]}
        for key, value in zip(("display_name", "daily_limit"), parts[1:], strict=False):
            if value:
                box[key] = value
        boxes.append(box)
    return boxes, None


def _issue(row: CsvRow, error: ErrorDetails) -> tuple[str, SpecIssue]:
    """A pydantic error as (the column it is about, an issue at that cell)."""
    loc = tuple(error["loc"])
    column = _FIELD_COLUMNS.get(loc[:3]) or _FIELD_COLUMNS.get(loc[:2], "domain")
    message = error["msg"].removeprefix("Value error, ")
    message = message[:1].lower() + message[1:]
    if loc[:2] == ("spec", "mailboxes") and len(loc) > 2 and isinstance(loc[2], int):
        detail = f"entry {loc[2] + 1}" + (f", {loc[3]}" if len(loc) > 3 else "")
        message = f"{detail}: {message}"
    elif error["type"] == "missing" and column == "tracking_target":
        message = "required when tracking_host is set"
    return column, SpecIssue(row.at(column), f"{row.label}: {column}: {message}")


# -- checking against the specs ---------------------------------------------------------------
_REFERENCES = (("tenant", "Tenant"), ("server", "Server"), ("dns", "DnsProvider"))


def check_against(
    result: CsvImport, specs: SpecSet, replaceable: Collection[str] = ()
) -> list[SpecIssue]:
    """Tenants, servers and DNS providers named in the rows exist in ``specs`` (a server or
    provider of the row's tenant, or a shared one) and no domain is already defined there.

    A domain in ``replaceable`` may already exist: its document lives in the very file this
    import would write (a re-import), so it is replaced rather than duplicated.
    """
    issues: list[SpecIssue] = []
    hints: dict[tuple[str, str], str] = {}  # the same typo on 10,000 rows: one difflib search
    for row in result.rows:
        for column, kind in _REFERENCES:
            wanted = row.cells[column]
            names = specs.by_kind(kind)
            if wanted and wanted not in names and len(wanted) <= MAX_CELL_CHARS:
                if (kind, wanted) not in hints:
                    hints[kind, wanted] = _not_defined(kind, set(names), wanted)
                message = f"{row.label}: {column} {quote(wanted)} {hints[kind, wanted]}"
                issues.append(SpecIssue(row.at(column), message))
    for domain in result.domains:
        existing = specs.domains.get(domain.name)
        if existing is not None and domain.name not in replaceable:
            where = f"{existing.location.file}:{existing.location.line}"
            message = (
                f"domain {domain.name} is already defined in the specs ({where}); remove the row, "
                "or change that document instead"
            )
            issues.append(SpecIssue(domain.row.at("domain"), message))
        issues.extend(_ownership(domain, specs))
    return issues


def _ownership(domain: ImportedDomain, specs: SpecSet) -> list[SpecIssue]:
    """The rule of ``check_tenant_ownership``: the tenant's own server/provider, or a shared one."""
    issues: list[SpecIssue] = []
    if domain.tenant not in specs.tenants:
        return issues  # reported as an undefined tenant
    spec = domain.envelope.spec
    for column, target in (
        ("server", specs.servers.get(spec.server)),
        ("dns", specs.dns_providers.get(spec.dns)),
    ):
        if target is None or target.tenant in (None, domain.tenant):
            continue
        noun = NOUNS[target.kind][0]
        message = (
            f"domain {domain.name}: {column} {quote(target.name)} belongs to tenant "
            f"{quote(target.tenant)}, not {quote(domain.tenant)}; use a {noun} of tenant "
            f"{quote(domain.tenant)} or a shared one (without metadata.tenant)"
        )
        issues.append(SpecIssue(domain.row.at(column), message))
    return issues
