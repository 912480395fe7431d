"""Shared fixtures: the state store on both backends (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import secrets

import pytest
from daemons import missing
from daemons import pytest_runtest_makereport as pytest_runtest_makereport  # the CI rule

PG_BASE = os.environ.get("PENGUINCTL_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_admin():
    from sqlalchemy import create_engine

    return create_engine(PG_BASE, connect_args={"connect_timeout": 5}, isolation_level="AUTOCOMMIT")


@pytest.fixture(params=["sqlite", "postgres"])
def state_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    schema = f"pt_{secrets.token_hex(6)}"
    admin = _pg_admin()
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except OperationalError as exc:
        admin.dispose()
        missing(f"PostgreSQL at {PG_BASE} is unreachable: {str(exc.orig).strip()[:200]}")
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def migrated_engine(state_url):
    from penguinctl.state.db import make_engine, migrate

    engine = make_engine(state_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def no_operator_ssh_config(monkeypatch):
    """Tests never read the machine's ~/.ssh/config or /etc/ssh/ssh_config (a ProxyJump there
    would change where they connect); a test that wants one sets PENGUINCTL_SSH_CONFIG."""
    monkeypatch.setenv("PENGUINCTL_SSH_CONFIG", "none")


@pytest.fixture(autouse=True)
def no_warm_server(monkeypatch):
    """Commands the tests run never start (or use) a warm server (penguinctl.warm), which would
    outlive the test; tests/test_warm.py turns it on in a private runtime directory."""
    monkeypatch.setenv("PENGUINCTL_WARM", "0")


# Balance of the xdist workers (scripts/test runs `-n <cores + 1> --dist loadfile`). A file is
# one unit of work, so its module-scoped daemons start once; but a few files hold tests that each
# take minutes, and as one unit they kept one worker busy for ten minutes after the others had
# finished. Their tests are units of their own (none of these files has a module- or session-scoped
# fixture), and every unit is handed out longest first, from tests/durations.json (seconds per
# test as `scripts/test-durations` measured them; a test missing from it counts as 0 s). A stale
# table costs balance, never a test.
SPLIT_FILES = frozenset(
    {
        "tests/test_fast_forward.py",
        "tests/test_campaign_crash.py",
        "tests/test_api_client.py",
        "tests/test_leak_audit.py",
        "tests/test_recovery_drill.py",
        "tests/test_reliability.py",
    }
)


def _unit(nodeid: str) -> str:
    file = nodeid.split("::", 1)[0]
    return nodeid if file in SPLIT_FILES else file


def _durations() -> dict[str, float]:
    import json
    from pathlib import Path

    try:
        return json.loads(Path(__file__).with_name("durations.json").read_text())
    except (OSError, ValueError):
        return {}


def pytest_collection_modifyitems(config, items) -> None:
    durations = _durations()
    weight: dict[str, float] = {}
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        unit = _unit(item.nodeid)
        weight[unit] = weight.get(unit, 0.0) + float(durations.get(item.nodeid, 0.0))
        first.setdefault(unit, i)
    items.sort(key=lambda item: (-weight[_unit(item.nodeid)], first[_unit(item.nodeid)]))


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile`, with the files above split into tests, in the collection's order
    (longest first) rather than xdist's (most tests first)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class LongestFirst(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _unit(nodeid)

    config.option.loadscopereorder = False
    return LongestFirst(config, log)
