"""The secrets escrow: every secret penguinctl holds, sealed to the operator's recovery key.

``backup state`` writes one next to the state backup. The file is a tar archive:

- ``manifest.json``: format, backend, when, how many secrets, the sha256 of the state backup
  written with it, the recovery key's recipient (public) and mode. No secret value, no path.
- keystore backend: ``keystore/...`` (the keystore's files as they are: each already encrypted
  with the master key, versions and dates kept) and ``master.key.age`` (the master key sealed to
  the recovery key);
- Vault backend: ``secrets.json.age``: every secret under penguinctl's prefix (the whole
  subtree, whatever its layout), sealed to the recovery key;
- a passphrase recovery key adds ``identity.age``: the private key sealed with the passphrase.

``restore`` puts the secrets into the configured backend of a fresh machine: keystore files and
key file as they were when both sides are keystores (nothing re-encrypted, dates kept), else one
``put`` per secret.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from penguinctl import clock
from penguinctl.errors import ConfigError, SecretError, UnsafePlan, UsageError
from penguinctl.private_files import create_file, make_dirs
from penguinctl.recovery import keys

FORMAT = "penguinctl-secrets-escrow/1"
MAX_MEMBER = 64 << 20  # one keystore file or the sealed export
MAX_MEMBERS = 1_000_000
_SAFE = re.compile(r"[A-Za-z0-9@+_.-]+")


@dataclass
class Escrow:
    manifest: dict[str, Any]
    members: dict[str, bytes]  # name -> content (keystore/<rel>, master.key.age, ...)


def _master_key(settings) -> str:
    if settings.master_key:
        return settings.master_key
    try:
        return settings.master_key_file.read_text().strip()
    except FileNotFoundError:
        raise ConfigError(
            f"keystore key file {settings.master_key_file} is missing: nothing to escrow",
            hint="run `penguinctl init`",
        ) from None


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    info.mtime = int(clock.now().timestamp())
    tar.addfile(info, io.BytesIO(data))


def write(app: Any, dest: Path, *, state_sha256: str | None = None) -> dict[str, Any]:
    """Seal the configured backend's secrets into ``dest``; returns the manifest (plus file and
    sha256). Raises ``ConfigError`` when no recovery key exists."""
    secrets = app.secrets()
    key = keys.load(secrets)
    if key is None:
        raise ConfigError(
            "no recovery key: the secrets cannot be escrowed",
            hint="penguinctl recovery-key create --out recovery-key.txt (keep that file offline)",
        )
    backend = app.settings.secrets_backend
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "backend": backend,
        "created_at": clock.now().isoformat(timespec="seconds"),
        "recipient": key.recipient,
        "key_mode": key.mode,
        "state_sha256": state_sha256,
    }
    members: list[tuple[str, bytes]] = []
    if backend == "keystore":
        base = app.settings.keystore_dir
        files = sorted(base.rglob("*.secret")) if base.is_dir() else []
        for file in files:
            members.append(("keystore/" + file.relative_to(base).as_posix(), file.read_bytes()))
        members.append(
            ("master.key.age", keys.seal(_master_key(app.settings).encode(), key.recipient))
        )
        manifest["count"] = len(files)
    else:
        export = {}
        for path in secrets.list(""):
            fields = secrets.get(path)
            if fields is not None:
                export[path] = {k: v.reveal() for k, v in fields.items()}
        payload = json.dumps(export, sort_keys=True).encode()
        export.clear()
        members.append(("secrets.json.age", keys.seal(payload, key.recipient)))
        manifest["count"] = _count_export(payload)
    if key.sealed_identity:
        import base64

        members.append(("identity.age", base64.b64decode(key.sealed_identity)))
    make_dirs(dest.parent)
    tmp = dest.with_name(f".{dest.name}.partial")
    tmp.unlink(missing_ok=True)
    create_file(tmp)
    try:
        with tarfile.open(tmp, "w") as tar:
            _add(tar, "manifest.json", json.dumps(manifest, indent=2).encode())
            for name, data in members:
                _add(tar, name, data)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    digest = hashlib.sha256(dest.read_bytes()).hexdigest()
    return {**manifest, "file": str(dest), "bytes": dest.stat().st_size, "sha256": digest}


def _count_export(payload: bytes) -> int:
    return len(json.loads(payload))


def read(path: Path) -> Escrow:
    """The escrow file's manifest and members (sizes bounded, names checked)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such secrets escrow file")
    members: dict[str, bytes] = {}
    manifest = None
    try:
        with tarfile.open(path, "r:") as tar:
            for n, info in enumerate(tar):
                if n > MAX_MEMBERS:
                    raise UsageError(f"{path}: too many entries for a secrets escrow")
                if not info.isfile():
                    continue
                parts = info.name.split("/")
                if (
                    info.size > MAX_MEMBER
                    or not all(_SAFE.fullmatch(p) for p in parts)
                    or any(p in (".", "..") for p in parts)
                ):
                    raise UsageError(f"{path}: unexpected entry {info.name[:80]!r}")
                fh = tar.extractfile(info)
                data = fh.read() if fh is not None else b""
                if info.name == "manifest.json":
                    manifest = json.loads(data)
                else:
                    members[info.name] = data
    except (tarfile.TarError, ValueError) as exc:
        raise UsageError(f"{path} is not a penguinctl secrets escrow ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UsageError(f"{path} is not a penguinctl secrets escrow (no {FORMAT} manifest)")
    return Escrow(manifest, members)


def identity_for(escrow: Escrow, *, key_file: Path | None, passphrase: str | None):
    if key_file is not None:
        return keys.read_identity_file(key_file)
    if passphrase is not None:
        sealed = escrow.members.get("identity.age")
        if sealed is None:
            raise UsageError(
                "this escrow was sealed to a key file, not a passphrase",
                hint="pass --recovery-key FILE",
            )
        import base64

        return keys.unseal_identity(base64.b64encode(sealed).decode(), passphrase)
    raise UsageError("give the recovery key: --recovery-key FILE or --passphrase")


def secrets_of(escrow: Escrow, identity: Any) -> Iterator[tuple[str, dict[str, str]]]:
    """(path, fields) of every escrowed secret, in path order."""
    if escrow.manifest["backend"] == "keystore":
        from cryptography.fernet import Fernet, InvalidToken

        fernet = Fernet(keys.unseal(escrow.members["master.key.age"], identity))
        for name in sorted(escrow.members):
            if not name.startswith("keystore/"):
                continue
            try:
                doc = json.loads(fernet.decrypt(escrow.members[name]))
            except InvalidToken:
                raise SecretError(f"escrowed secret {name} does not decrypt") from None
            yield name.removeprefix("keystore/").removesuffix(".secret"), dict(doc["fields"])
    else:
        export = json.loads(keys.unseal(escrow.members["secrets.json.age"], identity))
        for path in sorted(export):
            yield path, dict(export[path])


def restore(app: Any, escrow: Escrow, identity: Any, *, force: bool = False) -> dict[str, Any]:
    """Put the escrowed secrets into the configured backend (see the module docstring)."""
    settings = app.settings
    target = app.secrets()
    present = target.list("")
    if present and not force:
        raise UnsafePlan(
            f"the {settings.secrets_backend} secrets backend holds {len(present)} secret(s) "
            "already: recover restores onto an empty one",
            hint="recover on a fresh PENGUINCTL_HOME, or pass --force to overwrite",
        )
    m = escrow.manifest
    raw = m["backend"] == "keystore" and settings.secrets_backend == "keystore"
    key_text = None
    if raw:
        key_text = keys.unseal(escrow.members["master.key.age"], identity).decode().strip()
        if settings.master_key and settings.master_key != key_text:
            raw = False  # the machine's key differs: re-encrypt under it
    count = 0
    if raw:
        base = settings.keystore_dir
        make_dirs(base)
        if not settings.master_key:
            key_file = settings.master_key_file
            make_dirs(key_file.parent)
            key_file.unlink(missing_ok=True)
            create_file(key_file)
            key_file.write_text(f"{key_text}\n")
        for name, data in sorted(escrow.members.items()):
            if not name.startswith("keystore/"):
                continue
            file = base.joinpath(*name.removeprefix("keystore/").split("/"))
            make_dirs(file.parent)
            file.unlink(missing_ok=True)
            create_file(file)
            file.write_bytes(data)
            count += 1
        app._secrets = None  # re-open with the restored key
        target = app.secrets()
    else:
        for path, fields in secrets_of(escrow, identity):
            target.put(path, fields)
            count += 1
    unreadable = [p for p in target.list("") if target.get(p) is None]
    if count != m.get("count") or unreadable:
        raise SecretError(
            f"restored {count} secret(s) of {m.get('count')}; unreadable: {len(unreadable)}"
        )
    return {
        "secrets": count,
        "backend": settings.secrets_backend,
        "escrow_backend": m["backend"],
        "written_at": m.get("created_at"),
        "mode": "files" if raw else "put",
    }
