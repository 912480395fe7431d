"""Validate raw documents into typed ones, turning every pydantic error into a located issue."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any, Union

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from penguinctl.errors import SpecIssue
from penguinctl.spec.documents import (
    API_VERSION,
    DOC_TYPES,
    KINDS,
    Declared,
    Document,
    describe,
)
from penguinctl.spec.loader import RawDocument
from penguinctl.spec.models import DNS_TYPES
from penguinctl.spec.source import INVALID, YamlMap, locate, quote

_NOT_APPLIED = {"Campaign": "launch it with `penguinctl campaign launch -f FILE`"}


def validate_document(raw: RawDocument) -> tuple[Document[Any] | None, list[SpecIssue]]:
    """Validate one document: the typed document (or None) and every issue found in it."""
    data = raw.data
    kind = data.get("kind")
    doc_type = DOC_TYPES.get(kind) if isinstance(kind, str) else None
    if doc_type is None:
        return None, [_kind_issue(data)]
    kind = doc_type.kind
    try:
        envelope: Any = doc_type.envelope.model_validate(data)
    except ValidationError as exc:
        label = _label(kind, data)
        return None, [
            _issue(data, error, label, doc_type.envelope)
            for error in exc.errors(include_url=False, include_input=False)
            if not _already_reported(data, error["loc"])
        ]
    document = doc_type(
        metadata=envelope.metadata,
        spec=envelope.spec,
        location=data.location,
        source_dir=raw.file.path.parent,
        raw=data,
    )
    return document, []


def _already_reported(data: YamlMap, loc: tuple[Any, ...]) -> bool:
    """Whether the error is about a value the loader replaced by INVALID (and reported)."""
    node: Any = data
    for part in loc:
        if node is INVALID:
            return True
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_list or (isinstance(node, dict) and part in node):
            node = node[part]
    return node is INVALID


def _label(kind: str, data: YamlMap) -> str:
    return describe(kind, Declared(kind, data).name)


def _kind_issue(data: YamlMap) -> SpecIssue:
    kind = data.get("kind")
    supported = ", ".join(KINDS)
    if kind is None:
        message = f"missing 'kind'; add one of: {supported}"
        location = data.location
    else:
        location = data.key_location("kind")
        hint = _NOT_APPLIED.get(kind) if isinstance(kind, str) else None
        if not isinstance(kind, str):
            message = f"kind must be one of: {supported}"
        elif hint:
            message = f"kind {kind} is not applied from a spec ({hint}); supported: {supported}"
        else:
            message = f"unknown kind {quote(kind)}; supported kinds: {supported}"
    return SpecIssue(location, message)


def _issue(data: YamlMap, error: ErrorDetails, label: str, model: type[BaseModel]) -> SpecIssue:
    loc = tuple(error["loc"])
    location, found = locate(data, loc)
    if error["type"] == "extra_forbidden" and found and found[-1] == loc[-1]:
        path = _dotted(found[:-1])  # "spec: unknown field 'x'", not "spec.x: unknown field 'x'"
    else:
        path = _dotted(found)
    message = _message(error, loc, found, data, model)
    return SpecIssue(location, f"{label}: {path}: {message}" if path else f"{label}: {message}")


def _dotted(parts: list[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _message(
    error: ErrorDetails, loc: tuple[Any, ...], found: list[Any], data: YamlMap, model: Any
) -> str:
    kind = error["type"]
    last = loc[-1] if loc else None
    if kind == "missing":
        return f"missing required field {quote(last)}"
    if kind == "extra_forbidden":
        known = _fields_at(model, loc[:-1])
        close = difflib.get_close_matches(str(last), known, n=1) if known else []
        hint = f"; did you mean {quote(close[0])}?" if close else ""
        return f"unknown field {quote(last)}{hint}"
    if loc == ("apiVersion",):
        return f"must be {API_VERSION}, the only supported version"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return f"type must be one of: {', '.join(DNS_TYPES)}"
    if kind in _SHAPES:
        return _SHAPES[kind]
    message = error["msg"].removeprefix("Value error, ")
    if kind == "string_type" and isinstance(_value_at(data, found), (bool, int, float)):
        message += " (quote it, or YAML reads it as a number or true/false)"
    return message[:1].lower() + message[1:]


_SHAPES = {
    "model_type": "must be a mapping (key: value lines or {key: value})",
    "model_attributes_type": "must be a mapping (key: value lines or {key: value})",
    "dict_type": "must be a mapping (key: value lines or {key: value})",
    "list_type": "must be a list (- item lines or [a, b])",
}


def _value_at(data: YamlMap, path: list[Any]) -> Any:
    node: Any = data
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _fields_at(model: Any, loc: tuple[Any, ...]) -> list[str]:
    """The field names of the model found by following ``loc`` through ``model``'s types."""
    current: Any = model
    for part in loc:
        current = _step(current, part)
        if current is None:
            return []
    models = [m for m in _members(current) if isinstance(m, type) and issubclass(m, BaseModel)]
    return sorted({name for m in models for name in m.model_fields})


def _members(tp: Any) -> list[Any]:
    """Unwrap Annotated/Optional/Union into the concrete types."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _members(typing.get_args(tp)[0])
    if origin in (Union, types.UnionType):
        return [m for arg in typing.get_args(tp) for m in _members(arg)]
    return [tp]


def _step(tp: Any, part: Any) -> Any:
    for member in _members(tp):
        if isinstance(member, type) and issubclass(member, BaseModel):
            if isinstance(part, str) and part in member.model_fields:
                return member.model_fields[part].annotation
            tag = member.model_fields.get("type")
            if tag is not None and typing.get_args(tag.annotation) == (part,):
                return member  # a discriminated-union tag in the error location
        elif isinstance(part, int) and typing.get_origin(member) is list:
            return typing.get_args(member)[0]
        elif typing.get_origin(member) is dict and isinstance(part, str):
            return typing.get_args(member)[1]
    return None
