"""Engines, sessions and migrations for SQLite and PostgreSQL. Nothing is built at import time."""

from __future__ import annotations

import fcntl
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlmodel import Session

from penguinctl.errors import StateError

MIGRATIONS = Path(__file__).parent / "migrations"
_PG_MIGRATE_LOCK = 0x70656E67  # "peng": serialises concurrent migrations on PostgreSQL


def masked(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparsable URL)"


def make_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StateError(
            f"state store URL {url!r} is not a valid SQLAlchemy URL",
            hint="e.g. sqlite:///state.db or postgresql+psycopg://user@host/db",
        ) from None
    try:
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:" and not parsed.query.get("uri"):
                from penguinctl.private_files import create_file, make_dirs

                # 0600 before SQLite creates it (0644 under umask 022); SQLite gives the -wal,
                # -shm and -journal files the database file's mode
                database = Path(parsed.database).expanduser()
                make_dirs(database.parent)
                create_file(database)
            engine = create_engine(parsed, connect_args={"timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        if parsed.get_backend_name() == "postgresql":
            return create_engine(parsed, pool_pre_ping=True, connect_args={"connect_timeout": 5})
    except NoSuchModuleError:
        pass
    raise StateError(
        f"state store {masked(url)}: unsupported database",
        hint="use sqlite:///PATH or postgresql+psycopg://...",
    )


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _alembic_config(connection):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        from penguinctl.private_files import create_file

        lock_path = Path(engine.url.database).expanduser().with_suffix(".migrate.lock")
        create_file(lock_path)
        with open(lock_path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
    else:
        yield


def migrate(engine: Engine) -> None:
    """Upgrade the schema to the newest migration. Safe to run concurrently."""
    from alembic import command

    try:
        with _migration_lock(engine), engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATE_LOCK})
            command.upgrade(_alembic_config(conn), "head")
    except OperationalError as exc:
        raise _unreachable(engine, exc) from None


_REVISION = re.compile(r"^(down_revision|revision)\s*(?::[^=]*)?=\s*['\"]?([\w-]+|None)", re.M)


def _head_from_files() -> str | None:
    """The head revision read from the migration files' ``revision``/``down_revision`` lines:
    cheap next to loading Alembic's script directory (this runs on every command)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        found = dict((k, v) for k, v in _REVISION.findall(path.read_text(encoding="utf-8")))
        if "revision" in found:
            revisions.add(found["revision"])
            if found.get("down_revision") not in (None, "None"):
                parents.add(found["down_revision"])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _stored_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def ensure_migrated(engine: Engine) -> None:
    """Migrate only when the schema is behind (one query on the fast path)."""
    try:
        head = _head_from_files()
        if head is not None and _stored_revision(engine) == head:
            return
        if current_revision(engine) == head_revision():
            return
    except OperationalError as exc:
        raise _unreachable(engine, exc) from None
    migrate(engine)


def _unreachable(engine: Engine, exc: OperationalError) -> StateError:
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
    return StateError(
        f"state store {masked(str(engine.url))} is unreachable: {reason}",
        hint="check PENGUINCTL_STATE / --state and that the database is running",
    )


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
