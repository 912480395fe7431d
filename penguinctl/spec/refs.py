"""References to secrets: ``vault:PATH#KEY``, ``env:NAME``, ``file:PATH``, ``keystore:NAME``.

A spec never holds a secret value, only one of these references. Error messages about a secret
field never repeat what was written there: it may be a real password.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

Scheme = Literal["vault", "env", "file", "keystore"]
SCHEMES: tuple[Scheme, ...] = ("vault", "env", "file", "keystore")
MESSAGE = (
    "secret fields take a reference (vault:PATH#KEY, env:NAME, file:PATH or keystore:NAME), "
    "not a value"
)
_PATTERNS: dict[str, re.Pattern[str]] = {
    "vault": re.compile(r"vault:([A-Za-z0-9_.@/-]+)#([A-Za-z0-9_.-]+)"),
    "env": re.compile(r"env:([A-Za-z_][A-Za-z0-9_]*)"),
    "file": re.compile(r"file:([^\x00-\x1f#]+)"),
    "keystore": re.compile(r"keystore:([A-Za-z0-9_.@/-]+)"),
}
JSON_PATTERN = (
    r"^(vault:[A-Za-z0-9_.@/-]+#[A-Za-z0-9_.-]+|env:[A-Za-z_][A-Za-z0-9_]*"
    r"|file:[^\u0000-\u001f#]+|keystore:[A-Za-z0-9_.@/-]+)$"
)


@dataclass(frozen=True)
class SecretRef:
    """Where a secret lives. ``key`` is set for vault references only."""

    scheme: Scheme
    path: str
    key: str | None = None

    @classmethod
    def parse(cls, text: str) -> SecretRef:
        """Parse a reference; raises ``ValueError`` (without the text) when it is not one."""
        if isinstance(text, str):
            scheme = text.partition(":")[0]
            pattern = _PATTERNS.get(scheme)
            match = pattern.fullmatch(text) if pattern else None
            if match:
                key = match.group(2) if scheme == "vault" else None
                return cls(scheme, match.group(1), key)  # type: ignore[arg-type]
        raise ValueError(MESSAGE)

    def __str__(self) -> str:
        if self.scheme == "vault":
            return f"vault:{self.path}#{self.key}"
        return f"{self.scheme}:{self.path}"

    def resolve_file(self, base_dir: Path) -> Path:
        """For a ``file:`` reference: its path, relative paths taken from ``base_dir``."""
        if self.scheme != "file":
            raise ValueError(f"{self} is not a file: reference")
        path = Path(self.path).expanduser()
        return path if path.is_absolute() else base_dir / path

    @classmethod
    def validate(cls, value: Any) -> SecretRef:
        """Pydantic hook: accept a ``SecretRef`` or its text; never echo the input."""
        if isinstance(value, SecretRef):
            return value
        try:
            return cls.parse(value)
        except ValueError:
            raise PydanticCustomError("secret_ref", MESSAGE) from None

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls.validate, serialization=core_schema.to_string_ser_schema()
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "string",
            "pattern": JSON_PATTERN,
            "description": "a secret reference: vault:PATH#KEY, env:NAME, file:PATH, keystore:NAME",
        }
