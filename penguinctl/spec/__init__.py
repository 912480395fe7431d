"""The spec engine: load YAML tenant specs into typed, cross-checked documents.

``load_specs(paths)`` returns a :class:`SpecSet` or raises :class:`~penguinctl.errors.SpecError`
listing every issue found, each with its ``file:line:col``. ``json_schema()`` describes one
document for editors.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from penguinctl.errors import Location, SpecError, SpecIssue

if TYPE_CHECKING:
    from penguinctl.spec.documents import (
        API_VERSION,
        KINDS,
        BackupPolicyDoc,
        DnsProviderDoc,
        Document,
        DomainDoc,
        Metadata,
        ServerDoc,
        SpecSet,
        TenantDoc,
    )
    from penguinctl.spec.durations import Duration
    from penguinctl.spec.models import Mailbox
    from penguinctl.spec.refs import SecretRef
    from penguinctl.spec.schema import json_schema

# Imported on first use: importing a light submodule (``penguinctl.spec.loader``, the YAML
# reader the playbook loader shares) must not build every spec model (~0.1 s).
_LAZY = {
    **dict.fromkeys(
        (
            "API_VERSION",
            "KINDS",
            "BackupPolicyDoc",
            "DnsProviderDoc",
            "Document",
            "DomainDoc",
            "Metadata",
            "ServerDoc",
            "SpecSet",
            "TenantDoc",
        ),
        "documents",
    ),
    "Duration": "durations",
    "Mailbox": "models",
    "SecretRef": "refs",
    "json_schema": "schema",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "API_VERSION",
    "KINDS",
    "BackupPolicyDoc",
    "DnsProviderDoc",
    "Document",
    "DomainDoc",
    "Duration",
    "Mailbox",
    "Metadata",
    "SecretRef",
    "ServerDoc",
    "SpecSet",
    "TenantDoc",
    "json_schema",
    "load_specs",
]


@contextmanager
def _gc_paused() -> Iterator[None]:
    # Loading allocates millions of small acyclic objects; the cyclic collector would rescan
    # them again and again (it makes a 10,000-domain load several times slower).
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_specs(paths: Sequence[str | Path]) -> SpecSet:
    """Load, validate and cross-check the spec files at ``paths`` (files or directories).

    Raises :class:`SpecError` with every issue found (YAML, schema and cross-document), each
    located at ``file:line:col``. Cross-document checks run only when every file could be read
    completely, so a broken file does not also produce "not defined" issues elsewhere.
    """
    from penguinctl.spec.checks import run_checks
    from penguinctl.spec.documents import DOC_TYPES, Declared, SpecSet
    from penguinctl.spec.loader import read_documents
    from penguinctl.spec.validate import validate_document

    with _gc_paused():
        files, raw_documents, issues, complete = read_documents(paths)
        specs = SpecSet(files=sorted(f.path for f in files))
        for raw in raw_documents:
            kind = raw.data.get("kind")
            if isinstance(kind, str) and kind in DOC_TYPES:
                specs.declared.append(Declared(kind, raw.data))
            document, found = validate_document(raw)
            issues.extend(found)
            if document is not None:
                specs.add(document)
        if complete:
            issues.extend(run_checks(specs))
        if not issues and not raw_documents:
            shown = ", ".join(str(p) for p in paths) or "(no paths given)"
            issues.append(SpecIssue(Location(shown), "no spec documents found"))
    if issues:
        raise SpecError(issues)
    return specs
