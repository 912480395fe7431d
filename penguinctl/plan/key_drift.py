"""Drift of secrets: a recorded DKIM key whose private key is gone from the secrets backend, or
is not the key pair whose public half the state store (and DNS) has.

Every key that is published or about to be (phases generated, published, active, retiring) needs
its private key: the active one signs, a new one becomes active. ``key_status`` says ``missing``
(no secret, or no ``private_key`` field), ``unusable`` (not an RSA private key) or ``mismatch``
(its public half differs from the recorded one); None when all is well. Reading is cheap: the
stored ``public_key`` field is compared (as a ``SecretValue``: nothing is revealed); the private key
is parsed only when that field is absent.

``plan`` shows such a key as a change of its ``dkim`` resource (field ``key``); ``apply`` then fails
that change with what to do, never deleting or unpublishing the selector: restore the secret, or
start a new selector with ``penguinctl dkim rotate DOMAIN`` (the old one stays published until the
new one is active). ``dkim status`` and ``secrets rotate`` say "key missing" too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from penguinctl import secret_paths
from penguinctl.dkim_phases import ACTIVE, PUBLISHED_PHASES
from penguinctl.providers.secrets.base import SecretValue
from penguinctl.resources import ResourceKey

FIELD = "key"  # the field of a dkim resource's actual data that carries a problem


def key_status(
    secrets: Any, tenant: str, domain: str, selector: str, public: str | None
) -> str | None:
    """``missing``, ``unusable``, ``mismatch`` or None (the key pair is there and matches)."""
    fields = secrets.get(secret_paths.dkim_key(tenant, domain, selector))
    # compared as SecretValues: revealing registers each value for masking, which thousands of
    # keys in one plan must not pay for
    private = (fields or {}).get("private_key")
    if private is None or private == SecretValue(""):
        return "missing"
    stored = (fields or {}).get("public_key")
    if stored is not None and stored != SecretValue(""):
        return None if not public or stored == SecretValue(public) else "mismatch"
    from penguinctl.dkim import stored_key_info

    try:
        found, _bits = stored_key_info(private.reveal())
    except ValueError:
        return "unusable"
    if public and found != public:
        return "mismatch"
    return None


def needs_key(data: Mapping[str, Any]) -> bool:
    return (data.get("phase") or ACTIVE) in PUBLISHED_PHASES


def dkim_drift(
    recorded: Mapping[ResourceKey, dict[str, Any]], secrets: Any
) -> dict[ResourceKey, str]:
    """The problem of every recorded DKIM key that needs its private key and lacks it."""
    out: dict[ResourceKey, str] = {}
    for key, data in recorded.items():
        if key.kind != "dkim" or not needs_key(data) or not data.get("public_key"):
            continue
        domain, _, selector = key.name.partition("/")
        status = key_status(secrets, key.tenant, domain, selector, data.get("public_key"))
        if status is not None:
            out[key] = status
    return out


def describe(key: ResourceKey, status: str) -> str:
    domain, _, selector = key.name.partition("/")
    what = {"missing": "is missing", "unusable": "is not a usable key",
            "mismatch": "does not match the published public key"}[status]  # fmt: skip
    path = secret_paths.dkim_key(key.tenant, domain, selector)
    return f"dkim/{key.name}: the private key at {path} {what}"


def repair_hint(key: ResourceKey) -> str:
    domain = key.name.partition("/")[0]
    return (
        "restore the secret, or start a new selector with `penguinctl dkim rotate "
        f"{domain}` (this selector stays published until the new one is active)"
    )
