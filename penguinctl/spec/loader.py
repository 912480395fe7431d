"""Find spec files and read them into position-aware documents.

Nothing here raises for bad input: every problem (a missing path, an unreadable or oversized file,
bad encoding, invalid YAML) becomes a :class:`~penguinctl.errors.SpecIssue` with a location.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from penguinctl.errors import Location, SpecIssue
from penguinctl.spec.source import YamlMap
from penguinctl.spec.yamlread import ParsedFile, byte_location, parse_yaml

MAX_FILE_BYTES = 64 * 1024 * 1024
SPEC_SUFFIXES = (".yaml", ".yml")

_UTF8_BOM = b"\xef\xbb\xbf"
_OTHER_BOMS = (
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\xfe\xff", "UTF-16"),
    (b"\xff\xfe", "UTF-16"),
)


@dataclass(frozen=True)
class SpecFile:
    """A file to read: ``shown`` is the path as the user gave it (used in locations)."""

    shown: str
    path: Path  # resolved


@dataclass(frozen=True)
class RawDocument:
    """One YAML document before validation."""

    data: YamlMap
    file: SpecFile

    @property
    def location(self) -> Location:
        return self.data.location


def _walk(directory: Path) -> list[Path]:
    found: list[Path] = []
    for root, dirs, names in os.walk(directory):  # does not follow directory symlinks
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(
            Path(root, name)
            for name in names
            if name.endswith(SPEC_SUFFIXES) and not name.startswith(".")
        )
    return sorted(found, key=lambda p: p.relative_to(directory).parts)


def discover(paths: Sequence[str | Path]) -> tuple[list[SpecFile], list[SpecIssue]]:
    """Expand files and directories (``*.yaml``/``*.yml`` below them, sorted) into spec files.

    A file reached twice is read once. Hidden files and directories are skipped inside a
    directory. A missing path or a directory without spec files is an issue.
    """
    files: list[SpecFile] = []
    issues: list[SpecIssue] = []
    seen: set[Path] = set()
    for given in paths:
        path = Path(given)
        shown = str(given)
        try:
            if path.is_dir():
                candidates = _walk(path)
                if not candidates:
                    issues.append(
                        SpecIssue(Location(shown), "no *.yaml or *.yml files in this directory")
                    )
            elif path.exists():
                candidates = [path]
            else:
                issues.append(SpecIssue(Location(shown), "no such file or directory"))
                continue
            for candidate in candidates:
                resolved = candidate.resolve()
                if resolved not in seen:
                    seen.add(resolved)
                    files.append(SpecFile(str(candidate), resolved))
        except (OSError, ValueError) as exc:
            issues.append(SpecIssue(Location(shown), f"cannot read this path: {_reason(exc)}"))
    return files, issues


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return type(exc).__name__


def read_spec_file(spec_file: SpecFile) -> ParsedFile:
    """Read, decode and parse one file; problems come back as issues, never as exceptions."""
    shown = spec_file.shown
    try:
        with spec_file.path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except (OSError, ValueError) as exc:
        return _failed(Location(shown), f"cannot read file: {_reason(exc)}")
    if len(data) > MAX_FILE_BYTES:
        limit = MAX_FILE_BYTES // (1024 * 1024)
        return _failed(Location(shown), f"file is larger than {limit} MiB; split it")
    return parse_bytes(shown, data)


def parse_bytes(shown: str, data: bytes) -> ParsedFile:
    """Check the encoding of ``data`` (UTF-8; a leading BOM is allowed) and parse it."""
    for bom, name in _OTHER_BOMS:
        if data.startswith(bom):
            return _failed(Location(shown, 1, 1), f"file is {name}-encoded; save it as UTF-8")
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start]
        return _failed(
            byte_location(shown, data, exc.start),
            f"file is not valid UTF-8 (byte 0x{bad:02x}); save it as UTF-8",
        )
    nul = data.find(b"\x00")
    if nul >= 0:
        return _failed(byte_location(shown, data, nul), "NUL byte in file; is it a binary file?")
    return parse_yaml(shown, data)


def _failed(location: Location, message: str) -> ParsedFile:
    return ParsedFile(issues=[SpecIssue(location, message)], complete=False)


def read_documents(
    paths: Sequence[str | Path],
) -> tuple[list[SpecFile], list[RawDocument], list[SpecIssue], bool]:
    """Discover and read every file: (files, documents in load order, issues, all read fully)."""
    files, issues = discover(paths)
    complete = not issues
    documents: list[RawDocument] = []
    for spec_file in files:
        parsed = read_spec_file(spec_file)
        issues.extend(parsed.issues)
        complete = complete and parsed.complete
        documents.extend(RawDocument(data, spec_file) for data in parsed.documents)
    return files, documents, issues, complete
