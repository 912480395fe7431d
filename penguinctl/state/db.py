"""Engines, sessions and migrations for SQLite and PostgreSQL. Nothing is built at import time."""

from __future__ import annotations

import fcntl
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlmodel import Session

from penguinctl.errors import NoState, StateConfigError, StateError

MIGRATIONS = Path(__file__).parent / "migrations"
_PG_MIGRATE_LOCK = 0x70656E67  # "peng": serialises concurrent migrations on PostgreSQL


def masked(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return _shown(url)


def make_engine(url: str, *, create: bool = True) -> Engine:
    """An engine for ``url``. ``postgres://`` and ``postgresql://`` mean psycopg 3.

    With ``create=False`` nothing is created on disk: a SQLite file that does not exist (or a
    directory that does not) raises ``NoState`` instead of being made.
    """
    from penguinctl.settings import normalize_state_url

    try:
        parsed = make_url(normalize_state_url(url))
    except ArgumentError:
        raise StateConfigError(
            f"state store URL {_shown(url)!r} is not a valid SQLAlchemy URL",
            hint="e.g. sqlite:////abs/path/state.db or postgresql://user@host/db",
        ) from None
    try:
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:" and not parsed.query.get("uri"):
                from penguinctl.private_files import create_file, make_dirs

                database = Path(parsed.database).expanduser()
                if not create and not database.is_file():
                    raise NoState(
                        f"no state store yet at {database}",
                        hint="create it with `penguinctl init` or `penguinctl apply -f SPEC`, "
                        "or point --state / PENGUINCTL_STATE at an existing one",
                    )
                try:
                    # 0600 before SQLite creates it (0644 under umask 022); SQLite gives the -wal,
                    # -shm and -journal files the database file's mode
                    make_dirs(database.parent)
                    create_file(database)
                except OSError as exc:
                    raise StateConfigError(
                        f"state store {database}: cannot create it: {exc.strerror}",
                        hint="check --state / PENGUINCTL_STATE",
                    ) from None
            engine = create_engine(parsed, connect_args={"timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        if parsed.get_backend_name() == "postgresql":
            return create_engine(parsed, pool_pre_ping=True, connect_args={"connect_timeout": 5})
    except NoSuchModuleError:
        pass
    raise StateConfigError(
        f"state store {masked(url)}: unsupported database",
        hint="use sqlite:///PATH or postgresql://user@host/db",
    )


def read_engine(engine: Engine, *, connections: int, sqlite_busy_ms: int = 30_000) -> Engine:
    """A sibling of ``engine`` for short reads: ``connections`` pooled connections (no
    overflow) in autocommit, so a read is one statement and one round trip: no BEGIN, no
    ROLLBACK when the connection goes back, and (PostgreSQL) no ping at checkout. A connection
    that went away raises once (``DBAPIError.connection_invalidated``; the pool is then
    renewed): callers retry (``penguinctl.web.api.reads``). ``sqlite_busy_ms``: how long a
    SQLite read waits for a file lock."""
    common = {"pool_size": connections, "max_overflow": 0, "isolation_level": "AUTOCOMMIT"}
    if engine.dialect.name == "sqlite":
        found = create_engine(engine.url, connect_args={"timeout": sqlite_busy_ms / 1000}, **common)

        def pragmas(dbapi_conn: Any, record: Any) -> None:
            _sqlite_pragmas(dbapi_conn, record)
            dbapi_conn.execute(f"PRAGMA busy_timeout={int(sqlite_busy_ms)}")

        event.listen(found, "connect", pragmas)
        return found
    return create_engine(engine.url, connect_args={"connect_timeout": 5}, **common)


def _shown(url: str) -> str:
    """``url`` for a message: its password (``scheme://user:PASSWORD@host``) replaced."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


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


def ensure_migrated(engine: Engine, *, create: bool = True) -> None:
    """Migrate only when the schema is behind (one query on the fast path).

    With ``create=False`` (read-only commands) an empty store is not initialised: ``NoState``.
    An existing store whose schema is behind is still upgraded.
    """
    try:
        head = _head_from_files()
        stored = _stored_revision(engine)
        if head is not None and stored == head:
            return
        if stored is None and not create:
            raise NoState(
                f"no state store yet in {masked(str(engine.url))} (it has no penguinctl tables)",
                hint="create it with `penguinctl init` or `penguinctl apply -f SPEC`, "
                "or point --state / PENGUINCTL_STATE at an existing one",
            )
        if stored is None and head is not None and _create_from_snapshot(engine, head):
            return
        if current_revision(engine) == head_revision():
            return
    except OperationalError as exc:
        raise _unreachable(engine, exc) from None
    migrate(engine)


def _create_from_snapshot(engine: Engine, head: str) -> bool:
    """A SQLite store with no tables at all gets the migrated schema from its snapshot
    (``penguinctl.state.snapshot_file``: the same database, without Alembic). False when that does
    not apply (PostgreSQL, a snapshot older than ``head``, tables present): migrate then."""
    if engine.dialect.name != "sqlite":
        return False
    from penguinctl.state.snapshot_file import snapshot_sql

    sql = snapshot_sql(head)
    if sql is None:
        return False
    with _migration_lock(engine):
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            if cur.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                return False  # created meanwhile, or not empty: the migrations decide
            cur.executescript(sql)  # one transaction: BEGIN ... COMMIT
            cur.close()
        finally:
            raw.close()
    return True


def inspect_store(url: str) -> dict[str, object]:
    """``{"exists": bool, "status": text}`` for ``url``, creating and migrating nothing."""
    try:
        engine = make_engine(url, create=False)
    except NoState:
        return {"exists": False, "status": "not created yet: run `penguinctl init` (or apply)"}
    except StateError as exc:
        return {"exists": False, "status": exc.message}
    try:
        stored = _stored_revision(engine)
    except OperationalError as exc:
        return {"exists": False, "status": _unreachable(engine, exc).message}
    finally:
        engine.dispose()
    if stored is None:
        return {"exists": False, "status": "empty: run `penguinctl init`"}
    behind = "" if stored == head_revision() else " (behind: the next command upgrades it)"
    return {"exists": True, "status": f"ready, schema {stored}{behind}"}


def open_existing(url: str) -> Engine:
    """An engine on an existing, migrated state store; creates nothing (``NoState`` if none)."""
    engine = make_engine(url, create=False)
    try:
        ensure_migrated(engine, create=False)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _unreachable(engine: Engine, exc: OperationalError) -> StateError:
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
    return StateConfigError(
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
