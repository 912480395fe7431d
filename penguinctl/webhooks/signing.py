"""Standard Webhooks signatures (through the ``standardwebhooks`` library) and the legacy
``X-Penguinctl-*`` headers of ``check --notify``.

Headers of every delivery::

    webhook-id: evt_...            the event id: the same on every retry (de-duplicate on it)
    webhook-timestamp: 1767225600  Unix seconds of this attempt (product clock)
    webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">[ v1,<with the old secret>]

During a secret rotation's overlap the old secret signs too (space-separated, as the spec
says), so a receiver still holding the old secret keeps verifying. Secrets are ``whsec_`` plus
the base64 of 32 random bytes.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from datetime import UTC, datetime
from functools import lru_cache

SECRET_PREFIX = "whsec_"
LEGACY_TIMESTAMP = "X-Penguinctl-Timestamp"
LEGACY_SIGNATURE = "X-Penguinctl-Signature"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def from_legacy(secret: str) -> str:
    """The ``whsec_`` form of a ``check --notify`` secret (same key bytes, so a receiver keeps
    its secret for both schemes)."""
    return SECRET_PREFIX + base64.b64encode(secret.encode()).decode()


def key_bytes(secret: str) -> bytes:
    raw = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    return base64.b64decode(raw + "==")


@lru_cache(maxsize=256)
def _webhook(secret: str):
    from standardwebhooks import Webhook

    return Webhook(secret)


def signature(secrets_: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one ``v1,...`` per secret, space-separated."""
    when = datetime.fromtimestamp(timestamp, UTC)
    return " ".join(_webhook(s).sign(msg_id, when, body) for s in secrets_)


def headers(
    secrets_: list[str], msg_id: str, timestamp: int, body: bytes, *, legacy: bool = False
) -> dict[str, str]:
    out = {
        "content-type": "application/json",
        "user-agent": "penguinctl-webhooks",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secrets_, msg_id, timestamp, body),
    }
    if legacy:  # `check --notify`'s documented headers, kept for one release
        mac = hmac.new(key_bytes(secrets_[0]), str(timestamp).encode() + b"." + body, "sha256")
        out[LEGACY_TIMESTAMP] = str(timestamp)
        out[LEGACY_SIGNATURE] = "sha256=" + mac.hexdigest()
    return out


__all__ = ["from_legacy", "headers", "key_bytes", "new_secret", "signature"]
