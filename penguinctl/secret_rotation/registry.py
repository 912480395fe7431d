"""Which ``Rotation`` class rotates which kind of credential.

Built-in kinds are named as ``"module:Class"`` strings and imported only when asked for, so
``penguinctl --help`` imports none of them. A built-in module that does not exist (yet) is
skipped: ``load`` returns None and ``available`` leaves the kind out. Any other import failure is
an error naming the module, never silently skipped.

``register(kind, target)`` adds (or, with ``replace=True``, overrides) a kind at run time: a
class, or a ``"module:Class"`` string (plugins, tests). ``unregister(kind)`` removes it again.
"""

from __future__ import annotations

import importlib
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from penguinctl.secret_rotation.base import Rotation

BUILTIN: dict[str, str] = {
    "ssh": "penguinctl.secret_rotation.ssh:SshKeyRotation",
    "mailbox": "penguinctl.secret_rotation.mailbox:MailboxPasswordRotation",
    "dkim": "penguinctl.secret_rotation.dkim:DkimRotation",
    "mailu": "penguinctl.secret_rotation.mailu:MailuCredentialRotation",
}

_extra: dict[str, type[Rotation] | str] = {}
_lock = threading.Lock()


def register(kind: str, target: type[Rotation] | str, *, replace: bool = False) -> None:
    """Make ``target`` (a Rotation subclass or ``"module:Class"``) rotate ``kind``."""
    with _lock:
        if not replace and (kind in _extra or kind in BUILTIN):
            raise ValueError(f"rotation kind {kind!r} is already registered")
        _extra[kind] = target


def unregister(kind: str) -> None:
    """Remove a kind added by ``register`` (built-in kinds come back if it overrode one)."""
    with _lock:
        _extra.pop(kind, None)


def kinds() -> list[str]:
    """Every known kind (built-in or registered), whether its module exists or not."""
    with _lock:
        return sorted({*BUILTIN, *_extra})


def _import(ref: str) -> type[Rotation] | None:
    from penguinctl.errors import ConfigError
    from penguinctl.secret_rotation.base import Rotation

    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:  # the module itself is absent: not written yet
            return None
        raise ConfigError(
            f"rotation module {module_name} cannot be imported: {exc}",
            hint="install the missing dependency or fix the module",
        ) from None
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, Rotation)):
        raise ConfigError(f"{ref} is not a Rotation subclass")
    return cls


def load(kind: str) -> type[Rotation] | None:
    """The class rotating ``kind``; None when its module does not exist. Unknown kind: error."""
    from penguinctl.errors import UsageError

    with _lock:
        target = _extra.get(kind) or BUILTIN.get(kind)
    if target is None:
        raise UsageError(
            f"unknown rotation kind {kind!r}", hint=f"known kinds: {', '.join(kinds())}"
        )
    if isinstance(target, str):
        return _import(target)
    return target


def available(selected: list[str] | None = None) -> dict[str, type[Rotation]]:
    """``{kind: class}`` for ``selected`` kinds (default: every kind), in order, skipping kinds
    whose module does not exist."""
    out: dict[str, type[Rotation]] = {}
    for kind in selected if selected else kinds():
        cls = load(kind)
        if cls is not None:
            out[kind] = cls
    return out


__all__ = ["BUILTIN", "available", "kinds", "load", "register", "unregister"]
