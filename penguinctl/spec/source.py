"""YAML values that remember where they were written (octoDNS's ``ContextDict`` idea).

The loader builds plain ``dict``/``list`` subclasses so pydantic validates them like any other
input, while every mapping keeps the position of each of its keys and every list the position of
each item. Positions are stored as 1-based ``(line, col)`` pairs and turned into
:class:`~penguinctl.errors.Location` only when an error needs one.
"""

from __future__ import annotations

from typing import Any

from penguinctl.errors import Location

Pos = tuple[int, int]


class _Invalid:
    """Stands in for a value the loader already reported (a bad tag, an undefined alias), so
    validation does not report it a second time."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<invalid>"


INVALID: Any = _Invalid()


class YamlMap(dict[str, Any]):
    """A mapping with its own position and the position of each key."""

    __slots__ = ("col", "file", "key_pos", "line")

    def __init__(self, file: str, line: int, col: int) -> None:
        super().__init__()
        self.file = file
        self.line = line
        self.col = col
        self.key_pos: dict[str, Pos] = {}

    @property
    def location(self) -> Location:
        return Location(self.file, self.line, self.col)

    def key_location(self, key: str) -> Location:
        """Where ``key`` is written, or where this mapping starts when the key is absent."""
        line, col = self.key_pos.get(key, (self.line, self.col))
        return Location(self.file, line, col)


class YamlList(list[Any]):
    """A sequence with its own position and the position of each item."""

    __slots__ = ("col", "file", "item_pos", "line")

    def __init__(self, file: str, line: int, col: int) -> None:
        super().__init__()
        self.file = file
        self.line = line
        self.col = col
        self.item_pos: list[Pos] = []

    @property
    def location(self) -> Location:
        return Location(self.file, self.line, self.col)

    def item_location(self, index: int) -> Location:
        """Where item ``index`` starts, or where this sequence starts when there is no such item."""
        if 0 <= index < len(self.item_pos):
            line, col = self.item_pos[index]
            return Location(self.file, line, col)
        return self.location


def locate(root: YamlMap, path: tuple[str | int, ...]) -> tuple[Location, list[str | int]]:
    """Follow ``path`` from ``root`` as far as it exists.

    Returns the location of the deepest element found (a key, or a list item) and the path
    elements that were found. A string element that is not a key of the current mapping is
    skipped when more elements follow it (pydantic puts union member tags such as ``rfc2136`` in
    error locations); the last element, when missing, leaves the location at its enclosing element.
    """
    location = root.location
    node: Any = root
    found: list[str | int] = []
    for index, part in enumerate(path):
        last = index == len(path) - 1
        if isinstance(node, YamlMap) and isinstance(part, str):
            if part in node:
                location = node.key_location(part)
                node = node[part]
                found.append(part)
            elif last:
                break
            # else: a union tag, not a key; stay on this node
        elif isinstance(node, YamlList) and isinstance(part, int) and 0 <= part < len(node):
            location = node.item_location(part)
            node = node[part]
            found.append(part)
        else:
            break
    return location, found


def quote(text: object, limit: int = 60) -> str:
    """``'text'`` for messages: control characters escaped, long text shortened."""
    shown = repr(str(text))[1:-1]
    if len(shown) > limit:
        shown = shown[: limit - 3] + "..."
    return f"'{shown}'"
