"""Control characters: what free text (a spec value, a lead's CSV cell) may not hold.

A control character in a value that ends up in a zone file, a mail header, a command line, a
URL or a database row is an injection (a line break adds a zone record or a header) or a crash
(PostgreSQL refuses NUL in text). Refused everywhere: the C0 controls (U+0000-U+001F, including
NUL, TAB, LF and CR), DEL and the C1 controls (U+007F-U+009F), and the Unicode line and
paragraph separators (U+2028, U+2029), which ``str.splitlines`` and many tools treat as line
breaks. Multi-line text (a campaign template's body) may also hold LF and TAB.

Messages never repeat the value: it may be a secret (a mistyped secret reference) or personal
data (a lead's name).
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_NAMES = {
    0x00: "NUL",
    0x09: "tab",
    0x0A: "line feed",
    0x0B: "vertical tab",
    0x0C: "form feed",
    0x0D: "carriage return",
    0x1B: "escape",
    0x7F: "delete",
    0x85: "next line",
    0x2028: "line separator",
    0x2029: "paragraph separator",
}


def find_control(text: str, *, multiline: bool = False) -> int:
    """The index of the first control character in ``text`` (LF and TAB allowed when
    ``multiline``), or -1 when there is none."""
    if text.isprintable():  # the common case, in C; also False for some harmless characters
        return -1
    match = (_CONTROL_MULTILINE if multiline else _CONTROL).search(text)
    return match.start() if match else -1


def describe(char: str) -> str:
    """``U+000A (line feed)``."""
    code = ord(char)
    name = _NAMES.get(code)
    return f"U+{code:04X} ({name})" if name else f"U+{code:04X}"


def control_problem(text: str, *, multiline: bool = False) -> str | None:
    """Why ``text`` is refused (which character, where; never the text itself), or None."""
    index = find_control(text, multiline=multiline)
    if index < 0:
        return None
    allowed = " (line breaks and tabs are)" if multiline else ""
    return (
        f"control character {describe(text[index])} at character {index + 1}: control "
        f"characters are not allowed{allowed}"
    )
