"""Files and directories only their owner may read, whatever the umask.

The state store holds lead addresses and the audit trail, state backups are copies of it, debug
logs hold tracebacks, the keystore holds secrets: penguinctl creates them 0600 in directories it
creates 0700, even when ``PENGUINCTL_HOME`` already exists with 0755 or the umask is 022.
``mkdir(mode=...)`` and ``open(mode=...)`` are filtered by the umask, and ``mkdir(parents=True)``
gives the parents the default mode, so every creation here sets its mode explicitly.

Zone files are the exception: a DNS server reads them, so they are 0640 (group-readable) in
directories made 0750; see README, "File modes".

:func:`tighten` brings an existing file or directory down to a mode (``penguinctl init`` uses it
on what older versions created); a path owned by another user is left alone.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
SHARED_DIR = 0o750  # zone directories: the DNS server's group may list and read
SHARED_FILE = 0o640  # zone files


def fsync_directory(directory: Path) -> None:
    """Make a rename, link or unlink in ``directory`` durable."""
    dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def make_dirs(path: Path, mode: int = PRIVATE_DIR) -> Path:
    """Create ``path`` and any missing parents, each new one with exactly ``mode``. Existing
    directories are left as they are."""
    missing: list[Path] = []
    current = path
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=mode)
        except FileExistsError:
            if not directory.is_dir():
                raise
            continue  # made by a concurrent process: its mode is its own
        os.chmod(directory, mode)
    return path


def create_file(path: Path, mode: int = PRIVATE_FILE) -> bool:
    """Create ``path`` empty with exactly ``mode`` unless it exists; True when created."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return True


def tighten(path: Path, mode: int) -> bool:
    """Remove the permission bits of ``path`` beyond ``mode`` if this user owns it; True when
    its mode changed. Missing paths and symlinks are ignored."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode) or st.st_uid != os.geteuid():
        return False
    current = stat.S_IMODE(st.st_mode)
    wanted = current & mode
    if wanted == current:
        return False
    os.chmod(path, wanted)
    return True


def tighten_tree(root: Path, *, dir_mode: int = PRIVATE_DIR, file_mode: int = PRIVATE_FILE) -> int:
    """:func:`tighten` ``root`` and everything below it; the number of paths changed."""
    if not root.is_dir() or root.is_symlink():
        return 0
    changed = int(tighten(root, dir_mode))
    for base, dirs, files in os.walk(root):
        for name in dirs:
            changed += tighten(Path(base) / name, dir_mode)
        for name in files:
            changed += tighten(Path(base) / name, file_mode)
    return changed


def sqlite_files(database: Path) -> list[Path]:
    """A SQLite state store's files: the database, the side files SQLite gives the database's
    own mode, and penguinctl's lock files next to it."""
    sides = [database.with_name(database.name + s) for s in ("-wal", "-shm", "-journal")]
    locks = [database.with_suffix(s) for s in (".migrate.lock", ".worker.lock")]
    return [database, *sides, *locks]
