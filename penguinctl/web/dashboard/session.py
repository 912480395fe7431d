"""Dashboard sessions: an API key exchanged for a signed cookie.

The cookie carries no secret: ``{key id, session nonce, issued, last seen}`` signed with an HMAC
key kept in the secrets backend (``serve/dashboard``, created on first use, shared by every
replica). Every request re-checks the API key through identity (a revoked key ends its sessions
at once), refuses a session idle for longer than ``IDLE`` or older than ``MAX_AGE`` (both read
from ``penguinctl.clock``, so tests fast-forward them) and, when more than ``REFRESH`` has passed,
re-issues the cookie with the new last-seen time.

Cookie attributes: ``HttpOnly``, ``SameSite=Strict``, ``Path=/dashboard``, ``Secure`` when the
request came over https. The CSRF token of a session is ``HMAC(key, "csrf:" + nonce)``: every
form carries it and every POST is refused (403) without it. Before login, the login form is
protected the same way by a random pre-session cookie (double submit).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

SECRET_PATH = "serve/dashboard"
COOKIE = "penguinctl_session"
LOGIN_COOKIE = "penguinctl_login"
IDLE = timedelta(minutes=30)
MAX_AGE = timedelta(hours=12)
REFRESH = timedelta(minutes=1)
PATH = "/dashboard"


def session_key(backend: Any) -> bytes:
    """The HMAC key of session cookies (32 random bytes, created on first use)."""
    fields = backend.get(SECRET_PATH)
    if fields is None or "key" not in fields:
        backend.put(SECRET_PATH, {"key": secrets.token_urlsafe(32)})
        fields = backend.get(SECRET_PATH) or {}
    return fields["key"].reveal().encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Session:
    key_id: str
    nonce: str
    issued: float  # epoch seconds (from penguinctl.clock)
    seen: float

    def csrf(self, key: bytes) -> str:
        return hmac.new(key, f"csrf:{self.nonce}".encode(), hashlib.sha256).hexdigest()


def new_session(key_id: str, now: float) -> Session:
    return Session(key_id, secrets.token_urlsafe(16), now, now)


def encode(session: Session, key: bytes) -> str:
    body = json.dumps(
        {"k": session.key_id, "n": session.nonce, "i": session.issued, "s": session.seen},
        separators=(",", ":"),
    ).encode()
    sig = hmac.new(key, body, hashlib.sha256).digest()
    return f"{_b64(body)}.{_b64(sig)}"


def decode(value: str | None, key: bytes, now: float) -> Session | None:
    """The session in a cookie, or None when missing, forged, idle too long or too old."""
    if not value or len(value) > 1024 or "." not in value:
        return None
    body_text, _, sig_text = value.partition(".")
    try:
        body, sig = _unb64(body_text), _unb64(sig_text)
        if not hmac.compare_digest(sig, hmac.new(key, body, hashlib.sha256).digest()):
            return None
        data = json.loads(body)
        session = Session(str(data["k"]), str(data["n"]), float(data["i"]), float(data["s"]))
    except (ValueError, KeyError, TypeError):
        return None
    if now - session.seen > IDLE.total_seconds() or now - session.issued > MAX_AGE.total_seconds():
        return None
    if session.seen > now + 300:  # from the future: not ours
        return None
    return session


def needs_refresh(session: Session, now: float) -> bool:
    return now - session.seen >= REFRESH.total_seconds()


def cookie_args(secure: bool) -> dict[str, Any]:
    return {"httponly": True, "samesite": "strict", "secure": secure, "path": PATH}


def login_token() -> str:
    return secrets.token_urlsafe(24)


def same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))
