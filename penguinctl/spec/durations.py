"""Durations written as a whole number and a unit: ``90s``, ``30m``, ``24h``, ``7d``, ``2w``.

At most ten years (``MAX_DAYS``): longer is a typo, and a far larger number would overflow.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
PATTERN = r"^[0-9]{1,9}[smhdw]$"  # for the JSON Schema (ECMA-262: $ is the end)
_DURATION = re.compile(r"[0-9]{1,9}[smhdw]")
MESSAGE = (
    "a duration is a whole number followed by s, m, h, d or w (for example 90s, 30m, 24h, 7d, 2w)"
)
MAX_DAYS = 3650
TOO_LONG = f"a duration is at most {MAX_DAYS} days (ten years)"


class Duration(timedelta):
    """A ``timedelta`` that remembers how it was written; ``str()`` gives that text back."""

    text: str

    def __new__(cls, text: str) -> Duration:
        """Parse ``text``; raises ``ValueError`` when it is not a duration."""
        cleaned = text.strip() if isinstance(text, str) else ""
        if not _DURATION.fullmatch(cleaned):
            raise ValueError(MESSAGE)
        seconds = int(cleaned[:-1]) * _UNITS[cleaned[-1]]
        if seconds > MAX_DAYS * 86400:
            raise ValueError(TOO_LONG)
        self = super().__new__(cls, seconds=seconds)
        self.text = cleaned
        return self

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Duration({self.text!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Duration, (self.text,))

    @classmethod
    def validate(cls, value: Any) -> Duration:
        """Pydantic hook: accept a ``Duration`` or its text."""
        if isinstance(value, Duration):
            return value
        try:
            return cls(value)
        except ValueError as exc:
            raise PydanticCustomError("duration", str(exc)) from None

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
            "pattern": PATTERN,
            "examples": ["180d", "24h"],
            "description": f"a whole number and s, m, h, d or w; at most {MAX_DAYS}d",
        }
