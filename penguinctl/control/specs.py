"""The spec documents each apply recorded, per tenant: what jobs run from without ``-f``.

``record`` is called by ``apply`` (and ``destroy``) with the loaded spec. Each document is stored
normalised: the validated model dumped as JSON (defaults written out, relative paths of
``file:`` secret references and zone directories made absolute, so the document means the same
wherever it is read back), with the sha256 of its canonical JSON. Secret fields hold references
only: a spec never contains a value (``spec.refs``), so neither does this table.

A tenant's documents are replaced as a set by each apply of that tenant (the engine already
treats a spec as the whole truth about its tenants: what is missing is deleted); platform
documents (no ``metadata.tenant``) are added or updated, never removed by an apply.

``load`` rebuilds a ``SpecSet`` from the recorded documents through the same loader and checks
as files (their locations read ``state:specs/<tenant>``), so a job plans exactly what ``plan -f``
would.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from penguinctl.control.tables import SpecDocument
from penguinctl.state import audit
from penguinctl.state.models import utcnow

PLATFORM = ""
_T = SpecDocument.__table__


def owner(doc: Any) -> str:
    """The tenant a document belongs to (a Tenant document: itself; ``""``: the platform)."""
    if doc.kind == "Tenant":
        return doc.name
    return doc.metadata.tenant or PLATFORM


def _absolute_refs(model: Any, data: Any, base: Path) -> Any:
    """``data`` (``model`` dumped) with relative ``file:`` references made absolute."""
    from pydantic import BaseModel

    from penguinctl.providers.secrets.resolve import absolute_ref
    from penguinctl.spec.refs import SecretRef

    if isinstance(model, SecretRef):
        return absolute_ref(model, base)
    if isinstance(model, BaseModel) and isinstance(data, dict):
        for name in type(model).model_fields:
            if name in data:
                data[name] = _absolute_refs(getattr(model, name), data[name], base)
    elif isinstance(model, list | tuple) and isinstance(data, list):
        return [_absolute_refs(m, d, base) for m, d in zip(model, data, strict=False)]
    elif isinstance(model, dict) and isinstance(data, dict):
        for key in list(data):
            if key in model:
                data[key] = _absolute_refs(model[key], data[key], base)
    return data


def normalise(doc: Any) -> dict[str, Any]:
    """One document as recorded (see the module docstring)."""
    spec = doc.spec.model_dump(mode="json", exclude_none=True)
    if '"file:' in json.dumps(spec):  # walking every model is the cost: only when there is one
        spec = _absolute_refs(doc.spec, spec, doc.source_dir)
    if doc.kind == "DnsProvider" and spec.get("type") == "zonefile" and spec.get("directory"):
        directory = Path(spec["directory"]).expanduser()
        if not directory.is_absolute():
            spec["directory"] = str((doc.source_dir / directory).resolve())
    return {
        "apiVersion": "penguinctl/v1",
        "kind": doc.kind,
        "metadata": doc.metadata.model_dump(mode="json", exclude_none=True, exclude_defaults=True),
        "spec": spec,
    }


def content_hash(document: dict[str, Any]) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Recorded:
    tenant: str
    kind: str
    name: str
    sha256: str
    document: dict[str, Any]
    run_id: int | None
    actor: str
    recorded_at: Any

    def to_json(self, *, with_document: bool = False) -> dict[str, Any]:
        out = {
            "tenant": self.tenant,
            "kind": self.kind,
            "name": self.name,
            "sha256": self.sha256,
            "run_id": self.run_id,
            "actor": self.actor,
            "recorded_at": self.recorded_at.isoformat() if self.recorded_at else None,
        }
        if with_document:
            out["document"] = self.document
        return out


def record(
    db: Any,
    specs: Any,
    *,
    tenants: Iterable[str],
    run_id: int | None,
    actor: str,
    destroy: bool = False,
) -> dict[str, int]:
    """Record (or, with ``destroy``, forget) the documents of ``specs`` for ``tenants``.
    Returns counts: added, changed, unchanged, removed. One transaction, audited per tenant."""
    wanted: dict[tuple[str, str, str], dict[str, Any]] = {}
    for doc in specs.documents:
        wanted[(owner(doc), doc.kind, doc.name)] = normalise(doc)
    tenants = sorted(set(tenants))
    counts = {"added": 0, "changed": 0, "unchanged": 0, "removed": 0}
    now = utcnow()
    touched: dict[str, list[str]] = {}
    with db.begin() as conn:
        scope = sorted({t for t, _, _ in wanted} | set(tenants))
        rows = conn.execute(
            sa.select(_T.c.id, _T.c.tenant, _T.c.kind, _T.c.name, _T.c.sha256).where(
                _T.c.tenant.in_(scope)
            )
        ).all()
        existing = {(r.tenant, r.kind, r.name): r for r in rows}
        if destroy:
            doomed = [existing[k].id for k in wanted if k in existing and k[0] in tenants]
            doomed += [r.id for k, r in existing.items() if k[0] in tenants and k[0] != PLATFORM]
            doomed = sorted(set(doomed))
            if doomed:
                conn.execute(sa.delete(_T).where(_T.c.id.in_(doomed)))
            counts["removed"] = len(doomed)
            for k, r in existing.items():
                if r.id in doomed:
                    touched.setdefault(k[0], []).append(f"-{k[1]}/{k[2]}")
        else:
            inserts: list[dict[str, Any]] = []
            for key, document in wanted.items():
                digest = content_hash(document)
                row = existing.get(key)
                values = {
                    "sha256": digest,
                    "document": document,
                    "run_id": run_id,
                    "actor": actor,
                    "recorded_at": now,
                }
                if row is None:
                    inserts.append({"tenant": key[0], "kind": key[1], "name": key[2], **values})
                    counts["added"] += 1
                    touched.setdefault(key[0], []).append(f"+{key[1]}/{key[2]}")
                elif row.sha256 != digest:
                    conn.execute(sa.update(_T).where(_T.c.id == row.id).values(**values))
                    counts["changed"] += 1
                    touched.setdefault(key[0], []).append(f"~{key[1]}/{key[2]}")
                else:
                    counts["unchanged"] += 1
            if inserts:  # one executemany
                conn.execute(sa.insert(_T), inserts)
            stale = [
                r.id
                for k, r in existing.items()
                if k[0] in tenants and k[0] != PLATFORM and k not in wanted
            ]
            if stale:
                conn.execute(sa.delete(_T).where(_T.c.id.in_(stale)))
                counts["removed"] = len(stale)
                for k, r in existing.items():
                    if r.id in stale:
                        touched.setdefault(k[0], []).append(f"-{k[1]}/{k[2]}")
        events = [
            {
                "actor": actor,
                "tenant": tenant,
                "action": "spec.forgotten" if destroy else "spec.recorded",
                "resource": f"specs/{tenant or 'platform'}",
                "result": "ok",
                "run_id": run_id,
                "details": {"documents": changes[:50], "count": len(changes)},
            }
            for tenant, changes in sorted(touched.items())
        ]
        audit.record_many(conn, events)
    return counts


def listing(db: Any, tenant: str | None = None) -> list[Recorded]:
    """Recorded documents (of ``tenant`` and the platform's, or all), in a stable order."""
    stmt = sa.select(_T).order_by(_T.c.tenant, _T.c.kind, _T.c.name)
    if tenant is not None:
        stmt = stmt.where(_T.c.tenant.in_([tenant, PLATFORM]))
    with db.connect() as conn:
        rows = conn.execute(stmt).all()
    from penguinctl.state.columns import aware

    return [
        Recorded(
            r.tenant, r.kind, r.name, r.sha256, r.document, r.run_id, r.actor, aware(r.recorded_at)
        )
        for r in rows
    ]


def recorded_tenants(db: Any) -> list[str]:
    """Tenants with recorded documents (not the platform)."""
    with db.connect() as conn:
        rows = conn.execute(sa.select(_T.c.tenant).distinct().where(_T.c.tenant != PLATFORM))
        return sorted(r.tenant for r in rows)


def as_yaml(documents: Iterable[Recorded], *, header: str = "") -> str:
    """Documents as one multi-document YAML text (``state specs --export`` writes these)."""
    import yaml

    parts = [header] if header else []
    for rec in documents:
        parts.append(f"# {rec.kind}/{rec.name} sha256:{rec.sha256[:16]} run {rec.run_id}\n")
        parts.append(yaml.safe_dump(rec.document, sort_keys=False, allow_unicode=True))
        parts.append("---\n")
    if parts and parts[-1] == "---\n":
        parts.pop()
    return "".join(parts)


def load(db: Any, tenants: Iterable[str] | None = None) -> Any:
    """A ``SpecSet`` of the recorded documents of ``tenants`` (every tenant when None) plus the
    platform's. Raises ``NotFound`` when nothing is recorded for them, ``SpecError`` when the
    documents no longer pass today's checks."""
    from penguinctl.errors import NotFound, SpecError, SpecIssue
    from penguinctl.spec.checks import run_checks
    from penguinctl.spec.documents import Declared, SpecSet
    from penguinctl.spec.loader import RawDocument, SpecFile, parse_bytes
    from penguinctl.spec.validate import validate_document

    records = listing(db)
    wanted = None if tenants is None else set(tenants)
    chosen = [r for r in records if wanted is None or r.tenant in wanted or r.tenant == PLATFORM]
    if wanted is not None and not any(r.tenant in wanted for r in chosen):
        raise NotFound(
            f"no spec recorded for tenant {', '.join(sorted(wanted))}",
            hint="apply its spec once (`penguinctl apply -f FILE`), or pass -f",
        )
    if not chosen:
        raise NotFound("no spec recorded yet", hint="apply a spec first, or pass -f")
    by_tenant: dict[str, list[Recorded]] = {}
    for rec in chosen:
        by_tenant.setdefault(rec.tenant, []).append(rec)
    specs = SpecSet()
    issues: list[SpecIssue] = []
    for tenant, recs in sorted(by_tenant.items()):
        shown = f"state:specs/{tenant or 'platform'}"
        parsed = parse_bytes(shown, as_yaml(recs).encode())
        issues.extend(parsed.issues)
        spec_file = SpecFile(shown, Path("/") / "state-specs" / f"{tenant or 'platform'}.yaml")
        for data in parsed.documents:
            raw = RawDocument(data, spec_file)
            kind = data.get("kind")
            if isinstance(kind, str):
                specs.declared.append(Declared(kind, data))
            document, found = validate_document(raw)
            issues.extend(found)
            if document is not None:
                specs.add(document)
    issues.extend(run_checks(specs))
    if issues:
        raise SpecError(issues)
    return specs
