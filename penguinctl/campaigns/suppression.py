"""Suppression list: addresses never to mail, per scope, stored hashed.

Scopes: ``global`` (``scope_ref`` ""), ``tenant`` (``scope_ref`` = tenant) and ``campaign``
(``scope_ref`` = ``tenant/campaign``). An entry matches by ``email_hash``, the SHA-256 of the
normalised address (trimmed, lower-cased: local parts are compared case-insensitively, as nearly
every mail provider does). ``email`` keeps the address for operators until the person is
forgotten (then only the hash remains). Entries are never deleted by penguinctl.

Unsubscribes (a verified token) suppress at tenant scope: the person asked this sender to stop,
not only this one sequence. Hard bounces (C2's worker) use :func:`add` with the scope it picks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from penguinctl.campaigns.models import Campaign, Lead, Suppression
from penguinctl.errors import Location, NotFound, SpecIssue, UsageError
from penguinctl.state.models import utcnow

Scope = Literal["global", "tenant", "campaign"]
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_ROWS = 2_000_000
MAX_CELL_CHARS = 1_000
BATCH = 1000


def normalise_email(address: str) -> str:
    """The form addresses are compared in: trimmed and lower-cased."""
    return address.strip().lower()


def email_hash(address: str) -> str:
    """sha256 hex of the normalised address."""
    return hashlib.sha256(normalise_email(address).encode()).hexdigest()


def scope_of(tenant: str | None, campaign: str | None) -> tuple[Scope, str]:
    """``(scope, scope_ref)`` for the CLI's options: no tenant -> global, a tenant -> tenant,
    a tenant and a campaign -> campaign."""
    if campaign and not tenant:
        raise UsageError("--campaign needs --tenant (campaign names are per tenant)")
    if tenant and campaign:
        return "campaign", f"{tenant}/{campaign}"
    if tenant:
        return "tenant", tenant
    return "global", ""


def _matching(tenant: str | None, campaign_key: str | None) -> Any:
    table = Suppression.__table__
    clauses = [sa.and_(table.c.scope == "global", table.c.scope_ref == "")]
    if tenant:
        clauses.append(sa.and_(table.c.scope == "tenant", table.c.scope_ref == tenant))
    if campaign_key:
        clauses.append(sa.and_(table.c.scope == "campaign", table.c.scope_ref == campaign_key))
    return sa.or_(*clauses)


def is_suppressed(session: Session, email: str, tenant: str, campaign_key: str | None) -> bool:
    """Whether ``email`` is suppressed globally, for ``tenant`` or for the campaign
    ``campaign_key`` (``tenant/name``). Called at send time."""
    table = Suppression.__table__
    query = (
        sa.select(table.c.id)
        .where(table.c.email_hash == email_hash(email), _matching(tenant, campaign_key))
        .limit(1)
    )
    return session.execute(query).first() is not None


def suppressed_hashes(
    session: Session, hashes: Iterable[str], tenant: str | None, campaign_key: str | None
) -> set[str]:
    """Which of ``hashes`` are suppressed for (tenant, campaign) (a batch ``is_suppressed``)."""
    table = Suppression.__table__
    wanted = list(dict.fromkeys(hashes))
    found: set[str] = set()
    for start in range(0, len(wanted), BATCH):
        chunk = wanted[start : start + BATCH]
        query = sa.select(table.c.email_hash).where(
            table.c.email_hash.in_(chunk), _matching(tenant, campaign_key)
        )
        found.update(session.execute(query).scalars())
    return found


def _insert_ignore(session: Session, rows: list[dict[str, Any]]) -> int:
    """Insert suppression rows, skipping those that exist; returns how many were new."""
    if not rows:
        return 0
    table = Suppression.__table__
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    statement = insert(table).on_conflict_do_nothing(
        index_elements=["scope", "scope_ref", "email_hash"]
    )
    result = session.execute(statement.returning(table.c.id), rows)
    return len(result.fetchall())


def add(
    session: Session,
    email: str,
    scope: Scope,
    scope_ref: str,
    reason: str,
    *,
    when: datetime | None = None,
) -> bool:
    """Suppress ``email`` in (scope, scope_ref). True when the entry is new. The caller
    audits and commits."""
    _check_scope(scope, scope_ref)
    row = {
        "scope": scope,
        "scope_ref": scope_ref,
        "email_hash": email_hash(email),
        "email": normalise_email(email),
        "reason": reason[:200],
        "created_at": when or utcnow(),
    }
    return _insert_ignore(session, [row]) == 1


def add_hash(session: Session, hashed: str, scope: Scope, scope_ref: str, reason: str) -> bool:
    """Suppress by hash only (no address kept): used when a person is forgotten."""
    _check_scope(scope, scope_ref)
    row = {
        "scope": scope,
        "scope_ref": scope_ref,
        "email_hash": hashed,
        "email": None,
        "reason": reason[:200],
        "created_at": utcnow(),
    }
    return _insert_ignore(session, [row]) == 1


def _check_scope(scope: str, scope_ref: str) -> None:
    ok = (
        (scope == "global" and scope_ref == "")
        or (scope == "tenant" and scope_ref and "/" not in scope_ref)
        or (scope == "campaign" and scope_ref.count("/") == 1)
    )
    if not ok:
        raise UsageError(f"bad suppression scope {scope!r} / {scope_ref!r}")


@dataclass(frozen=True)
class Entry:
    scope: str
    scope_ref: str
    reason: str
    created_at: datetime
    email: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "scope_ref": self.scope_ref,
            "reason": self.reason,
            "created_at": self.created_at.isoformat(),
            "email": self.email,
        }


def check(
    session: Session, email: str, tenant: str | None = None, campaign: str | None = None
) -> list[Entry]:
    """Every entry that suppresses ``email``: all scopes when no tenant is given, else those
    that apply to the tenant (and campaign)."""
    table = Suppression.__table__
    query = sa.select(table).where(table.c.email_hash == email_hash(email))
    if tenant:
        query = query.where(_matching(tenant, f"{tenant}/{campaign}" if campaign else None))
    query = query.order_by(table.c.scope, table.c.scope_ref)
    return [
        Entry(r.scope, r.scope_ref, r.reason, r.created_at, r.email) for r in session.execute(query)
    ]


# -- import -----------------------------------------------------------------------------------
@dataclass
class ImportResult:
    file: str
    added: int = 0
    existing: int = 0
    issues: list[SpecIssue] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "added": self.added,
            "existing": self.existing,
            "errors": [{"location": str(i.location), "message": i.message} for i in self.issues],
        }


def import_file(
    session: Session,
    path: Path,
    scope: Scope,
    scope_ref: str,
    *,
    default_reason: str = "import",
    shown: str | None = None,
) -> ImportResult:
    """Suppress every address in a CSV (``email`` column; optional ``reason``) or a plain list
    (one address per line, no header). Bad rows are reported with their line, good ones added
    (streamed, in batches). The caller commits and audits."""
    from penguinctl.campaigns.csvrows import check_address, column_name, iter_records, open_csv_text

    shown = shown or str(path)
    result = ImportResult(shown)
    _check_scope(scope, scope_ref)
    handle, problem = open_csv_text(path, MAX_FILE_BYTES)
    if problem or handle is None:
        result.issues.append(SpecIssue(Location(shown), problem or "cannot read file"))
        return result
    email_col, reason_col = 0, None
    first = True
    rows = 0
    batch: list[dict[str, Any]] = []
    with handle:
        for line, record in iter_records(handle, shown, result.issues):
            if first:
                first = False
                names = [column_name(cell) for cell in record]
                if "email" in names:  # a header; else a plain list of addresses
                    email_col = names.index("email")
                    reason_col = names.index("reason") if "reason" in names else None
                    continue
            rows += 1
            if rows > MAX_ROWS:
                message = f"more than {MAX_ROWS:,} rows; split the file"
                result.issues.append(SpecIssue(Location(shown, line, 1), message))
                break
            cell = record[email_col].strip() if email_col < len(record) else ""
            if len(cell) > MAX_CELL_CHARS:
                result.issues.append(SpecIssue(Location(shown, line, 1), "cell too long"))
                continue
            address, error = check_address(cell)
            if error:
                result.issues.append(SpecIssue(Location(shown, line, 1), f"line {line}: {error}"))
                continue
            reason = default_reason
            if reason_col is not None and reason_col < len(record) and record[reason_col].strip():
                reason = record[reason_col].strip()[:200]
            batch.append(
                {
                    "scope": scope,
                    "scope_ref": scope_ref,
                    "email_hash": email_hash(address),
                    "email": address,
                    "reason": reason,
                    "created_at": utcnow(),
                }
            )
            if len(batch) >= BATCH:
                _flush(session, batch, result)
    _flush(session, batch, result)
    return result


def _flush(session: Session, batch: list[dict[str, Any]], result: ImportResult) -> None:
    first: dict[str, dict[str, Any]] = {}
    for row in batch:
        first.setdefault(row["email_hash"], row)  # the first reason given wins
    unique = list(first.values())
    added = _insert_ignore(session, unique)
    result.added += added
    result.existing += len(batch) - added
    batch.clear()


# -- unsubscribe ------------------------------------------------------------------------------
def apply_unsubscribe(session: Session, token: str, secret: bytes) -> tuple[Campaign, Lead]:
    """Honour an unsubscribe token: the lead stops (status unsubscribed) and its address is
    suppressed for the campaign's tenant. Idempotent. The caller audits and commits."""
    from penguinctl.campaigns.message import verify_unsubscribe_token

    campaign_id, lead_id = verify_unsubscribe_token(token, secret)
    campaign = session.get(Campaign, campaign_id)
    lead = session.get(Lead, lead_id)
    if campaign is None or lead is None or lead.campaign_id != campaign_id:
        raise NotFound("the campaign or lead of this unsubscribe token no longer exists")
    if lead.status != "forgotten":
        add(session, lead.email, "tenant", campaign.tenant, "unsubscribe")
        if lead.status in ("active", "completed", "suppressed"):
            lead.status = "unsubscribed"
            lead.updated_at = utcnow()
            session.add(lead)
    return campaign, lead
