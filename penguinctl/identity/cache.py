"""A short-lived, per-process cache of authenticated keys, so a busy client does not cost a
state-store lookup per request. An entry lives ``TTL`` seconds at most (and never past the key's
expiry); revoking or rotating a key in this process forgets it at once, elsewhere (the CLI,
another ``serve`` replica) within ``TTL``. Entries are keyed by the SHA-256 of the whole token:
the cache never holds a token."""

from __future__ import annotations

import hashlib
import threading
import time

from penguinctl.identity.principal import Principal

TTL = 2.0
MAX_ENTRIES = 10_000
_entries: dict[str, tuple[float, Principal]] = {}
_lock = threading.Lock()


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def lookup(token_digest: str) -> Principal | None:
    hit = _entries.get(token_digest)
    if hit is None:
        return None
    if hit[0] <= time.monotonic():
        with _lock:
            _entries.pop(token_digest, None)
        return None
    return hit[1]


def remember(token_digest: str, principal: Principal, seconds: float = TTL) -> None:
    if seconds <= 0:
        return
    with _lock:
        if len(_entries) >= MAX_ENTRIES:
            _entries.clear()
        _entries[token_digest] = (time.monotonic() + min(seconds, TTL), principal)


def forget_key(prefix: str) -> None:
    """Forget every cached token of the key ``prefix`` (revoked or rotated here)."""
    with _lock:
        for k in [k for k, (_, p) in _entries.items() if p.key_id == prefix]:
            del _entries[k]
