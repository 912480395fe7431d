"""Turn the bytes of one YAML file into position-aware documents, safely.

The C parser (libyaml) produces events; we build values from them ourselves, iteratively, so that
hostile input cannot crash or exhaust the process:

* only the standard scalar tags and plain mappings/sequences are accepted;
* a duplicate key is an issue at the second key;
* aliases are shared, never copied, but each use counts its full size against a per-file node
  budget (this stops "billion laughs" bombs), and a nesting limit applies, aliases included;
* scanner and parser errors become one issue at the YAML mark.

libyaml's own composer is not used: it recurses in C and crashes the interpreter on input nested
a few tens of thousands of levels deep.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml import events
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from penguinctl.errors import Location, SpecIssue
from penguinctl.spec.source import INVALID, Pos, YamlList, YamlMap, quote

MAX_NODES = 2_000_000
MAX_DEPTH = 100

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_PREFIX = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL = (_PREFIX + t for t in ("str", "int", "float", "bool", "null"))
TIMESTAMP, MAP, SEQ, MERGE = (_PREFIX + t for t in ("timestamp", "map", "seq", "merge"))
_SCALAR_TAGS = frozenset({STR, INT, FLOAT, BOOL, NULL, TIMESTAMP})
_GENERIC = (None, "!")

_IMPLICIT: dict[Any, list[tuple[str, Any]]] = Resolver.yaml_implicit_resolvers
_CONSTRUCT = SafeConstructor()
_NEED_KEY = object()  # the mapping waits for a key
_BAD_KEY = object()  # the key was unusable: drop its value
_MERGE_KEY = object()  # the key was "<<"
_OPEN = object()  # an anchored collection that is still being built


class _Abort(Exception):
    """Stop reading this file: the issue says why."""

    def __init__(self, issue: SpecIssue) -> None:
        super().__init__(issue.message)
        self.issue = issue


@dataclass
class ParsedFile:
    """The documents of one file (in order) and the issues found while reading it."""

    documents: list[YamlMap] = field(default_factory=list)
    issues: list[SpecIssue] = field(default_factory=list)
    complete: bool = True  # False when reading stopped early (the file's documents are partial)


class _Frame:
    __slots__ = (
        "anchor",
        "bad",
        "height",
        "is_map",
        "key",
        "key_pos",
        "merges",
        "pos",
        "size",
        "value",
    )

    def __init__(self, value: YamlMap | YamlList, anchor: str | None, pos: Pos) -> None:
        self.value: Any = value
        self.is_map = isinstance(value, YamlMap)
        self.anchor = anchor
        self.pos = pos
        self.key: Any = _NEED_KEY
        self.key_pos: Pos = pos
        self.size = 1
        self.height = 1
        self.merges: list[tuple[Any, Pos]] = []
        self.bad = False  # an unsupported tag: the collection is replaced by INVALID


def _pos(ev: Any) -> Pos:
    mark = ev.start_mark
    return (mark.line + 1, mark.column + 1)


def _plain_tag(value: str) -> str:
    """The tag YAML 1.1 gives an untagged plain scalar (what PyYAML's resolver does)."""
    candidates = _IMPLICIT.get(value[0] if value else "", [])
    for tag, regexp in [*candidates, *_IMPLICIT.get(None, [])]:
        if regexp.match(value):
            return tag
    return STR


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.result = ParsedFile()
        self.stack: list[_Frame] = []
        self.anchors: dict[str, Any] = {}
        self.nodes = 0
        self.root: Any = None
        self.root_pos: Pos = (1, 1)

    # -- helpers -------------------------------------------------------------------------------
    def loc(self, pos: Pos) -> Location:
        return Location(self.file, pos[0], pos[1])

    def issue(self, pos: Pos, message: str) -> None:
        self.result.issues.append(SpecIssue(self.loc(pos), message))

    def count(self, size: int, pos: Pos) -> None:
        self.nodes += size
        if self.nodes > MAX_NODES:
            raise _Abort(
                SpecIssue(
                    self.loc(pos),
                    f"more than {MAX_NODES:,} YAML nodes in this file (aliases count each time "
                    "they are used); split the file or use fewer aliases",
                )
            )

    def check_depth(self, extra: int, pos: Pos) -> None:
        if len(self.stack) + extra > MAX_DEPTH:
            raise _Abort(
                SpecIssue(self.loc(pos), f"nesting deeper than {MAX_DEPTH} levels; flatten it")
            )

    def bad_tag(self, pos: Pos, tag: str) -> None:
        shown = "!!" + tag.removeprefix(_PREFIX) if tag.startswith(_PREFIX) else tag
        self.issue(pos, f"unsupported YAML tag {quote(shown)}; write a plain value without a tag")

    # -- events --------------------------------------------------------------------------------
    def start_document(self, ev: Any) -> None:
        self.anchors = {}
        self.root = None

    def end_document(self, ev: Any) -> None:
        root = self.root
        if root is None or root is INVALID:
            return  # an empty document, or one whose problem is already reported
        if isinstance(root, YamlMap):
            self.result.documents.append(root)
        else:
            self.issue(
                self.root_pos,
                "a document must be a mapping with apiVersion, kind, metadata and spec",
            )

    def scalar(self, ev: Any) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.count(0, _pos(ev))
        simple = ev.tag is None and ev.anchor is None
        if self.stack:
            top = self.stack[-1]
            if top.is_map:
                key = top.key
                if key is _NEED_KEY:
                    if simple and ev.value != "<<":  # fast path: a plain key
                        mark = ev.start_mark
                        top.key = ev.value
                        top.key_pos = (mark.line + 1, mark.column + 1)
                    else:
                        self.key(top, ev, _pos(ev))
                    return
                container = top.value
                if (
                    simple
                    and key.__class__ is str
                    and (not ev.implicit[0] or ev.value[:1] not in _IMPLICIT)
                    and key not in container
                ):  # fast path: a string value under a new key (no position to keep)
                    container[key] = ev.value
                    container.key_pos[key] = top.key_pos
                    top.key = _NEED_KEY
                    top.size += 1
                    return
        pos = _pos(ev)
        if simple and (not ev.implicit[0] or ev.value[:1] not in _IMPLICIT):
            value: Any = ev.value  # a plain word or a quoted string
        else:
            value = self.scalar_value(ev, pos)
        if ev.anchor is not None:
            self.anchors[ev.anchor] = (value, 1, 0)
        self.add(value, 1, 0, pos)

    def scalar_value(self, ev: Any, pos: Pos) -> Any:
        tag = ev.tag
        value: str = ev.value
        if tag in _GENERIC:
            if tag is None and ev.implicit[0]:
                tag = _plain_tag(value)
            else:
                return value
        if tag in (STR, TIMESTAMP):
            return value  # dates stay text: no spec field takes a date
        if tag == NULL:
            return None
        if tag not in _SCALAR_TAGS:
            self.bad_tag(pos, tag)
            return INVALID
        try:
            if tag == BOOL:
                return SafeConstructor.bool_values[value.lower()]
            if tag == INT:
                return _CONSTRUCT.construct_yaml_int(yaml.ScalarNode(tag, value))
            return _CONSTRUCT.construct_yaml_float(yaml.ScalarNode(tag, value))
        except (ValueError, KeyError, IndexError):
            kind = tag.removeprefix(_PREFIX)
            self.issue(pos, f"this value is not a valid {kind}")
            return INVALID

    def key(self, top: _Frame, ev: Any, pos: Pos) -> None:
        top.key_pos = pos
        tag = ev.tag
        if tag == MERGE or (tag is None and ev.implicit[0] and ev.value == "<<"):
            top.key = _MERGE_KEY
        elif tag in _GENERIC or tag in _SCALAR_TAGS:
            top.key = ev.value
        else:
            self.bad_tag(pos, tag)
            top.key = _BAD_KEY
        if ev.anchor is not None:
            self.anchors[ev.anchor] = (ev.value, 1, 0)

    def start_map(self, ev: Any) -> None:
        self.start(ev, True)

    def start_seq(self, ev: Any) -> None:
        self.start(ev, False)

    def start(self, ev: Any, is_map: bool) -> None:
        mark = ev.start_mark
        pos = (mark.line + 1, mark.column + 1)
        self.count(1, pos)
        self.check_depth(1, pos)
        tag = ev.tag
        bad = tag not in _GENERIC and tag != (MAP if is_map else SEQ)
        if bad:
            self.bad_tag(pos, tag)
        top = self.stack[-1] if self.stack else None
        if top is not None and top.is_map and top.key is _NEED_KEY:
            self.issue(pos, "a mapping key must be a plain string, not a mapping or a list")
        value = YamlMap(self.file, *pos) if is_map else YamlList(self.file, *pos)
        if ev.anchor is not None:
            self.anchors[ev.anchor] = _OPEN
        frame = _Frame(value, ev.anchor, pos)
        frame.bad = bad
        self.stack.append(frame)

    def end(self, ev: Any) -> None:
        frame = self.stack.pop()
        if frame.merges:
            self.merge(frame)
        value = INVALID if frame.bad else frame.value
        if frame.anchor is not None:
            self.anchors[frame.anchor] = (value, frame.size, frame.height)
        self.add(value, frame.size, frame.height, frame.pos)

    def alias(self, ev: Any) -> None:
        mark = ev.start_mark
        pos = (mark.line + 1, mark.column + 1)
        found = self.anchors.get(ev.anchor)
        if found is None:
            self.count(1, pos)
            self.issue(pos, f"alias {quote('*' + ev.anchor)} has no anchor defined before it")
            self.add(INVALID, 1, 0, pos)
        elif found is _OPEN:
            self.count(1, pos)
            self.issue(pos, f"alias {quote('*' + ev.anchor)} refers to itself")
            self.add(INVALID, 1, 0, pos)
        else:
            value, size, height = found
            self.count(size, pos)
            self.check_depth(height, pos)
            self.add(value, size, height, pos)

    # -- building --------------------------------------------------------------------------------
    def add(self, value: Any, size: int, height: int, pos: Pos) -> None:
        if not self.stack:
            self.root = value
            self.root_pos = pos
            return
        top = self.stack[-1]
        top.size += size
        if height >= top.height:
            top.height = height + 1
        container = top.value
        if not top.is_map:
            container.append(value)
            container.item_pos.append(pos)
            return
        key = top.key
        top.key = _NEED_KEY
        if key is _NEED_KEY:  # a collection (or an alias) used as a key
            if isinstance(value, str):
                top.key, top.key_pos = value, pos
            else:
                if not isinstance(value, (YamlMap, YamlList)) and value is not INVALID:
                    self.issue(pos, "a mapping key must be a plain string")
                top.key = _BAD_KEY
        elif key is _MERGE_KEY:
            top.merges.append((value, top.key_pos))
        elif key is not _BAD_KEY:
            if key in container:
                first = container.key_pos[key]
                self.issue(
                    top.key_pos,
                    f"duplicate key {quote(key)} (first defined at line {first[0]}); "
                    "remove one of them",
                )
                return
            container[key] = value
            container.key_pos[key] = top.key_pos

    def merge(self, frame: _Frame) -> None:
        """Apply ``<<: *base`` keys: explicit keys win, then earlier merges over later ones."""
        target = frame.value
        assert isinstance(target, YamlMap)
        for value, pos in frame.merges:
            sources = value if isinstance(value, YamlList) else [value]
            for source in sources:
                if source is INVALID:
                    continue
                if not isinstance(source, YamlMap):
                    self.issue(pos, "'<<' takes a mapping or a list of mappings")
                    break
                for key, item in source.items():
                    if key not in target:
                        target[key] = item
                        target.key_pos[key] = source.key_pos[key]


def _ignore(ev: Any) -> None:
    pass


def _yaml_error_issue(file: str, data: bytes, exc: yaml.YAMLError) -> SpecIssue:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        problem = exc.problem or "syntax error"
        if "maximum nesting depth" in problem:  # libyaml >= 0.2.5 stops at 1,000 levels itself
            return SpecIssue(
                Location(file, mark.line + 1, mark.column + 1),
                f"nesting deeper than {MAX_DEPTH} levels; flatten it",
            )
        if "tab" in problem or _char_at(data, mark.line, mark.column) == "\t":
            problem = "found a tab character; indent YAML with spaces, not tabs"
        elif exc.context and exc.context_mark is not None:
            problem += f", {exc.context} at line {exc.context_mark.line + 1}"
        return SpecIssue(Location(file, mark.line + 1, mark.column + 1), f"invalid YAML: {problem}")
    if isinstance(exc, yaml.reader.ReaderError):
        char = exc.character if isinstance(exc.character, int) else ord(exc.character or "?")
        return SpecIssue(
            byte_location(file, data, exc.position),
            f"invalid YAML: character U+{char:04X} is not allowed ({exc.reason})",
        )
    return SpecIssue(Location(file), "invalid YAML")


def _char_at(data: bytes, line: int, column: int) -> str:
    """The character at 0-based ``line`` and ``column`` of ``data`` ('' when out of range)."""
    start = 0
    for _ in range(line):
        start = data.find(b"\n", start) + 1
        if start == 0:
            return ""
    end = data.find(b"\n", start)
    text = data[start : end if end >= 0 else len(data)].decode("utf-8", "replace")
    return text[column] if 0 <= column < len(text) else ""


def byte_location(file: str, data: bytes, offset: int) -> Location:
    """The 1-based line and column (in characters) of byte ``offset`` in ``data``."""
    offset = max(0, min(offset, len(data)))
    line_start = data.rfind(b"\n", 0, offset) + 1
    col = len(data[line_start:offset].decode("utf-8", "replace")) + 1
    return Location(file, data.count(b"\n", 0, offset) + 1, col)


def parse_yaml(file: str, data: bytes) -> ParsedFile:
    """Parse UTF-8 ``data`` (no BOM) into documents; never raises for bad input."""
    builder = _Builder(file)
    loader = _Loader(data)
    try:
        get_event = loader.get_event
        handlers: dict[type, Any] = {
            events.ScalarEvent: builder.scalar,
            events.MappingStartEvent: builder.start_map,
            events.SequenceStartEvent: builder.start_seq,
            events.MappingEndEvent: builder.end,
            events.SequenceEndEvent: builder.end,
            events.AliasEvent: builder.alias,
            events.DocumentStartEvent: builder.start_document,
            events.DocumentEndEvent: builder.end_document,
            events.StreamStartEvent: _ignore,
        }
        while True:
            ev = get_event()
            handler = handlers.get(ev.__class__)
            if handler is None:  # StreamEndEvent (or nothing left)
                break
            handler(ev)
    except _Abort as exc:
        builder.result.issues.append(exc.issue)
        builder.result.complete = False
    except yaml.YAMLError as exc:
        builder.result.issues.append(_yaml_error_issue(file, data, exc))
        builder.result.complete = False
    finally:
        loader.dispose()
    return builder.result
