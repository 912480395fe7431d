"""API keys: create (the token is returned once), list, revoke, rotate, and ``authenticate``.

Token: ``pgk_<prefix>_<secret>``. The stored ``secret_hash`` is HMAC-SHA256(prefix, secret);
comparison is constant-time (``hmac.compare_digest``). Every change is audited with the actor
that made it (``user@host`` from the CLI, ``key:<prefix>`` through the API); never the secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from penguinctl import clock
from penguinctl.errors import NotFound, Unauthenticated, UsageError
from penguinctl.identity import permissions
from penguinctl.identity.principal import Principal
from penguinctl.identity.tables import ApiKey, status
from penguinctl.state import audit
from penguinctl.state.columns import aware

TOKEN_PREFIX = "pgk_"
_TOKEN = re.compile(r"pgk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
DEFAULT_OVERLAP = timedelta(hours=24)
LAST_USED_EVERY = timedelta(seconds=60)  # last_used_at is written at most this often per key


def _hash(prefix: str, secret: str) -> str:
    return hmac.new(prefix.encode(), secret.encode(), hashlib.sha256).hexdigest()


def _secret() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def _check_role(tenant: str, role: str) -> None:
    if not permissions.is_role(role, tenant=bool(tenant)):
        roles = permissions.TENANT_ROLES if tenant else permissions.PLATFORM_ROLES
        kind = "a tenant key" if tenant else "a platform key (no --tenant)"
        raise UsageError(f"role {role!r} is not a role of {kind}", hint=f"use {', '.join(roles)}")


def create(
    session: Session,
    *,
    tenant: str,
    role: str,
    actor: str,
    name: str = "",
    expires_in: timedelta | None = None,
) -> tuple[ApiKey, str]:
    """A new key and its token (the only time the secret exists outside the caller's hands)."""
    _check_role(tenant, role)
    now = clock.now()
    prefix = secrets.token_hex(6)
    secret = _secret()
    key = ApiKey(
        prefix=prefix,
        tenant=tenant,
        role=role,
        name=name,
        secret_hash=_hash(prefix, secret),
        created_by=actor,
        created_at=now,
        expires_at=now + expires_in if expires_in else None,
    )
    session.add(key)
    audit.record(
        session,
        actor=actor,
        tenant=tenant,
        action="apikey.create",
        resource=f"apikey/{prefix}",
        result="ok",
        details={"role": role, "expires_at": key.expires_at.isoformat() if expires_in else None},
    )
    session.flush()
    return key, f"{TOKEN_PREFIX}{prefix}_{secret}"


def list_keys(
    session: Session, *, tenant: str | None = None, include_revoked: bool = True
) -> list[ApiKey]:
    stmt = select(ApiKey)
    if tenant is not None:
        stmt = stmt.where(ApiKey.tenant == tenant)
    if not include_revoked:
        stmt = stmt.where(col(ApiKey.revoked_at).is_(None))
    return list(session.exec(stmt.order_by(ApiKey.tenant, ApiKey.created_at, ApiKey.prefix)))


def get(session: Session, prefix: str, *, tenant: str | None = None) -> ApiKey:
    """The key ``prefix`` (of ``tenant`` when given: another tenant's key is not found)."""
    prefix = prefix.removeprefix(TOKEN_PREFIX).removeprefix("key:")
    key = session.get(ApiKey, prefix)
    if key is None or (tenant is not None and key.tenant != tenant):
        raise NotFound(f"no API key {prefix!r}", hint="list them with `penguinctl apikeys list`")
    return key


def revoke(session: Session, prefix: str, *, actor: str, tenant: str | None = None) -> ApiKey:
    from penguinctl.identity import cache

    key = get(session, prefix, tenant=tenant)
    cache.forget_key(key.prefix)
    if key.revoked_at is None:
        key.revoked_at = clock.now()
        key.previous_hash = None
        session.add(key)
        audit.record(
            session,
            actor=actor,
            tenant=key.tenant,
            action="apikey.revoke",
            resource=f"apikey/{key.prefix}",
            result="ok",
        )
        session.flush()
    return key


def rotate(
    session: Session,
    prefix: str,
    *,
    actor: str,
    overlap: timedelta = DEFAULT_OVERLAP,
    tenant: str | None = None,
) -> tuple[ApiKey, str]:
    """A new secret for the key (same prefix, role and tenant); the old secret keeps working
    for ``overlap`` (0: not at all)."""
    from penguinctl.identity import cache

    key = get(session, prefix, tenant=tenant)
    cache.forget_key(key.prefix)
    if status(key) != "active":
        raise UsageError(f"API key {key.prefix} is {status(key)}", hint="create a new key")
    now = clock.now()
    secret = _secret()
    key.previous_hash = key.secret_hash if overlap > timedelta(0) else None
    key.previous_valid_until = now + overlap if overlap > timedelta(0) else None
    key.secret_hash = _hash(key.prefix, secret)
    key.rotated_at = now
    session.add(key)
    audit.record(
        session,
        actor=actor,
        tenant=key.tenant,
        action="apikey.rotate",
        resource=f"apikey/{key.prefix}",
        result="ok",
        details={"overlap_seconds": int(overlap.total_seconds())},
    )
    session.flush()
    return key, f"{TOKEN_PREFIX}{key.prefix}_{secret}"


def parse_token(token: str) -> tuple[str, str]:
    """(prefix, secret) of a well-formed token; ``Unauthenticated`` otherwise."""
    m = _TOKEN.fullmatch(token.strip())
    if m is None:
        raise Unauthenticated("malformed API key", hint="expected pgk_<prefix>_<secret>")
    return m.group(1), m.group(2)


def verify(key: ApiKey, secret: str, now: datetime) -> bool:
    """Does ``secret`` open ``key`` now (current secret, or the previous one in its overlap)?"""
    offered = _hash(key.prefix, secret)
    current = hmac.compare_digest(offered, key.secret_hash)
    previous = False
    if key.previous_hash and key.previous_valid_until is not None:
        matches = hmac.compare_digest(offered, key.previous_hash)
        previous = matches and aware(key.previous_valid_until) > now
    return current or previous


def authenticate(session: Session, token: str, *, now: datetime | None = None) -> Principal:
    """The principal of ``token``, or ``Unauthenticated`` (one message for every reason a key
    does not work except expiry and revocation, which the key's holder may act on)."""
    now = now or clock.now()
    prefix, secret = parse_token(token)
    key = session.get(ApiKey, prefix)
    if key is None or not verify(key, secret, now):
        raise Unauthenticated("invalid API key")
    state = status(key, now)
    if state != "active":
        raise Unauthenticated(f"API key {prefix} is {state}", hint="ask for a new key")
    touch(session, key, now)
    return Principal(key_id=key.prefix, role=key.role, tenant=key.tenant or None)


def lifetime(session: Session, prefix: str, now: datetime) -> float:
    """Seconds the key ``prefix`` stays valid (for the cache): until expiry or an overlap ends."""
    key = session.get(ApiKey, prefix)
    if key is None:
        return 0.0
    ends = [aware(t) for t in (key.expires_at, key.previous_valid_until) if t is not None]
    return min([(t - now).total_seconds() for t in ends], default=float("inf"))


def touch(session: Session, key: ApiKey, now: datetime) -> None:
    """Record the key's use (at most every ``LAST_USED_EVERY``: not one write per request)."""
    last = aware(key.last_used_at) if key.last_used_at else None
    if last is None or now - last >= LAST_USED_EVERY:
        key.last_used_at = now
        session.add(key)
        session.commit()
