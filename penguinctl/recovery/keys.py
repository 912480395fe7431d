"""The operator's recovery key: an age X25519 key pair (pyrage, the Rust ``age`` library).

- ``create``: a new identity. Its public half (the recipient, ``age1...``) is stored in the
  secrets backend at ``paths.recovery_path()``; every escrow is sealed to it, so backups never
  need the private half. The private half (``AGE-SECRET-KEY-1...``) is either written once to a
  file the operator keeps offline, or, with a passphrase, sealed with age's scrypt passphrase mode
  and kept next to the recipient (it then travels inside every escrow file: the passphrase alone
  opens it).
- ``open_identity``: the identity from an identity file, or from an escrow's sealed identity and
  the passphrase.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from penguinctl.errors import ConfigError, SecretError, UsageError
from penguinctl.recovery.paths import recovery_path

MIN_PASSPHRASE = 12


@dataclass(frozen=True)
class RecoveryKey:
    recipient: str  # age1...
    sealed_identity: str | None  # base64 of the passphrase-sealed identity, or None

    @property
    def mode(self) -> str:
        return "passphrase" if self.sealed_identity else "identity-file"


def load(secrets: Any) -> RecoveryKey | None:
    """The configured recovery key, or None when none was created."""
    fields = secrets.get(recovery_path()) or {}
    if "recipient" not in fields:
        return None
    sealed = fields.get("sealed_identity")
    return RecoveryKey(fields["recipient"].reveal(), sealed.reveal() if sealed else None)


def create(
    secrets: Any, *, out: Path | None, passphrase: str | None, replace: bool = False
) -> tuple[RecoveryKey, str | None]:
    """A new recovery key; returns it and the identity text when it was not written to ``out``
    and not sealed with a passphrase (the caller shows it once). Refuses to replace an existing
    key unless ``replace`` (old escrows stay sealed to the old key)."""
    from pyrage import passphrase as age_pass
    from pyrage import x25519

    from penguinctl.private_files import create_file

    if load(secrets) is not None and not replace:
        from penguinctl.errors import UnsafePlan

        raise UnsafePlan(
            "a recovery key exists already: a new one does not open earlier escrows",
            hint="keep the old key for older backups, then pass --force",
        )
    if passphrase is not None and len(passphrase) < MIN_PASSPHRASE:
        raise UsageError(f"the recovery passphrase needs at least {MIN_PASSPHRASE} characters")
    identity = x25519.Identity.generate()
    text = str(identity)
    recipient = str(identity.to_public())
    sealed = None
    if passphrase is not None:
        sealed = base64.b64encode(age_pass.encrypt(text.encode(), passphrase)).decode()
    shown: str | None = None
    if out is not None:
        out = Path(out)
        if not create_file(out):
            raise UsageError(f"{out} exists: the recovery key is never written over a file")
        out.write_text(f"# penguinctl recovery key\n# public key: {recipient}\n{text}\n")
    elif sealed is None:
        shown = text
    fields = {"recipient": recipient}
    if sealed:
        fields["sealed_identity"] = sealed
    secrets.put(recovery_path(), fields)
    return RecoveryKey(recipient, sealed), shown


def read_identity_file(path: Path):
    """The X25519 identity in an age identity file (comment lines allowed)."""
    from pyrage import x25519

    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read the recovery key {path}: {exc.strerror}") from None
    for line in lines:
        line = line.strip()
        if line.startswith("AGE-SECRET-KEY-"):
            try:
                return x25519.Identity.from_str(line)
            except Exception:
                break
    raise UsageError(f"{path} holds no age identity (AGE-SECRET-KEY-1...)")


def unseal_identity(sealed: str, passphrase: str):
    from pyrage import DecryptError, x25519
    from pyrage import passphrase as age_pass

    try:
        text = age_pass.decrypt(base64.b64decode(sealed), passphrase).decode()
    except (DecryptError, ValueError):
        raise SecretError("the recovery passphrase does not open this escrow") from None
    return x25519.Identity.from_str(text.strip())


def seal(data: bytes, recipient: str) -> bytes:
    from pyrage import encrypt, x25519

    try:
        return encrypt(data, [x25519.Recipient.from_str(recipient)])
    except Exception as exc:
        raise ConfigError(
            f"the recovery key's recipient is unusable ({type(exc).__name__})",
            hint="create a new one: penguinctl recovery-key create --force",
        ) from None


def unseal(data: bytes, identity: Any) -> bytes:
    from pyrage import DecryptError, decrypt

    try:
        return decrypt(data, [identity])
    except DecryptError:
        raise SecretError(
            "the recovery key does not open this escrow",
            hint="use the key (or passphrase) that was current when the backup was written",
        ) from None
