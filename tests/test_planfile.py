"""`apply --plan FILE` with malformed plan files: exit 2 and one line naming the file and what is
wrong, never an unexpected failure; fuzzed with hypothesis (mutated plans, any JSON, any bytes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clitools import QUICKSTART, run_inprocess
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from penguinctl.errors import UsageError
from penguinctl.plan import planfile
from penguinctl.plan.planfile import FORMAT, PlanFile

VALID = {
    "format": FORMAT,
    "specs": ["spec.yaml"],
    "operation": "apply",
    "tenants": ["acme"],
    "changes": [{"action": "create", "address": "domain/acme/a.example", "after": {}}],
    "counts": {"create": 1, "update": 0, "delete": 0},
    "checksum": "ab" * 32,
    "warnings": [],
}


@pytest.fixture
def cli(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_TODAY", "2026-11-23")
    return lambda *args: run_inprocess(capsys, *args)


def _write(tmp_path: Path, doc, name: str = "plan.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_a_saved_plan_loads_as_its_model(cli, tmp_path):
    out = tmp_path / "saved.json"
    assert cli("plan", "-f", QUICKSTART, "--out", out).code == 0
    saved = planfile.load(out)
    assert isinstance(saved, PlanFile)
    assert saved.specs == [str(QUICKSTART)] and saved.operation == "apply"
    assert saved.counts["create"] == len(saved.changes) > 0
    assert planfile.load(_write(tmp_path, VALID)).checksum == "ab" * 32


CASES = [
    ({**VALID, "checksum": 5}, "checksum: Input should be a valid string"),
    ({**VALID, "checksum": "abc"}, "checksum: String should match pattern"),
    ({k: v for k, v in VALID.items() if k != "specs"}, "specs: Field required"),
    ({**VALID, "specs": "spec.yaml"}, "specs: Input should be a valid list"),
    ({**VALID, "specs": [7]}, "specs.0: Input should be a valid string"),
    ({**VALID, "specs": []}, "specs: List should have at least 1 item"),
    ({**VALID, "operation": "nuke"}, "operation: Input should be 'apply' or 'destroy'"),
    ({**VALID, "operation": None}, "operation: Input should be 'apply' or 'destroy'"),
    ({**VALID, "changes": {"a": 1}}, "changes: Input should be a valid list"),
    ({**VALID, "counts": {"create": "1"}}, "counts.create: Input should be a valid integer"),
    ({**VALID, "counts": {"create": True}}, "counts.create: Input should be a valid integer"),
    ({**VALID, "extra": 1}, "extra: Extra inputs are not permitted"),
    ({k: v for k, v in VALID.items() if k != "checksum"}, "checksum: Field required"),
    ([VALID], "is not a penguinctl plan (penguinctl-plan/v1)"),
    ({**VALID, "format": "penguinctl-plan/v0"}, "is not a penguinctl plan (penguinctl-plan/v1)"),
    ("{not json", "is not a penguinctl plan (invalid JSON)"),
    ("[" * 100_000 + "]" * 100_000, "is not a penguinctl plan (nested too deeply)"),
    ('{"format": "penguinctl-plan/v1", "changes": ' + "[" * 5000 + "]" * 5000 + "}", "nested"),
]


@pytest.mark.parametrize(("doc", "problem"), CASES, ids=[str(i) for i in range(len(CASES))])
def test_malformed_plan_files_are_usage_errors(cli, tmp_path, doc, problem):
    path = _write(tmp_path, doc)
    res = cli("apply", "--plan", path, "--yes")
    assert res.code == 2, res.err
    lines = res.err.strip().splitlines()
    assert len(lines) == 1, res.err
    assert f"plan file {path} " in lines[0] and problem in lines[0], lines[0]
    assert "unexpected" not in res.err


def test_unreadable_plan_files(cli, tmp_path):
    res = cli("apply", "--plan", tmp_path, "--yes")
    assert res.code == 2 and f"cannot read plan file {tmp_path}" in res.err, res.err
    res = cli("apply", "--plan", tmp_path / "missing.json", "--yes")
    assert res.code == 2 and "does not exist" in res.err, res.err
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    res = cli("apply", "--plan", binary, "--yes")
    assert res.code == 2 and "invalid JSON" in res.err, res.err


def _check_load(path: Path) -> None:
    try:
        planfile.load(path)
    except UsageError as exc:
        assert str(path) in exc.message and "\n" not in exc.message


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    key=st.sampled_from([*VALID, "unknown"]),
    value=json_values,
    drop=st.booleans(),
)
def test_fuzz_mutated_plans(tmp_path_factory, key, value, drop):
    doc = dict(VALID)
    if drop:
        doc.pop(key, None)
    else:
        doc[key] = value
    _check_load(_write(tmp_path_factory.mktemp("p"), doc))


@settings(max_examples=200, deadline=None)
@given(doc=json_values)
def test_fuzz_any_json(tmp_path_factory, doc):
    _check_load(_write(tmp_path_factory.mktemp("p"), doc))


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=200))
def test_fuzz_any_bytes(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("p") / "plan.json"
    path.write_bytes(raw)
    _check_load(path)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(key=st.sampled_from(list(VALID)), value=json_values)
def test_fuzz_apply_plan_never_fails_unexpectedly(cli, tmp_path, key, value):
    """Through the CLI: a mutated plan is refused (2), or, if still well-formed, fails on its
    made-up spec path (3) or checksum (7); never an unexpected failure (1)."""
    path = _write(tmp_path, {**VALID, key: value})
    res = cli("apply", "--plan", path, "--yes")
    assert res.code in (2, 3, 7), res.err
    assert "unexpected" not in res.err
