"""The secrets-backend contract.

Paths are relative to the backend's prefix and follow the layout of the product contract
(``penguinctl.secret_paths``: ``tenants/<tenant>/domains/<domain>/dkim/<selector>``, ...). A secret
is a mapping of
string fields to string values (KV v2 shape). Values are returned as ``SecretValue`` so that
``repr``/``str`` never reveal them by accident.

Implementations raise ``SecretError`` for failures with the path (never the value) in the message.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


class SecretValue:
    """A string that does not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The value. It is registered with ``penguinctl.masking`` so that it is masked in log
        records and error messages from now on."""
        from penguinctl.masking import registry

        registry().add(self._value)
        return self._value

    def __repr__(self) -> str:
        return "SecretValue('******')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretValue) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class SecretMeta:
    path: str
    version: int
    created_at: str  # ISO 8601
    updated_at: str


class SecretsBackend(ABC):
    name: str = "secrets"

    @abstractmethod
    def get(self, path: str) -> dict[str, SecretValue] | None:
        """The latest version's fields, or None when the secret does not exist."""

    @abstractmethod
    def put(self, path: str, fields: dict[str, str]) -> SecretMeta:
        """Write a new version (atomically)."""

    @abstractmethod
    def delete(self, path: str) -> None:
        """Destroy every version. Deleting a missing secret is not an error."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Every secret path under ``prefix``, sorted."""

    def children(self, folder: str = "") -> set[str]:
        """Names directly under ``folder`` ("" or ending in "/") that hold secrets: a folder's
        name ends in "/". One listing, not a walk (backends override the walk below)."""
        out = set()
        for path in self.list(folder):
            rest = path[len(folder) :]
            head, slash, _ = rest.partition("/")
            out.add(head + slash)
        return out

    def exists(self, path: str) -> bool:
        return self.get(path) is not None

    def meta(self, path: str) -> SecretMeta | None:
        """Version and times of the latest version (``updated_at`` is when it was written), or
        None when the secret does not exist. Both real backends keep these; a backend that does
        not (a test double) reports version 0 and empty times, which rotation treats as "never
        rotated"."""
        if not self.exists(path):
            return None
        return SecretMeta(path, 0, "", "")
