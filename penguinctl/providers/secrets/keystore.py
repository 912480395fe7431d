"""The embedded secrets backend: an encrypted local keystore.

One file per secret under the keystore directory (``<dir>/<path>.secret``), each a Fernet token
(AES-128-CBC + HMAC-SHA256 from ``cryptography``) of a JSON document holding the fields and
metadata. One file per secret keeps writes O(1) for thousands of DKIM keys, and every write is
atomic (temp file, fsync, rename), so a crash never leaves a half-written secret.

The key comes from ``PENGUINCTL_MASTER_KEY`` or from a key file (mode 0600) created on first write
or by ``penguinctl init``. Directories are 0700, files 0600.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from penguinctl import clock
from penguinctl.errors import ConfigError, SecretError
from penguinctl.private_files import fsync_directory, make_dirs
from penguinctl.procs import pid_alive
from penguinctl.providers.secrets.base import SecretMeta, SecretsBackend, SecretValue

_SEGMENT = re.compile(r"[A-Za-z0-9@+_-][A-Za-z0-9@+._-]*")
_SUFFIX = ".secret"
_TMP = ".tmp-"


def _remove_stale_temp_files(directory: Path) -> None:
    """Delete temp files left by writers that died mid-write (named .tmp-<pid>-...)."""
    for entry in directory.glob(_TMP + "*"):
        pid = entry.name[len(_TMP) :].split("-", 1)[0]
        if pid.isdecimal() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            entry.unlink(missing_ok=True)


def _now() -> str:
    return clock.now().isoformat(timespec="seconds")


def ensure_key_file(path: Path) -> bool:
    """Create a new random key file (0600) unless one exists. True when created.

    The key is written to a temporary file and linked into place (``link`` fails when the name
    exists), so the file appears whole: processes started together on a fresh home (workers,
    serve replicas) read the one key that was made, never an empty file still being written."""
    import secrets as _secrets

    from cryptography.fernet import Fernet

    make_dirs(path.parent)
    if path.exists():
        return False
    tmp = path.parent / f"{_TMP}{os.getpid()}-{_secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(Fernet.generate_key() + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
    finally:
        tmp.unlink(missing_ok=True)
    fsync_directory(path.parent)
    return True


class KeystoreBackend(SecretsBackend):
    name = "keystore"

    def __init__(self, directory: Path, *, key_file: Path, master_key: str | None = None) -> None:
        self.directory = directory
        self.key_file = key_file
        self._master_key = master_key
        self._fernet = None

    # -- key handling -------------------------------------------------------------------------
    def _cipher(self, *, create: bool):
        if self._fernet is not None:
            return self._fernet
        from cryptography.fernet import Fernet

        key = self._master_key
        if key is None:
            if create:
                ensure_key_file(self.key_file)
            try:
                mode = self.key_file.stat().st_mode & 0o777
                if mode & 0o077:
                    raise ConfigError(
                        f"keystore key file {self.key_file} is readable by others (mode {mode:o})",
                        hint=f"run: chmod 600 {self.key_file}",
                    )
                key = self.key_file.read_text().strip()
            except FileNotFoundError:
                raise ConfigError(
                    f"keystore key file {self.key_file} is missing",
                    hint="run `penguinctl init`, or set PENGUINCTL_MASTER_KEY",
                ) from None
        try:
            self._fernet = Fernet(key.encode())
        except ValueError:
            raise ConfigError(
                "the keystore master key is not a valid key (32 url-safe base64-encoded bytes)",
                hint="generate one with `penguinctl init` or fix PENGUINCTL_MASTER_KEY",
            ) from None
        return self._fernet

    def _file(self, path: str) -> Path:
        parts = path.strip("/").split("/")
        if not path or not all(_SEGMENT.fullmatch(p) for p in parts):
            raise SecretError(
                f"invalid secret path {path!r}", hint="use segments of [A-Za-z0-9@+._-]"
            )
        return self.directory.joinpath(*parts[:-1], parts[-1] + _SUFFIX)

    # -- contract -----------------------------------------------------------------------------
    def _load(self, path: str) -> dict | None:
        from cryptography.fernet import InvalidToken

        file = self._file(path)
        try:
            token = file.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return json.loads(self._cipher(create=False).decrypt(token))
        except InvalidToken:
            raise SecretError(
                f"keystore secret {path} cannot be decrypted with the current master key",
                hint="check PENGUINCTL_MASTER_KEY or the key file",
            ) from None

    def get(self, path: str) -> dict[str, SecretValue] | None:
        doc = self._load(path)
        if doc is None:
            return None
        return {k: SecretValue(v) for k, v in doc["fields"].items()}

    def meta(self, path: str) -> SecretMeta | None:
        doc = self._load(path)
        if doc is None:
            return None
        return SecretMeta(path, doc["version"], doc["created_at"], doc["updated_at"])

    def put(self, path: str, fields: dict[str, str]) -> SecretMeta:
        cipher = self._cipher(create=True)
        old = self._load(path)
        now = _now()
        doc = {
            "fields": dict(fields),
            "version": (old["version"] + 1) if old else 1,
            "created_at": old["created_at"] if old else now,
            "updated_at": now,
        }
        file = self._file(path)
        make_dirs(file.parent)  # every folder 0700, however many are new
        _remove_stale_temp_files(file.parent)
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f"{_TMP}{os.getpid()}-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(cipher.encrypt(json.dumps(doc).encode()))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return SecretMeta(path, doc["version"], doc["created_at"], doc["updated_at"])

    def delete(self, path: str) -> None:
        self._file(path).unlink(missing_ok=True)

    def children(self, folder: str = "") -> set[str]:
        base = self.directory.joinpath(*[p for p in folder.strip("/").split("/") if p])
        if not base.is_dir():
            return set()
        out = set()
        for entry in base.iterdir():
            if entry.is_dir() and next(entry.rglob("*" + _SUFFIX), None) is not None:
                out.add(entry.name + "/")
            elif entry.is_file() and entry.name.endswith(_SUFFIX):
                out.add(entry.name[: -len(_SUFFIX)])
        return out

    def list(self, prefix: str = "") -> list[str]:
        base = self.directory
        if not base.is_dir():
            return []
        found = []
        for file in base.rglob("*" + _SUFFIX):
            rel = file.relative_to(base).as_posix()[: -len(_SUFFIX)]
            if rel.startswith(prefix.strip("/")):
                found.append(rel)
        return sorted(found)
