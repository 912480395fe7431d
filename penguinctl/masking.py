"""Masking secret values that reach text meant for people or files: log records, error lines,
debug logs.

Every value revealed from a ``SecretValue`` in this process is registered (values shorter than
``MIN_LENGTH`` are not: masking "yes" would mangle every line). ``mask(text)`` replaces each
registered value with ``******``; ``install()`` makes every log record created afterwards pass
through it, whatever logger or handler it goes to (a record factory, so records propagated from
library loggers such as paramiko's or httpx's are covered too). The registry is created on first
use, never at import.
"""

from __future__ import annotations

import logging
import threading

MASK = "******"
MIN_LENGTH = 6


class SecretRegistry:
    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self._ordered: list[str] = []
        self._dirty = False  # sorted on the next mask(), not at every add (thousands of keys)

    def add(self, value: str) -> None:
        if not isinstance(value, str) or len(value) < MIN_LENGTH or value in self._values:
            return
        with self._lock:
            self._values.add(value)
            # a multi-line value (a PEM key) also leaks line by line
            for line in value.splitlines():
                if len(line) >= 16:
                    self._values.add(line)
            self._dirty = True

    def _sorted(self) -> list[str]:
        if self._dirty:
            with self._lock:
                if self._dirty:
                    # longest first, so a value containing another is masked whole
                    self._ordered = sorted(self._values, key=len, reverse=True)
                    self._dirty = False
        return self._ordered

    def mask(self, text: str) -> str:
        if not text:
            return text
        for value in self._sorted():
            if value in text:
                text = text.replace(value, MASK)
        return text

    def __len__(self) -> int:
        return len(self._values)


_registry: SecretRegistry | None = None
_registry_lock = threading.Lock()


def registry() -> SecretRegistry:
    global _registry
    if _registry is None:
        with _registry_lock:
            if _registry is None:
                _registry = SecretRegistry()
    return _registry


def mask(text: str) -> str:
    return registry().mask(text) if _registry is not None else text


_installed = False


def install() -> None:
    """Mask registered values in every log record created from now on (idempotent)."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if _registry is not None and len(_registry):
            try:
                message = record.getMessage()
            except Exception:  # a broken format string: leave it to logging's own handling
                return record
            masked = _registry.mask(message)
            if masked != message:
                record.msg, record.args = masked, None
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
