"""A MailU server's own credentials, in the secrets backend at ``servers/<server>/mailu``.

Fields (product.md section 4):

- ``secret_key``: MailU's ``SECRET_KEY``, 16 characters from ``[A-Z0-9]`` (what MailU's setup
  utility generates with ``secret(16)``);
- ``api_token``: ``API_TOKEN`` for the REST API (``Authorization: Bearer``), 43 URL-safe
  characters (32 random bytes): no quoting problems in ``mailu.env``;
- ``admin_password``: the initial admin account's password, 43 URL-safe characters (32 random
  bytes, the documented strength).

Missing fields are generated on first use when ``create`` is true and written in one ``put``
(existing fields are kept, never regenerated: the running MailU holds them). With ``create``
false a missing secret gives an empty dict (a ``--check`` before the first install).
"""

from __future__ import annotations

import secrets as _random
import string

from penguinctl.providers.secrets.base import SecretsBackend, SecretValue

FIELDS = ("secret_key", "api_token", "admin_password")
_UPPER_DIGITS = string.ascii_uppercase + string.digits


def secret_path(tenant: str | None, server: str) -> str:
    """Where ``server``'s MailU credentials live (``penguinctl.secret_paths``)."""
    from penguinctl import secret_paths

    return secret_paths.server_mailu(tenant, server)


def generate(field: str) -> str:
    if field == "secret_key":
        return "".join(_random.choice(_UPPER_DIGITS) for _ in range(16))
    if field in ("api_token", "admin_password"):
        return _random.token_urlsafe(32)
    raise ValueError(f"unknown MailU credential field {field!r}")


def mailu_credentials(
    backend: SecretsBackend, server: str, *, tenant: str | None, create: bool
) -> dict[str, SecretValue]:
    """The fields of ``<owner>/servers/<server>/mailu``; with ``create``, missing ones are
    generated and stored first. Without ``create`` the dict may be empty or lack fields."""
    path = secret_path(tenant, server)
    stored = backend.get(path) or {}
    missing = [f for f in FIELDS if f not in stored or not stored[f].reveal()]
    if not create or not missing:
        return dict(stored)
    fields = {k: v.reveal() for k, v in stored.items()}
    fields.update({f: generate(f) for f in missing})
    backend.put(path, fields)
    return {k: SecretValue(v) for k, v in fields.items()}


__all__ = ["FIELDS", "generate", "mailu_credentials", "secret_path"]
