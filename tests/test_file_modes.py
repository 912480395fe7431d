"""File modes under umask 022 with a PENGUINCTL_HOME that already exists with 0755: the state
store (and SQLite's side files), state backups, debug logs and the keystore are 0600 in 0700
folders; zone files 0640 in 0750 folders (a DNS server's group reads them). `init` tightens what
an older version created readable by others."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from clitools import QUICKSTART

from penguinctl.cli.errors import handle


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _run(home: Path, state_url: str, *args: str) -> subprocess.CompletedProcess:
    """penguinctl in a child process started with umask 022."""
    env = {
        **os.environ,
        "PENGUINCTL_HOME": str(home),
        "PENGUINCTL_STATE": state_url,
        "PENGUINCTL_TODAY": "2026-11-23",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "penguinctl", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: os.umask(0o022),
    )
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o755)  # made by the operator (or a config tool) before penguinctl ran
    return home


def _modes(home: Path) -> dict[str, int]:
    return {str(p.relative_to(home)): _mode(p) for p in sorted(home.rglob("*"))}


def test_private_files_whatever_the_umask_and_home(home, state_url):
    sqlite = state_url.startswith("sqlite")
    url = f"sqlite:///{home / 'state.db'}" if sqlite else state_url
    _run(home, url, "init")
    _run(home, url, "apply", "-f", str(QUICKSTART), "--yes")
    _run(home, url, "backup", "state")
    with pytest.MonkeyPatch.context() as mp:  # an unexpected failure writes a debug log
        mp.setattr(os, "umask", os.umask)
        old = os.umask(0o022)
        try:
            assert handle(RuntimeError("boom"), debug=False, log_dir=home / "logs") == 1
        finally:
            os.umask(old)
    modes = _modes(home)
    assert _mode(home) == 0o755  # the operator's folder is left as it was
    zones = {k: v for k, v in modes.items() if k == "zones" or k.startswith("zones/")}
    private = {k: v for k, v in modes.items() if k not in zones}
    assert zones.pop("zones") == 0o750
    assert zones and set(zones.values()) == {0o640}, zones
    dirs = {k for k in private if (home / k).is_dir()}
    assert {"keystore", "backups", "logs"} <= dirs
    assert {k: private[k] for k in dirs} == dict.fromkeys(dirs, 0o700)
    files = {k: private[k] for k in private if k not in dirs}
    assert files == dict.fromkeys(files, 0o600), files
    assert any(k.startswith("keystore/") and k.endswith(".secret") for k in files)
    assert any(k.startswith("backups/") for k in files)
    assert any(k.startswith("logs/penguinctl-debug-") for k in files)
    if sqlite:
        assert "state.db" in files


def test_sqlite_side_files_take_the_database_mode(tmp_path):
    """SQLite makes -wal and -shm with the database file's mode: 0600, under umask 022."""
    from penguinctl.state.db import make_engine, migrate

    old = os.umask(0o022)
    try:
        engine = make_engine(f"sqlite:///{tmp_path / 'new' / 'state.db'}")
        with engine.connect() as conn:
            migrate(engine)
            conn.exec_driver_sql("SELECT count(*) FROM resources").scalar()
            made = {p.name: _mode(p) for p in (tmp_path / "new").iterdir()}
        engine.dispose()
    finally:
        os.umask(old)
    assert made == {
        "state.db": 0o600,
        "state.db-wal": 0o600,
        "state.db-shm": 0o600,
        "state.migrate.lock": 0o600,
    }
    assert _mode(tmp_path / "new") == 0o700


def test_init_tightens_what_an_older_version_left_open(home):
    url = f"sqlite:///{home / 'state.db'}"
    _run(home, url, "init")
    _run(home, url, "apply", "-f", str(QUICKSTART), "--yes")
    opened = [
        *(p for p in home.glob("state.*") if p.is_file()),
        home / "keystore",
        *(home / "keystore").rglob("*"),
    ]
    for path in opened:
        path.chmod(0o755 if path.is_dir() else 0o644)
    out = _run(home, url, "init", "-o", "json").stdout
    assert f'"modes_tightened": {len(opened)}' in out
    for path in opened:
        assert _mode(path) == (0o700 if path.is_dir() else 0o600), path
    assert '"modes_tightened": 0' in _run(home, url, "init", "-o", "json").stdout
