"""Reading text out of hostile mail: anyone can write to a campaign mailbox.

- :func:`part_text`: a MIME part's text in its declared charset when Python knows it as a text
  encoding (``charset=x-nonsense``, ``zlib_codec`` or a broken name fall back to UTF-8), bad
  bytes replaced, at most ``limit`` characters decoded.
- :func:`clean`: a value from a message made safe to store (one line: control characters
  such as NUL, which PostgreSQL refuses in text, become spaces; undecodable bytes, which the
  email package keeps as surrogates, become U+FFFD), at most ``limit`` characters.
- :func:`header`: a header's value as text (``email`` may return a ``Header`` object, or
  raise for a malformed one), cleaned.
- :func:`param`: a Content-Type parameter as text (RFC 2231 values come back as tuples).
"""

from __future__ import annotations

import codecs
import re
from email.message import Message
from email.utils import collapse_rfc2231_value
from typing import Any

MAX_MESSAGE_BYTES = 1024 * 1024  # bytes of a message fetched (headers and the start of it)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def _codec(charset: str | None) -> str:
    if not charset:
        return "utf-8"
    try:
        info = codecs.lookup(charset)
    except (LookupError, ValueError, TypeError):
        return "utf-8"
    return info.name if getattr(info, "_is_text_encoding", True) else "utf-8"


def part_text(part: Message, limit: int) -> str:
    """The text of ``part`` (see the module doc); '' when it has none."""
    raw = part.get_payload(decode=True)
    if not isinstance(raw, bytes) or not raw:
        return ""
    raw = raw[: limit * 4]  # no charset needs more than 4 bytes a character
    try:
        text = raw.decode(_codec(part.get_content_charset()), "replace")
    except Exception:  # a codec that fails in its own way: the bytes as UTF-8
        text = raw.decode("utf-8", "replace")
    return text[:limit]


def clean(value: Any, limit: int) -> str:
    """``value`` as one line of at most ``limit`` characters that any state store accepts."""
    text = value if isinstance(value, str) else str(value)
    text = _CONTROL.sub(" ", text[: limit * 2])
    return text.encode("utf-8", "replace").decode("utf-8")[:limit].strip()


def header(msg: Message, name: str, limit: int = 998) -> str:
    """The header ``name`` of ``msg`` as clean text ('' when missing or unreadable)."""
    try:
        value = msg.get(name)
        return "" if value is None else clean(value, limit)
    except Exception:  # a malformed header object
        return ""


def param(msg: Message, name: str) -> str:
    """The Content-Type parameter ``name`` as lowercase text ('' when missing)."""
    value = msg.get_param(name)
    if value is None:
        return ""
    return clean(collapse_rfc2231_value(value), 200).lower()  # type: ignore[arg-type]
