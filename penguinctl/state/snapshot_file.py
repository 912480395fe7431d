"""Reading the SQLite schema snapshot (``migrations/sqlite_schema.sql``): which revision it was
made at, and its SQL when that is the head. Making it is ``penguinctl.state.snapshot``; replaying
it is ``penguinctl.state.db``. (Split from snapshot.py so that db.py, which replays it, and
snapshot.py, which runs the migrations through db.py to make it, do not import each other.)
"""

from __future__ import annotations

from pathlib import Path

SNAPSHOT = Path(__file__).parent / "migrations" / "sqlite_schema.sql"
HEADER = "-- penguinctl SQLite schema at revision "


def snapshot_revision(path: Path | None = None) -> str | None:
    """The revision the snapshot was made at (None: no snapshot)."""
    try:
        with open(path or SNAPSHOT, encoding="utf-8") as fh:
            first = fh.readline()
    except OSError:
        return None
    return first[len(HEADER) :].strip() if first.startswith(HEADER) else None


def snapshot_sql(head: str, path: Path | None = None) -> str | None:
    """The snapshot's SQL when it was made at ``head``, else None."""
    try:
        text = (path or SNAPSHOT).read_text(encoding="utf-8")
    except OSError:
        return None
    first, _, body = text.partition("\n")
    if first != HEADER + head:
        return None
    return body
