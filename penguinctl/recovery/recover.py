"""``penguinctl recover``: the state store and the secrets back on a fresh machine.

Order: the escrow is opened first (a wrong key changes nothing), the secrets are restored into
the configured backend (refused when it holds secrets, unless forced), then the state store
(refused when it records resources, unless forced; a safety copy is written either way). The
escrow's manifest names the sha256 of the state backup written with it: a different state file
is allowed but warned about (secrets and state from different moments).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from penguinctl.errors import UnsafePlan, UsageError


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _resources(app: Any) -> int:
    from penguinctl.state import repo
    from penguinctl.state.db import session_scope

    with session_scope(app.db) as session:
        return len(repo.list_resources(session))


def recover(
    app: Any,
    state_file: Path,
    secrets_file: Path,
    *,
    key_file: Path | None,
    passphrase: str | None,
    force: bool = False,
) -> dict[str, Any]:
    from penguinctl.backup.statestore import restore_state
    from penguinctl.private_files import make_dirs
    from penguinctl.recovery import escrow
    from penguinctl.state.audit import record
    from penguinctl.state.db import session_scope

    state_file, secrets_file = Path(state_file), Path(secrets_file)
    if not state_file.is_file():
        raise UsageError(f"{state_file}: no such state backup")
    s = app.settings
    for d in (s.config_dir, s.data_dir):
        make_dirs(d)
    sealed = escrow.read(secrets_file)
    identity = escrow.identity_for(sealed, key_file=key_file, passphrase=passphrase)
    next(escrow.secrets_of(sealed, identity), None)  # opens with this key, or raises
    warnings = []
    if sealed.manifest.get("state_sha256") not in (None, _sha256(state_file)):
        warnings.append(
            f"{secrets_file.name} was written with another state backup than {state_file.name}: "
            "secrets and state are from different moments"
        )
    if not force and _resources(app):
        raise UnsafePlan(
            "the state store records resources already: recover restores onto an empty one",
            hint="use a fresh PENGUINCTL_HOME / database, or pass --force",
        )
    restored = escrow.restore(app, sealed, identity, force=force)
    state = restore_state(app, state_file)
    resources = _resources(app)
    with session_scope(app.db) as session:
        record(
            session,
            actor=app.actor(),
            tenant="",
            action="recovery.recover",
            resource="state",
            result="ok",
            details={
                "secrets": restored["secrets"],
                "resources": resources,
                "state_file": state_file.name,
                "escrow_file": secrets_file.name,
                "escrow_written_at": restored["written_at"],
            },
        )
    return {
        **restored,
        "resources": resources,
        "state_file": str(state_file),
        "safety_copy": state["safety_copy"],
        "warnings": warnings,
    }
