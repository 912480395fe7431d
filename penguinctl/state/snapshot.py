"""A new SQLite state store made from a snapshot of the migrated schema, without Alembic.

Running the migrations on an empty SQLite database costs ~0.3-0.5 s at every first command of a
fresh state (importing Alembic and Mako, loading every migration, SQLite's batch mode): about a
quarter of a first ``apply``. ``sqlite_schema.sql`` next to the migrations is what they make,
dumped by ``sqlite3``'s ``iterdump`` (every ``CREATE`` statement exactly as SQLite stores it, the
``alembic_version`` row, and any row a migration inserts), with the revision it was made at on its
first line. ``ensure_migrated`` replays it on a store with no tables at all when that revision is
the head; otherwise (a stale snapshot, PostgreSQL, a store that exists) the migrations run as
before. tests/test_schema_snapshot.py checks that replaying it gives exactly the database the
migrations give, and that it is current.

Regenerate it after adding a migration::

    python -m penguinctl.state.snapshot
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from penguinctl.state.snapshot_file import HEADER, SNAPSHOT, snapshot_revision, snapshot_sql

__all__ = [
    "SNAPSHOT",
    "dump",
    "migrated_dump",
    "render",
    "snapshot_revision",
    "snapshot_sql",
    "write",
]


def dump(database: Path) -> list[str]:
    """``iterdump`` of a SQLite database: its schema and rows as SQL statements."""
    conn = sqlite3.connect(database)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def migrated_dump(revision: str = "head") -> list[str]:
    """What the migrations make of an empty SQLite database, up to ``revision``."""
    from alembic import command

    from penguinctl.state.db import _alembic_config, make_engine

    with tempfile.TemporaryDirectory() as tmp:
        database = Path(tmp) / "state.db"
        engine = make_engine(f"sqlite:///{database}")
        try:
            with engine.begin() as conn:
                command.upgrade(_alembic_config(conn), revision)
        finally:
            engine.dispose()
        return dump(database)


def render(revision: str, statements: list[str]) -> str:
    return HEADER + revision + "\n" + "\n".join(statements) + "\n"


def write(path: Path | None = None) -> str:
    """(Re)write the snapshot at the migrations' head; returns the head."""
    from penguinctl.state.db import head_revision

    head = head_revision()
    (path or SNAPSHOT).write_text(render(head, migrated_dump(head)), encoding="utf-8")
    return head


if __name__ == "__main__":
    print(f"wrote {SNAPSHOT} at revision {write()}")
