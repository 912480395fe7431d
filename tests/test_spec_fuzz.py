"""Fuzz the loader: whatever the input, the result is a SpecSet or a SpecError, nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from penguinctl.errors import SpecError, SpecIssue
from penguinctl.spec import SpecSet, load_specs

VALID = (Path(__file__).parent / "specs" / "valid" / "acme.yaml").read_text(encoding="utf-8")
FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

TOKENS = [
    ": ", "- ", "[", "]", "{", "}", ", ", "? ", "\n", "  ", "\t", "'", '"', "#", "|", ">",
    "---\n", "...\n", "%YAML 1.1\n", "&a ", "*a", "<<: ", "!!python/object:os.system ", "!x ",
    "!!str ", "!!int ", "!!binary ", "~", "null", "yes", "0x1F", "1e999", "-1", "2024-06-01",
    "apiVersion: penguinctl/v1\n", "kind: Domain\n", "kind: Server\n", "metadata: ",
    "spec: ", "name: ", "tenant: acme", "mailboxes: ", "local: john", "env:X", "vault:a#b",
    "\x00", "\ufeff", "\x85", "é", "\U0001f600", "x" * 300,
]  # fmt: skip
SCALARS = [
    "", "~", "[]", "{}", "yes", "1e999", "-1", "0", "x" * 300, "env:X", "!!int x", "*a", "&a 1",
    "'quoted'", "[1, [2, [3]]]", "{a: {b: c}}", "mailto:x", "2024.06", "é",
]  # fmt: skip

yamlish = st.lists(st.sampled_from(TOKENS), max_size=60).map("".join)


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "spec.yaml"


def _check(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        result = load_specs([path])
    except SpecError as error:
        assert error.issues
        for issue in error.issues:
            assert isinstance(issue, SpecIssue)
            assert issue.location.file == str(path)
            assert issue.location.line >= 0 and issue.location.col >= 0
            assert issue.message
        str(error)
    else:
        assert isinstance(result, SpecSet)
        assert result.documents


@FUZZ
@given(data=st.binary(max_size=2000))
def test_random_bytes(spec_path: Path, data: bytes) -> None:
    _check(spec_path, data)


@FUZZ
@given(text=st.text(max_size=2000))
def test_random_text(spec_path: Path, text: str) -> None:
    _check(spec_path, text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(text=yamlish)
def test_yaml_like_text(spec_path: Path, text: str) -> None:
    _check(spec_path, text.encode("utf-8", "surrogatepass"))


@st.composite
def mutated_spec(draw: st.DrawFn) -> str:
    """The valid example with a few random edits: deletions, insertions, swaps, new values."""
    lines = VALID.split("\n")
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "insert", "duplicate", "swap", "value", "indent"]))
        at = draw(st.integers(0, len(lines) - 1))
        line = lines[at]
        if op == "delete":
            start = draw(st.integers(0, len(line)))
            lines[at] = line[:start] + line[draw(st.integers(start, len(line))) :]
        elif op == "insert":
            start = draw(st.integers(0, len(line)))
            token = draw(st.one_of(st.sampled_from(TOKENS), st.text(max_size=5)))
            lines[at] = line[:start] + token + line[start:]
        elif op == "duplicate":
            lines.insert(at, line)
        elif op == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[at], lines[other] = lines[other], lines[at]
        elif op == "value" and ": " in line:
            lines[at] = line[: line.index(": ") + 2] + draw(st.sampled_from(SCALARS))
        elif op == "indent":
            lines[at] = " " * draw(st.integers(0, 6)) + line.lstrip()
    return "\n".join(lines)


@FUZZ
@given(text=mutated_spec())
def test_mutated_valid_spec(spec_path: Path, text: str) -> None:
    _check(spec_path, text.encode("utf-8", "surrogatepass"))


def test_unmutated_spec_is_valid(spec_path: Path) -> None:
    spec_path.write_text(VALID, encoding="utf-8")
    assert len(load_specs([spec_path]).documents) == 5
