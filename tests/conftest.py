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
