"""The ``dkim`` provider: DKIM key pairs, kept in the secrets backend.

A ``dkim`` resource is named ``<domain>/<selector>``; its data is ``{"domain", "selector",
"algorithm": "rsa", "bits": 2048, "phase", "phase_since", "public_key"}`` where ``public_key``
(base64 DER SubjectPublicKeyInfo) and ``phase_since`` are outputs filled in at apply time (see
``penguinctl.dkim_phases``; a created key gets the phase its change asks for, ``active`` by
default). The private key lives ONLY in the
secrets backend, at ``domains/<domain>/dkim/<selector>`` with the fields ``private_key`` (PKCS#8
PEM) and ``public_key``; it never appears in returned data, messages or reprs.

- create: a secret already at the path (a crash after the ``put`` and before the state commit) is
  adopted: its public key is derived from the stored private key. Otherwise a key is generated
  and stored. Creates are batched in chunks of ``CREATE_CHUNK`` and their keys generated in
  parallel threads (``dkim.generate_many``), each change still getting its own result.
- delete: the secret is destroyed (deleting a missing one is fine).
- update: only ``bits``/``algorithm`` can differ, and changing them means a new key: refused,
  rotate instead.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Hashable, Sequence
from typing import Any

from penguinctl import clock
from penguinctl.dkim import generate_many, stored_key_info
from penguinctl.dkim_phases import ACTIVE, DKIM_OUTPUTS
from penguinctl.errors import ProviderError
from penguinctl.plan.changes import Action, Change, ChangeResult
from penguinctl.providers.base import Provider
from penguinctl.providers.secrets.base import SecretsBackend

CREATE_CHUNK = 32
SUPPORTED_ALGORITHMS = ("rsa",)
OUTPUTS = DKIM_OUTPUTS
_SEGMENT = re.compile(r"[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?")


def _now() -> str:
    return clock.now().isoformat()


def _new_key_data(change: Change) -> dict[str, Any]:
    """A created key's data: a domain's first key starts active; rotation asks for generated."""
    after = dict(change.after or {})
    after["phase"] = after.get("phase") or ACTIVE
    after["phase_since"] = after.get("phase_since") or _now()
    return after


def secret_path(tenant: str, domain: str, selector: str) -> str:
    """Where the key pair of ``selector`` of ``domain`` of ``tenant`` lives in the secrets
    backend (``penguinctl.secret_paths``)."""
    from penguinctl import secret_paths

    return secret_paths.dkim_key(tenant, domain, selector)


class DkimProvider(Provider):
    max_parallel = 1  # a batch already generates its keys on every core
    isolate_failures = True  # a chunk holds unrelated domains

    def __init__(self, name: str, secrets: SecretsBackend, *, workers: int | None = None) -> None:
        super().__init__(name)
        self.secrets = secrets
        self.workers = workers  # key generation threads; None: one per CPU
        self._lock = threading.Lock()
        self._creates = 0

    def batch_key(self, change: Change) -> Hashable:
        """Creates go in chunks of ``CREATE_CHUNK`` (keys generated in parallel); the rest alone."""
        if change.action is Action.CREATE:
            with self._lock:
                n = self._creates
                self._creates += 1
            return ("create", n // CREATE_CHUNK)
        return ("one", change.key)

    # -- helpers ------------------------------------------------------------------------------
    @staticmethod
    def _ids(change: Change) -> tuple[str, str]:
        domain, slash, selector = change.key.name.partition("/")
        if not slash or not _SEGMENT.fullmatch(domain) or not _SEGMENT.fullmatch(selector):
            raise ProviderError(f"{change.key}: a DKIM key is named <domain>/<selector>")
        for data in (change.before, change.after):
            if data and (data.get("domain", domain), data.get("selector", selector)) != (
                domain,
                selector,
            ):
                raise ProviderError(f"{change.key}: domain/selector do not match the key name")
        return domain, selector

    @staticmethod
    def _wanted(change: Change) -> tuple[str, int]:
        after = change.after or {}
        algorithm = after.get("algorithm", "rsa")
        bits = after.get("bits", 2048)
        if algorithm not in SUPPORTED_ALGORITHMS:
            raise ProviderError(
                f"{change.key}: DKIM algorithm {algorithm!r} is not supported",
                hint=f"use one of {', '.join(SUPPORTED_ALGORITHMS)}",
            )
        if not isinstance(bits, int) or bits < 1024:
            raise ProviderError(f"{change.key}: RSA DKIM keys need at least 1024 bits")
        return algorithm, bits

    def _adopt(self, change: Change, path: str, fields: dict[str, Any], bits: int) -> str:
        """The public key of a key pair already stored at ``path`` (checked against the spec)."""
        private = fields.get("private_key")
        if private is None:
            raise ProviderError(
                f"{change.key}: secret {path} exists but has no private_key field",
                hint="delete that secret so a new key is generated, then re-run apply",
            )
        try:
            pem = private.reveal()
            public, size = stored_key_info(pem)
        except ValueError:
            raise ProviderError(
                f"{change.key}: secret {path} does not hold a usable RSA private key",
                hint="delete that secret so a new key is generated, then re-run apply",
            ) from None
        if size != bits:
            raise ProviderError(
                f"{change.key}: secret {path} holds a {size}-bit key but the spec asks for {bits}",
                hint=f"set bits: {size} for this domain, or delete the secret to get a new key",
            )
        stored_public = fields.get("public_key")
        if stored_public is None or stored_public.reveal() != public:
            self.secrets.put(path, {"private_key": pem, "public_key": public})
        return public

    # -- contract -----------------------------------------------------------------------------
    def apply_batch(self, changes: Sequence[Change]) -> list[ChangeResult]:
        data: list[dict[str, Any] | None] = [None] * len(changes)
        to_generate: dict[int, list[tuple[int, str]]] = {}  # bits -> [(index, path)]
        for i, change in enumerate(changes):
            domain, selector = self._ids(change)
            path = secret_path(change.key.tenant, domain, selector)
            if change.action is Action.DELETE:
                continue
            _, bits = self._wanted(change)
            if change.action is Action.UPDATE:
                data[i] = self._update(change, path)
                continue
            existing = self.secrets.get(path)
            if existing is not None:
                data[i] = {
                    **_new_key_data(change),
                    "public_key": self._adopt(change, path, existing, bits),
                }
            else:
                to_generate.setdefault(bits, []).append((i, path))

        for bits, items in to_generate.items():
            pairs = generate_many(len(items), bits=bits, workers=self.workers)
            for (i, path), pair in zip(items, pairs, strict=True):
                self.secrets.put(
                    path, {"private_key": pair.private_pem, "public_key": pair.public_b64}
                )
                data[i] = {**_new_key_data(changes[i]), "public_key": pair.public_b64}

        for i, change in enumerate(changes):
            if change.action is Action.DELETE:
                domain, selector = self._ids(change)
                self.secrets.delete(secret_path(change.key.tenant, domain, selector))
                data[i] = None
        return [ChangeResult(change=c, data=d) for c, d in zip(changes, data, strict=True)]

    def _update(self, change: Change, path: str) -> dict[str, Any]:
        before, after = change.before or {}, change.after or {}
        if before.get("key"):  # drift of secrets (plan.key_drift): never papered over
            from penguinctl.plan import key_drift

            status = key_drift.key_status(
                self.secrets, change.key.tenant, *self._ids(change), before.get("public_key")
            )
            if status is not None:
                raise ProviderError(
                    key_drift.describe(change.key, status), hint=key_drift.repair_hint(change.key)
                )
            before = {k: v for k, v in before.items() if k != "key"}  # restored meanwhile
        fixed_before = {k: v for k, v in before.items() if k not in OUTPUTS}
        fixed_after = {k: v for k, v in after.items() if k not in OUTPUTS}
        if fixed_before != fixed_after:
            fields = sorted(
                k
                for k in set(fixed_before) | set(fixed_after)
                if fixed_before.get(k) != fixed_after.get(k)
            )
            raise ProviderError(
                f"{change.key}: changing {', '.join(fields)} of an existing DKIM key is not "
                "supported; a different key needs a new selector",
                hint="keep the key as it is; `penguinctl dkim rotate DOMAIN` makes a new key "
                "(a new dated selector) with the spec's settings",
            )
        public = before.get("public_key")
        if not public:
            existing = self.secrets.get(path)
            if existing is None:
                raise ProviderError(
                    f"{change.key}: the key is recorded but secret {path} is missing",
                    hint="remove the domain's key from the spec's state or restore the secret",
                )
            public = self._adopt(change, path, existing, after.get("bits", 2048))
        kept = {k: before[k] for k in OUTPUTS if k in before}
        return {**after, **kept, "public_key": public}
