"""Control characters are refused in every string field of every spec kind (issue 16 §2.1).

The walk below finds every model reachable from the document envelopes (the Campaign kind
included) and every field that takes text; for each, a value the field accepts is found among
SAMPLES, and the same value with a control character inside must be refused at that field. A
field added later is covered without editing this file (or the test says which sample to add).
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import pytest
from pydantic import BaseModel, ValidationError

from penguinctl.campaigns.spec import CampaignEnvelope
from penguinctl.errors import SpecError
from penguinctl.spec import load_specs
from penguinctl.spec.documents import (
    BackupPolicyEnvelope,
    DnsProviderEnvelope,
    DomainEnvelope,
    ServerEnvelope,
    TenantEnvelope,
)
from penguinctl.spec.durations import Duration
from penguinctl.spec.models import Strict
from penguinctl.spec.refs import SecretRef
from penguinctl.spec.text import control_problem

ENVELOPES = (
    TenantEnvelope,
    ServerEnvelope,
    DnsProviderEnvelope,
    DomainEnvelope,
    BackupPolicyEnvelope,
    CampaignEnvelope,
)
# Values some field accepts; the first one a field accepts is the one made hostile.
SAMPLES = (
    "ok",
    "a@b.example",
    "mail.example.com",
    "/srv/x",
    "https://x.example/u/{token}",
    "vault:a/b#c",
    "180d",
    "Europe/Paris",
    "09:00-17:00",
    "30 2 * * *",
    "203.0.113.7",
    "2024.06",
    "penguinctl/v1",
)
NO_TEXT = {("TenantMetadata", "tenant")}  # always refused: a Tenant belongs to no tenant
HOSTILE = ("\x00", "\n", "\r", "\t", "\x1b", "\x7f", "\x85", "\u2028")


def _members(tp: Any) -> list[Any]:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _members(typing.get_args(tp)[0])
    if origin in (Union, types.UnionType, list, dict, tuple):
        return [m for arg in typing.get_args(tp) for m in _members(arg)]
    return [tp]


def _models() -> list[type[BaseModel]]:
    seen: list[type[BaseModel]] = []
    todo: list[Any] = list(ENVELOPES)
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.append(model)
        for info in model.model_fields.values():
            todo += [
                m
                for m in _members(info.annotation)
                if isinstance(m, type) and issubclass(m, BaseModel)
            ]
    return seen


def _takes_text(tp: Any) -> bool:
    return any(m in (str, SecretRef, Duration) for m in _members(tp)) or bool(_literal_values(tp))


def _shape(tp: Any, text: str) -> Any:
    """``text`` in the shape of the field: itself, in a list, or as a dict's key and value."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _shape(typing.get_args(tp)[0], text)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _shape(args[0], text)
    if origin is list:
        return [text]
    if origin is dict:
        return {"k": text}
    return text


def _inject(value: Any, char: str) -> Any:
    """``value`` with ``char`` inside its (first) text."""
    if isinstance(value, list):
        return [_inject(value[0], char), *value[1:]]
    if isinstance(value, dict):
        return {k: _inject(v, char) for k, v in value.items()}
    return value[:1] + char + value[1:]


def _fields() -> list[tuple[type[BaseModel], str]]:
    return [
        (model, name)
        for model in _models()
        for name, info in model.model_fields.items()
        if _takes_text(info.annotation)
    ]


def _errors_at(model: type[BaseModel], name: str, value: Any) -> list[Any]:
    try:
        model.model_validate({name: value})
    except ValidationError as exc:
        return [e for e in exc.errors() if e["loc"][:1] == (name,)]
    return []


def _literal_values(tp: Any) -> list[str]:
    return [
        v
        for m in _members(tp)
        if typing.get_origin(m) is Literal
        for v in typing.get_args(m)
        if isinstance(v, str)
    ]


def test_every_model_is_strict() -> None:
    models = _models()
    assert len(models) > 25
    assert [m.__name__ for m in models if not issubclass(m, Strict)] == []


@pytest.mark.parametrize(
    ("model", "name"), _fields(), ids=lambda x: x if isinstance(x, str) else x.__name__
)
def test_every_text_field_refuses_control_characters(model: type[BaseModel], name: str) -> None:
    annotation = model.model_fields[name].annotation
    literals = _literal_values(annotation)
    candidates = [_shape(annotation, s) for s in [*literals, *SAMPLES]]
    if isinstance(_shape(annotation, "x"), list):
        candidates.append(literals)  # e.g. stop_on needs several of its values
    sample = next((c for c in candidates if c and not _errors_at(model, name, c)), None)
    if (model.__name__, name) in NO_TEXT:
        assert sample is None
        return
    assert sample is not None, f"{model.__name__}.{name}: add a value it accepts to SAMPLES"
    multiline = "body" in name or "html" in name
    for char in HOSTILE:
        hostile = _inject(sample, char)
        if multiline and char in "\n\t":
            assert not _errors_at(model, name, hostile), (model.__name__, name, repr(char))
            continue
        assert _errors_at(model, name, hostile), f"{model.__name__}.{name} took {char!r}"
    if isinstance(sample, dict):
        assert _errors_at(model, name, {"k\x00": "v"}), f"{model.__name__}.{name}: key"


def test_text_problem_names_the_character_never_the_value() -> None:
    problem = control_problem("s3cr3t\x00value")
    assert problem is not None
    assert "U+0000 (NUL)" in problem and "character 7" in problem and "s3cr3t" not in problem
    assert control_problem("line\nbreak", multiline=True) is None
    assert control_problem("Zoë Ñoño — 東京") is None  # non-ASCII text is fine


SPEC = """\
apiVersion: penguinctl/v1
kind: DnsProvider
metadata: {name: zones}
spec:
  type: zonefile
  directory: ./zones
  hostmaster: HOSTMASTER
"""


@pytest.mark.parametrize(
    "hostmaster",
    [
        '"ops@acme.example\\nevil 300 IN A 203.0.113.66"',  # a line break adds a record
        '"ops@acme.example\\0"',  # NUL: PostgreSQL refuses it in a text column
        "|\n    ops@acme.example\n    @ 60 IN NS ns.evil.example.",  # a block scalar
        '"ops@acme.example. 1 2 3 4 5"',  # spaces: more SOA fields
    ],
)
def test_hostmaster_injection_is_refused(tmp_path: Path, hostmaster: str) -> None:
    spec = tmp_path / "dns.yaml"
    spec.write_text(SPEC.replace("HOSTMASTER", hostmaster), encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_specs([spec])
    [issue] = info.value.issues
    assert (issue.location.line, issue.location.col) == (7, 3)
    assert "spec.hostmaster" in issue.message


def test_hostmaster_takes_an_address_or_an_rname(tmp_path: Path) -> None:
    for value in ("ops@acme.example", "hostmaster.acme.example."):
        spec = tmp_path / "dns.yaml"
        spec.write_text(SPEC.replace("HOSTMASTER", value), encoding="utf-8")
        assert load_specs([spec]).dns_providers["zones"].spec.hostmaster == value


def test_validate_exits_3_naming_every_field(tmp_path: Path, capsys) -> None:
    from clitools import run_inprocess

    spec = tmp_path / "dns.yaml"
    spec.write_text(
        SPEC.replace("./zones", '"./zo\\0nes"').replace("HOSTMASTER", '"ops@acme.example\\r"')
        + "---\napiVersion: penguinctl/v1\nkind: Tenant\n"
        'metadata: {name: acme, labels: {team: "growth\\u2028"}}\n',
        encoding="utf-8",
    )
    res = run_inprocess(capsys, "validate", "-f", str(spec))
    assert res.code == 3, res.err
    lines = res.err.splitlines()
    assert any(f"{spec}:6:3:" in x and "spec.directory" in x and "U+0000 (NUL)" in x for x in lines)
    assert any(f"{spec}:7:3:" in x and "spec.hostmaster" in x for x in lines)
    assert any(f"{spec}:11:" in x and "metadata.labels" in x and "U+2028" in x for x in lines)
