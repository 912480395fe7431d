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
    """The values to mask, indexed by their first ``MIN_LENGTH`` characters: ``mask`` looks only
    at the values whose prefix occurs in the text (an apply of 1,000 domains registers ~27,000
    PEM lines; trying each of them on every log line and event payload was quadratic)."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self._by_prefix: dict[str, list[str]] = {}

    def _index(self, value: str) -> None:
        self._values.add(value)
        self._by_prefix.setdefault(value[:MIN_LENGTH], []).append(value)

    def add(self, value: str) -> None:
        if not isinstance(value, str) or len(value) < MIN_LENGTH or value in self._values:
            return
        with self._lock:
            self._index(value)
            # a multi-line value (a PEM key) also leaks line by line
            for line in value.splitlines():
                if len(line) >= 16 and line not in self._values:
                    self._index(line)

    def mask(self, text: str) -> str:
        if not self._values or not text or len(text) < MIN_LENGTH:
            return text
        by_prefix = self._by_prefix
        if len(by_prefix) < 64:  # few values: a substring search each is cheaper
            hits = [g for g in by_prefix if g in text]
        else:
            grams = {text[i : i + MIN_LENGTH] for i in range(len(text) - MIN_LENGTH + 1)}
            hits = grams & by_prefix.keys()
        found = [v for g in hits for v in by_prefix[g]]
        # longest first, so a value containing another is masked whole
        for value in sorted(found, key=len, reverse=True):
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
