"""Every number in a spec has an upper bound (README, "Limits"): a walk over the spec models finds
no int or float field without a maximum; values past a bound are spec errors (exit 3), never
accepted (a 26-digit daily_limit was) nor a crash (a 9-digit duration in weeks overflowed)."""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Literal

import annotated_types
import pytest
from clitools import QUICKSTART, run_inprocess
from pydantic import BaseModel, Field, ValidationError

from penguinctl.campaigns.spec import CampaignEnvelope
from penguinctl.spec.documents import (
    BackupPolicyEnvelope,
    DnsProviderEnvelope,
    DomainEnvelope,
    ServerEnvelope,
    TenantEnvelope,
)
from penguinctl.spec.durations import Duration
from penguinctl.spec.models import Mailbox, Retention
from penguinctl.spec.schema import json_schema

ROOTS = [
    TenantEnvelope,
    ServerEnvelope,
    DnsProviderEnvelope,
    DomainEnvelope,
    BackupPolicyEnvelope,
    CampaignEnvelope,
]


def _unbounded_in_models(roots: list[type[BaseModel]]) -> list[str]:
    """``Model.field`` for every int/float field (inside Optional, lists, unions, dicts) of the
    models reachable from ``roots`` that has no ``le``/``lt`` constraint."""
    found: list[str] = []
    seen: set[type] = set()

    def numeric(tp: Any) -> bool:
        return tp in (int, float)

    def visit_type(tp: Any, label: str, metadata: list[Any]) -> None:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            base, *extra = typing.get_args(tp)
            visit_type(base, label, [*metadata, *extra])
            return
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            visit_model(tp)
            return
        if numeric(tp):
            flat = []
            for m in metadata:  # FieldInfo inside Annotated carries its own metadata
                flat.extend(getattr(m, "metadata", [m]))
            if not any(isinstance(m, annotated_types.Le | annotated_types.Lt) for m in flat):
                found.append(label)
            return
        if origin is typing.Literal:
            return
        if origin in (typing.Union, types.UnionType, list, dict, tuple, set, frozenset):
            for arg in typing.get_args(tp):
                visit_type(arg, label, metadata)

    def visit_model(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, info in model.model_fields.items():
            visit_type(info.annotation, f"{model.__name__}.{name}", list(info.metadata))

    for root in roots:
        visit_model(root)
    return found


def _unbounded_in_schema(schema: Any, path: str = "#") -> list[str]:
    found = []
    if isinstance(schema, dict):
        kind = schema.get("type")
        kinds = {k for k in (kind if isinstance(kind, list) else [kind]) if isinstance(k, str)}
        if (
            {"integer", "number"} & kinds
            and "maximum" not in schema
            and "exclusiveMaximum" not in schema
            and "enum" not in schema
            and "const" not in schema
        ):
            found.append(path)
        for key, value in schema.items():
            found += _unbounded_in_schema(value, f"{path}/{key}")
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            found += _unbounded_in_schema(value, f"{path}/{i}")
    return found


def test_every_numeric_spec_field_has_an_upper_bound():
    assert _unbounded_in_models(ROOTS) == []
    assert _unbounded_in_schema(json_schema()) == []
    assert _unbounded_in_schema(CampaignEnvelope.model_json_schema()) == []


def test_the_walks_find_an_unbounded_field():
    class Inner(BaseModel):
        ratio: float = Field(default=0.5, gt=0)
        weight: Annotated[int, Field(ge=0, le=100)] = 1

    class Outer(BaseModel):
        n: int | None = None
        inner: list[Inner] = []
        bits: Literal[1, 2] = 1
        capped: dict[str, Annotated[int, Field(le=9)]] = {}

    assert _unbounded_in_models([Outer]) == ["Outer.n", "Inner.ratio"]
    assert sorted(_unbounded_in_schema(Outer.model_json_schema())) == [
        "#/$defs/Inner/properties/ratio",
        "#/properties/n/anyOf/0",
    ]


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (Mailbox, {"local": "john", "daily_limit": 12345678901234567890123456}),
        (Mailbox, {"local": "john", "daily_limit": 10_001}),
        (Retention, {"daily": 3661}),
        (Retention, {"monthly": 121}),
    ],
)
def test_values_past_a_bound_are_refused(model, data):
    with pytest.raises(ValidationError, match="less than or equal"):
        model.model_validate(data)


def test_bounds_are_inclusive():
    assert Mailbox(local="john", daily_limit=10_000).daily_limit == 10_000
    assert Retention(daily=3660, weekly=522, monthly=120).daily == 3660
    assert Duration("3650d").days == 3650
    for text in ("3651d", "522w", "999999999w", "999999999d"):
        with pytest.raises(ValueError, match="at most 3650 days"):
            Duration(text)


def test_validate_reports_huge_numbers_as_spec_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    text = QUICKSTART.read_text()
    spec = tmp_path / "limit.yaml"
    spec.write_text(text.replace("daily_limit: 30", "daily_limit: 12345678901234567890123456"))
    res = run_inprocess(capsys, "validate", "-f", spec)
    assert res.code == 3, res.err
    assert "daily_limit" in res.err and "less than or equal to 10000" in res.err
    domain = text.index("kind: Domain")
    at = text.index("spec:\n", domain) + len("spec:\n")
    spec = tmp_path / "dkim.yaml"
    spec.write_text(text[:at] + "  dkim: {rotate_every: 999999999w}\n" + text[at:])
    res = run_inprocess(capsys, "validate", "-f", spec)
    assert res.code == 3, res.err
    assert "rotate_every" in res.err and "at most 3650 days" in res.err
    assert "unexpected" not in res.err
