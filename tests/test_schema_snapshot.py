"""A fresh SQLite state store is made from penguinctl/state/migrations/sqlite_schema.sql instead of
running the migrations: it must be exactly the database the migrations make."""

from __future__ import annotations

import sqlalchemy as sa

from penguinctl.state import db, snapshot, snapshot_file
from penguinctl.state.db import current_revision, ensure_migrated, head_revision, make_engine


def test_snapshot_is_the_migrated_database_at_its_revision():
    """Replayed, the snapshot gives the same schema and rows as running the migrations up to the
    revision it names (every CREATE statement as SQLite stores it, the alembic_version row)."""
    revision = snapshot.snapshot_revision()
    assert revision is not None, "regenerate: python -m penguinctl.state.snapshot"
    assert snapshot.render(revision, snapshot.migrated_dump(revision)) == (
        snapshot.SNAPSHOT.read_text(encoding="utf-8")
    )


def test_snapshot_is_current():
    assert snapshot.snapshot_revision() == head_revision(), (
        "a migration was added: regenerate the snapshot with `python -m penguinctl.state.snapshot`"
    )


def test_fresh_store_from_snapshot_equals_migrated_store(tmp_path):
    fast = make_engine(f"sqlite:///{tmp_path / 'fast.db'}")
    ensure_migrated(fast)
    fast.dispose()
    migrated = snapshot.migrated_dump()
    assert snapshot.dump(tmp_path / "fast.db") == migrated
    engine = make_engine(f"sqlite:///{tmp_path / 'fast.db'}")
    try:
        assert current_revision(engine) == head_revision()
        ensure_migrated(engine)  # at head: nothing to do
        with engine.connect() as conn:
            assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(sa.text("SELECT count(*) FROM resources")).scalar() == 0
    finally:
        engine.dispose()


def test_stale_snapshot_or_existing_tables_run_the_migrations(tmp_path, monkeypatch):
    calls = []
    real = db.migrate
    monkeypatch.setattr(db, "migrate", lambda engine: (calls.append(1), real(engine)))
    # a snapshot made at another revision is not used
    monkeypatch.setattr(snapshot_file, "SNAPSHOT", tmp_path / "old.sql")  # what db.py reads
    (tmp_path / "old.sql").write_text(snapshot.render("0001", ["BEGIN TRANSACTION;", "COMMIT;"]))
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        ensure_migrated(engine)
        assert calls == [1] and current_revision(engine) == head_revision()
    finally:
        engine.dispose()
    monkeypatch.undo()
    monkeypatch.setattr(db, "migrate", lambda engine: (calls.append(2), real(engine)))
    # a store that has some table but no alembic_version is left to the migrations
    engine = make_engine(f"sqlite:///{tmp_path / 'b.db'}")
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE foreign_thing (x INTEGER)"))
        ensure_migrated(engine)
        assert calls[-1] == 2 and current_revision(engine) == head_revision()
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM foreign_thing")).scalar() == 0
    finally:
        engine.dispose()
