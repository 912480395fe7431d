"""Backing up and restoring the state store itself, so the control plane is recoverable.

- SQLite: ``sqlite3.Connection.backup`` (the online backup API: a consistent copy while other
  processes use the database), then ``PRAGMA integrity_check`` on the copy, written next to its
  final name and renamed into place.
- PostgreSQL: ``pg_dump --format=custom`` of the state store's schema (the ``search_path`` of the
  URL, else ``public``), restored with ``pg_restore --clean --if-exists --single-transaction``.
  The password goes to the tools through ``PGPASSWORD``, never in argv. pg_dump must not be older
  than the server (it refuses to dump a newer server); the versions are checked first and named in
  the error.

Each backup and restore is recorded as a ``backup_runs`` row (server ``""``) and audited. A
restore first writes a safety backup of the current contents (``pre-restore-*``).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from penguinctl import clock
from penguinctl.errors import ProviderError, StateError, UsageError
from penguinctl.private_files import create_file, make_dirs

_SEARCH_PATH = re.compile(r"-c\s*search_path\s*=\s*([A-Za-z_][\w$]*)")


def _stamp() -> str:
    return clock.now().strftime("%Y%m%dT%H%M%SZ")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _default_file(app, suffix: str, prefix: str = "state") -> Path:
    return Path(app.settings.data_dir) / "backups" / f"{prefix}-{_stamp()}.{suffix}"


# -- SQLite ---------------------------------------------------------------------------------------
def _sqlite_path(engine) -> Path:
    db = engine.url.database
    if not db or db == ":memory:":
        raise UsageError("an in-memory state store cannot be backed up")
    return Path(db).expanduser()


def sqlite_backup(source: Path, dest: Path) -> None:
    make_dirs(dest.parent)
    tmp = dest.with_name(f".{dest.name}.partial")
    tmp.unlink(missing_ok=True)
    create_file(tmp)  # 0600 before SQLite writes the copy (and its journal) into it
    src = sqlite3.connect(source)
    try:
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            check = dst.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            dst.close()
    finally:
        src.close()
    if check != "ok":
        tmp.unlink(missing_ok=True)
        raise StateError(f"the copy of {source} fails its integrity check: {check}")
    os.replace(tmp, dest)


def sqlite_restore(backup: Path, target: Path) -> None:
    src = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
    try:
        try:
            check = src.execute("PRAGMA integrity_check").fetchone()[0]
            has = src.execute(
                "SELECT count(*) FROM sqlite_master WHERE name = 'alembic_version'"
            ).fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"{backup} is not a SQLite state backup: {exc}") from None
        if check != "ok" or not has:
            raise UsageError(f"{backup} is not a usable state backup (integrity: {check})")
        dst = sqlite3.connect(target, timeout=30)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


# -- PostgreSQL -----------------------------------------------------------------------------------
def pg_params(url) -> tuple[dict[str, str], str]:
    """libpq environment for ``url`` (an SQLAlchemy URL) and the schema to dump."""
    env = {}
    if url.host:
        env["PGHOST"] = url.host
    if url.port:
        env["PGPORT"] = str(url.port)
    if url.username:
        env["PGUSER"] = url.username
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    if url.database:
        env["PGDATABASE"] = url.database
    options = unquote(str(url.query.get("options") or ""))
    match = _SEARCH_PATH.search(options)
    return env, match.group(1) if match else "public"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ProviderError(
            f"{name} is not installed on this machine",
            hint="install the PostgreSQL client tools (Debian: apt-get install postgresql-client)",
        )
    return path


def pg_versions(engine, pg_dump: str) -> tuple[int, int]:
    """(pg_dump major version, server major version)."""
    import sqlalchemy as sa

    out = subprocess.run([pg_dump, "--version"], capture_output=True, text=True, check=False)
    with engine.connect() as conn:
        server = int(conn.execute(sa.text("SHOW server_version_num")).scalar()) // 10000
    match = re.search(r"\)\s+(\d+)", out.stdout) or re.search(r"(\d+)", out.stdout)
    return (int(match.group(1)) if match else 0), server


def pg_backup(engine, dest: Path) -> str | None:
    """Dump the state schema to ``dest``; returns a warning about versions, or None."""
    pg_dump = _tool("pg_dump")
    client, server = pg_versions(engine, pg_dump)
    if client < server:
        raise ProviderError(
            f"pg_dump {client} cannot dump the state store's PostgreSQL {server} server",
            hint=f"install postgresql-client-{server} (pg_dump must be as new as the server)",
        )
    warning = (
        f"pg_dump {client} is newer than the server ({server}): the dump restores with "
        f"pg_restore {client} or newer"
        if client > server
        else None
    )
    env, schema = pg_params(engine.url)
    make_dirs(dest.parent)
    tmp = dest.with_name(f".{dest.name}.partial")
    tmp.unlink(missing_ok=True)
    create_file(tmp)  # 0600: pg_dump writes into the file as it is
    proc = subprocess.run(
        [pg_dump, "--format=custom", "--no-owner", "--no-privileges", "-n", schema, "-f", str(tmp)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise ProviderError(f"pg_dump failed: {_tail(proc.stderr)}")
    os.replace(tmp, dest)
    return warning


def pg_restore(engine, backup: Path) -> None:
    pg_restore_bin = _tool("pg_restore")
    env, schema = pg_params(engine.url)
    listing = subprocess.run(
        [pg_restore_bin, "-l", str(backup)], capture_output=True, text=True, check=False
    )
    if listing.returncode != 0 or "alembic_version" not in listing.stdout:
        raise UsageError(f"{backup} is not a PostgreSQL state backup ({_tail(listing.stderr)})")
    engine.dispose()
    proc = subprocess.run(
        [
            pg_restore_bin,
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            "-n",
            schema,
            "-d",
            env.get("PGDATABASE", "postgres"),
            str(backup),
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ProviderError(
            f"pg_restore failed (nothing was changed: single transaction): {_tail(proc.stderr)}"
        )


def _tail(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else "no output")[:300]


# -- commands -------------------------------------------------------------------------------------
def _record(app, operation: str, file: Path, status: str, stats: dict[str, Any], error=None):
    from penguinctl.backup import records

    engine = app.db
    run_id = records.start_run(
        engine,
        tenant="",
        server="",
        operation=operation,
        repository=str(file),
        actor=app.actor(),
    )
    records.finish_run(
        engine,
        run_id,
        status=status,
        actor=app.actor(),
        tenant="",
        resource="state",
        action=f"backup.{operation}",
        stats=stats,
        error=error,
    )
    return run_id


def backup_state(
    app,
    to: Path | None,
    *,
    record: bool = True,
    prefix: str = "state",
    escrow: bool = True,
    secrets_to: Path | None = None,
) -> dict:
    """Back the state store up to ``to`` (default: DATA_DIR/backups/state-STAMP.*) and, with
    ``escrow``, the secrets backend sealed to the recovery key next to it (``.escrow``)."""
    engine = app.db
    backend = engine.dialect.name
    warning = None
    if backend not in ("sqlite", "postgresql"):  # pragma: no cover - make_engine refuses others
        raise UsageError(f"cannot back up a {backend} state store")
    dest = Path(to) if to else _default_file(app, "sqlite" if backend == "sqlite" else "pgdump",
                                             prefix)  # fmt: skip
    try:
        if backend == "sqlite":
            sqlite_backup(_sqlite_path(engine), dest)
        else:
            warning = pg_backup(engine, dest)
    except Exception as exc:
        if record:  # a failed state backup is a run too (and a backup.failed event)
            from penguinctl.errors import PenguinError
            from penguinctl.masking import mask

            why = exc.message if isinstance(exc, PenguinError) else f"{type(exc).__name__}: {exc}"
            _record(app, "state", dest, "failed", {"backend": backend}, error=mask(why)[:1000])
        raise
    result = {
        "backend": backend,
        "file": str(dest),
        "bytes": dest.stat().st_size,
        "sha256": _sha256(dest),
        "warning": warning,
    }
    stats = {k: result[k] for k in ("backend", "bytes", "sha256")}
    if escrow:
        result["secrets"] = _escrow(app, secrets_to or dest.with_suffix(".escrow"), result)
        if result["secrets"].get("file"):
            stats["secrets"] = result["secrets"]["count"]
            stats["escrow_sha256"] = result["secrets"]["sha256"]
    if record:
        result["run_id"] = _record(app, "state", dest, "ok", stats)
    return result


def _escrow(app, dest: Path, state: dict) -> dict:
    """The secrets escrow next to a state backup; without a recovery key, a warning instead
    (the state backup alone still restores the state)."""
    from penguinctl.errors import ConfigError
    from penguinctl.recovery import escrow

    try:
        written = escrow.write(app, Path(dest), state_sha256=state["sha256"])
    except ConfigError as exc:
        return {"file": None, "warning": f"{exc.message} ({exc.hint})"}
    keep = ("file", "bytes", "sha256", "count", "backend", "key_mode")
    return {k: written[k] for k in keep}


def restore_state(app, file: Path) -> dict:
    file = Path(file)
    if not file.is_file():
        raise UsageError(f"{file}: no such backup file")
    engine = app.db
    safety = backup_state(app, None, record=False, prefix="pre-restore", escrow=False)
    backend = engine.dialect.name
    if backend == "sqlite":
        engine.dispose()
        sqlite_restore(file, _sqlite_path(engine))
    else:
        pg_restore(engine, file)
    engine.dispose()
    from penguinctl.state.db import ensure_migrated

    ensure_migrated(engine)  # a backup from an older version is brought up to the schema
    stats = {"backend": backend, "sha256": _sha256(file), "safety_copy": safety["file"]}
    run_id = _record(app, "state-restore", file, "ok", stats)
    return {"restored": str(file), "safety_copy": safety["file"], "run_id": run_id}
