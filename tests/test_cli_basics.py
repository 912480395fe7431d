"""CLI plumbing: lazy imports, global options anywhere, the error printer and exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from clitools import QUICKSTART, run_inprocess

from penguinctl.cli import hoist_global_options


def test_help_imports_nothing_heavy():
    code = (
        "import sys\n"
        "from penguinctl.cli import build_app\n"
        "build_app()\n"
        "heavy = [m for m in ('sqlalchemy', 'sqlmodel', 'pydantic', 'cryptography', 'yaml',"
        " 'dns', 'alembic', 'rich.table') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    res = subprocess.run(
        [sys.executable, "-m", "penguinctl", "--help"], capture_output=True, text=True
    )
    assert res.returncode == 0 and "apply" in res.stdout


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["get", "domains", "-o", "json"], ["-o", "json", "get", "domains"]),
        (
            ["plan", "-f", "x.yaml", "--output=yaml", "--yes"],
            ["--output=yaml", "--yes", "plan", "-f", "x.yaml"],
        ),
        (["state", "audit", "--debug"], ["--debug", "state", "audit"]),
        (["validate", "--", "-o"], ["validate", "--", "-o"]),
    ],
)
def test_global_options_are_hoisted(argv, expected):
    assert hoist_global_options(argv) == expected


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_STATE", f"sqlite:///{tmp_path / 'state.db'}")
    return tmp_path


def test_usage_errors_exit_2(env, capsys):
    assert run_inprocess(capsys, "apply", "--no-such-flag").code == 2
    res = run_inprocess(capsys, "plan")
    assert res.code == 2 and "-f" in res.err
    res = run_inprocess(capsys, "get", "domains", "-o", "xml")
    assert res.code == 2


def test_validate_reports_and_exports_schema(env, capsys):
    res = run_inprocess(capsys, "validate", "-f", QUICKSTART, "-o", "json")
    assert res.code == 0, res.err
    assert res.json()["counts"]["domains"] == 3
    schema = run_inprocess(capsys, "validate", "--schema")
    assert schema.code == 0
    assert isinstance(json.loads(schema.out), dict)


def test_unexpected_error_is_one_line_with_a_debug_log(env, capsys, monkeypatch):
    import penguinctl.engine as engine_mod

    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(engine_mod.Engine, "plan", boom)
    res = run_inprocess(capsys, "plan", "-f", QUICKSTART)
    assert res.code == 1
    lines = res.err.strip().splitlines()
    assert lines[0] == "error: unexpected failure: RuntimeError: disk on fire"
    assert lines[1].startswith("debug log: ")
    assert "Traceback" not in res.err
    log = lines[1].split()[2]
    assert "Traceback" in Path(log).read_text()

    res = run_inprocess(capsys, "plan", "-f", QUICKSTART, "--debug")
    assert res.code == 1 and "Traceback" in res.err


def test_init_is_idempotent(env, capsys):
    first = run_inprocess(capsys, "init", "-o", "json")
    assert first.code == 0, first.err
    assert first.json()["keystore_key_created"] is True
    key = env / "home" / "master.key"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    second = run_inprocess(capsys, "init", "-o", "json")
    assert second.code == 0 and second.json()["keystore_key_created"] is False


def test_five_mistakes_in_two_files_all_reported(env, capsys):
    acceptance = Path(__file__).parent / "specs" / "acceptance"
    res = run_inprocess(capsys, "apply", "-f", acceptance, "--yes")
    assert res.code == 3
    errors = [ln for ln in res.err.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 5, res.err
    for line in errors:
        assert re.match(r"error: \S+/(infra|domains)\.yaml:\d+:\d+: ", line), line
    assert {"infra.yaml", "domains.yaml"} == {
        re.search(r"/(\w+\.yaml):", ln).group(1) for ln in errors
    }
    assert "Traceback" not in res.err
    assert not (env / "home" / "zones").exists()


@pytest.mark.parametrize(
    "content",
    [
        b"apiVersion: penguinctl/v1\nkind: Tenant\nmetadata: {name: [unclosed\n",
        b"\xff\xfe\x00garbage\x80\x81",
        b"a: &a [x, x, x, x, x, x, x, x, x]\n"
        + b"".join(
            f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n".encode()
            for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        ),
        b"!!python/object/apply:os.system ['echo pwned']\n",
        b"apiVersion: penguinctl/v1\nkind: Domain\nmetadata: {name: 42}\nspec: []\n",
    ],
    ids=["malformed", "non-utf8", "alias-bomb", "python-tag", "wrong-types"],
)
def test_hostile_input_is_a_clean_error(env, capsys, tmp_path, content):
    spec = tmp_path / "hostile.yaml"
    spec.write_bytes(content)
    for command in ("validate", "plan", "apply"):
        res = run_inprocess(capsys, command, "-f", spec, "--yes")
        assert res.code == 3, (command, res.err)
        assert "hostile.yaml" in res.err and "Traceback" not in res.err
    assert not (env / "home" / "zones").exists()
