"""Posting failures to a webhook, signed.

The body is JSON (``{"event": "penguinctl.check.failed", "run_id", "failures": [...]}``). Headers:

- ``X-Penguinctl-Timestamp``: Unix seconds when it was sent;
- ``X-Penguinctl-Signature``: ``sha256=`` + hex HMAC-SHA256, keyed with the webhook secret, of
  ``<timestamp>.<body>`` (the timestamp, a dot, then the raw body bytes).

A receiver recomputes the HMAC, compares in constant time and rejects timestamps more than a
few minutes old (replay). The secret comes from ``PENGUINCTL_WEBHOOK_SECRET`` or the secrets
backend at ``notify/webhook`` (field ``secret``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from penguinctl import clock
from penguinctl.errors import ProviderError
from penguinctl.health.results import Result

SIGNATURE_HEADER = "X-Penguinctl-Signature"
TIMESTAMP_HEADER = "X-Penguinctl-Timestamp"
SECRET_PATH = "notify/webhook"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def webhook_secret(env: dict[str, str], secrets: Any) -> str:
    if env.get("PENGUINCTL_WEBHOOK_SECRET"):
        return env["PENGUINCTL_WEBHOOK_SECRET"]
    fields = secrets.get(SECRET_PATH) or {}
    if "secret" not in fields:
        raise ProviderError(
            "no webhook secret: set PENGUINCTL_WEBHOOK_SECRET or store one",
            hint=f"penguinctl secrets put {SECRET_PATH} secret=...",
        )
    return fields["secret"].reveal()


def post(
    url: str,
    secret: str,
    *,
    run_id: int,
    failures: Sequence[Result],
    paused: list[dict],
    timeout: float = 10.0,
    now: float | None = None,
) -> int:
    body = json.dumps(
        {
            "event": "penguinctl.check.failed",
            "run_id": run_id,
            "failures": [f.to_json() for f in failures],
            "paused_campaigns": paused,
        },
        sort_keys=True,
    ).encode()
    ts = str(int(now if now is not None else clock.timestamp()))
    req = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "penguinctl-check",
            TIMESTAMP_HEADER: ts,
            SIGNATURE_HEADER: sign(secret, ts, body),
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        raise ProviderError(f"webhook {url} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ProviderError(f"webhook {url} unreachable: {reason}") from None
