"""The CI rule (tests/daemons.py): under CI a skip is a failure unless the test is marked not
applicable; whatever value of CI a runner sets, and whichever way a test skips."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from daemons import in_ci, missing, need_binary, need_module, optional_binary

TESTS = Path(__file__).parent

INNER = """
import pytest
from daemons import missing, need_binary, need_module, not_applicable, NOT_APPLICABLE

def test_module():
    need_module("penguinctl_no_such_module")

def test_importorskip():
    pytest.importorskip("penguinctl_no_such_module")

def test_binary():
    need_binary("penguinctl-no-such-daemon", "nothing")

def test_plain_skip():
    pytest.skip("the daemon is not running")

@pytest.fixture
def daemon():
    missing("PostgreSQL is unreachable")

def test_skipping_fixture(daemon):
    pass

@pytest.mark.skipif(True, reason="whatever")
def test_skipif():
    pass

def test_not_applicable():
    not_applicable("schemas are a PostgreSQL concept")

@pytest.mark.skipif(True, reason=NOT_APPLICABLE + "needs Linux /proc")
def test_not_applicable_marker():
    pass

@pytest.mark.xfail(reason="a known bug", strict=True)
def test_xfail():
    assert False

def test_passes():
    pass
"""
NEEDS = [
    "test_module",
    "test_importorskip",
    "test_binary",
    "test_plain_skip",
    "test_skipping_fixture",
    "test_skipif",
]
ALLOWED = ["test_not_applicable", "test_not_applicable_marker"]


def _outcomes(tmp_path: Path, ci: str | None) -> dict[str, str]:
    (tmp_path / "test_inner.py").write_text(INNER)
    report = tmp_path / f"report-{ci}.xml"
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    args = ["-p", "daemons", "-p", "no:cacheprovider", "-q", "-c", os.devnull]
    args += ["--rootdir", str(tmp_path), f"--junitxml={report}", str(tmp_path / "test_inner.py")]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.exists(), proc.stdout + proc.stderr
    found = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        found[case.get("name")] = kinds[0] if kinds else "passed"
    return found


@pytest.mark.parametrize("ci", ["1", "yes"])
def test_under_ci_every_skip_fails_but_not_applicable(tmp_path, ci):
    got = _outcomes(tmp_path, ci)
    assert {name: got[name] in ("failure", "error") for name in NEEDS} == dict.fromkeys(
        NEEDS, True
    ), got
    assert [got[name] for name in ALLOWED] == ["skipped", "skipped"]
    assert got["test_xfail"] == "skipped"  # junit's word for xfailed
    assert got["test_passes"] == "passed"


@pytest.mark.parametrize("ci", [None, "false"])
def test_outside_ci_missing_things_skip(tmp_path, ci):
    got = _outcomes(tmp_path, ci)
    assert {name: got[name] for name in NEEDS + ALLOWED} == dict.fromkeys(
        NEEDS + ALLOWED, "skipped"
    )
    assert got["test_passes"] == "passed"


def test_in_ci_values():
    for value in ("true", "TRUE", " True ", "1", "yes", "Yes", "on"):
        assert in_ci({"CI": value}), value
    for value in ("", "false", "0", "no", "off", "maybe"):
        assert not in_ci({"CI": value}), value
    assert not in_ci({})


def test_helpers_fail_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="Debian nothing"):
        need_binary("penguinctl-no-such-daemon", "nothing")
    with pytest.raises(pytest.fail.Exception, match="Debian nothing"):
        optional_binary("penguinctl-no-such-daemon", "nothing")
    with pytest.raises(pytest.fail.Exception, match="penguinctl_no_such_module"):
        need_module("penguinctl_no_such_module")
    with pytest.raises(pytest.fail.Exception, match="PostgreSQL"):
        missing("PostgreSQL is unreachable")
    monkeypatch.setenv("CI", "false")
    assert optional_binary("penguinctl-no-such-daemon", "nothing") is None
    with pytest.raises(pytest.skip.Exception):
        need_binary("penguinctl-no-such-daemon", "nothing")
    assert need_module("json").dumps([]) == "[]"
