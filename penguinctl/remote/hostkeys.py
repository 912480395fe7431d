"""SSH host key pinning: trust on first contact, refuse any change afterwards.

The first successful key exchange with ``host:port`` records the server's key (``pin``). Every
later connection must present exactly that key, or it fails with ``HostKeyChanged`` before
authentication, so nothing is sent or executed. The only way to accept a new key is the
deliberate ``forget`` (behind ``penguinctl server trust-hostkey SERVER``) followed by a new first
contact. There is no "accept silently" mode.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import paramiko

from penguinctl.remote.errors import HostKeyChanged

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

PinnedKey = tuple[str, str]  # (key_type, base64 of the public key blob)


def fingerprint(key_b64: str) -> str:
    """OpenSSH's fingerprint of a public key blob: ``SHA256:`` + unpadded base64 of its sha256."""
    digest = hashlib.sha256(base64.b64decode(key_b64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def changed_error(host: str, port: int, old: PinnedKey, new: PinnedKey) -> HostKeyChanged:
    return HostKeyChanged(
        host,
        port,
        old_type=old[0],
        old_fp=fingerprint(old[1]),
        new_type=new[0],
        new_fp=fingerprint(new[1]),
    )


class HostKeyStore(ABC):
    """Where pinned host keys live. Implementations must be safe to call from several threads.

    Contract:
    - ``get`` returns the pinned ``(key_type, key_b64)`` or None.
    - ``pin`` records a key for a ``host:port`` that has none. Pinning the key already pinned is
      a no-op; pinning a different one raises ``HostKeyChanged`` (first writer wins, even when
      two connections race). It never overwrites.
    - ``forget`` removes the pin (True if there was one); the next contact pins again.
    """

    @abstractmethod
    def get(self, host: str, port: int) -> PinnedKey | None: ...

    @abstractmethod
    def pin(self, host: str, port: int, key_type: str, key_b64: str) -> None: ...

    @abstractmethod
    def forget(self, host: str, port: int) -> bool: ...


class MemoryHostKeyStore(HostKeyStore):
    """Pins held in memory (tests, one-off sessions)."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, int], PinnedKey] = {}
        self._lock = threading.Lock()

    def get(self, host: str, port: int) -> PinnedKey | None:
        with self._lock:
            return self._keys.get((host, port))

    def pin(self, host: str, port: int, key_type: str, key_b64: str) -> None:
        with self._lock:
            old = self._keys.setdefault((host, port), (key_type, key_b64))
        if old != (key_type, key_b64):
            raise changed_error(host, port, old, (key_type, key_b64))

    def forget(self, host: str, port: int) -> bool:
        with self._lock:
            return self._keys.pop((host, port), None) is not None


class StateHostKeyStore(HostKeyStore):
    """Pins in the state store's ``host_keys`` table; ``pin`` and ``forget`` write an audit event
    (``hostkey.pinned`` / ``hostkey.forgotten``, resource ``host/HOST:PORT``, no tenant) in the
    same transaction. The engine must be migrated (``ensure_migrated``)."""

    def __init__(self, engine: Engine, *, actor: str | None = None) -> None:
        from penguinctl.state.audit import default_actor

        self.engine = engine
        self.actor = actor or default_actor()
        self._preloaded: dict[tuple[str, int], PinnedKey] = {}

    def preload(self) -> None:
        """Read every pinned key in one query (fan-out to many hosts asks for each of them).
        A key not found here is still looked up in the store, so a pin made since counts."""
        import sqlalchemy as sa

        from penguinctl.state.models import HostKeyRow

        t = HostKeyRow.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.host, t.c.port, t.c.key_type, t.c.key_b64))
            self._preloaded = {(r.host, r.port): (r.key_type, r.key_b64) for r in rows}

    def get(self, host: str, port: int) -> PinnedKey | None:
        from penguinctl.state.db import session_scope
        from penguinctl.state.models import HostKeyRow

        found = self._preloaded.get((host, port))
        if found is not None:
            return found
        with session_scope(self.engine) as session:
            row = session.get(HostKeyRow, (host, port))
            return None if row is None else (row.key_type, row.key_b64)

    def pin(self, host: str, port: int, key_type: str, key_b64: str) -> None:
        from sqlalchemy.exc import IntegrityError

        from penguinctl.state import audit
        from penguinctl.state.db import session_scope
        from penguinctl.state.models import HostKeyRow

        old = self.get(host, port)
        if old is None:
            fp = fingerprint(key_b64)
            try:
                with session_scope(self.engine) as session:
                    session.add(
                        HostKeyRow(
                            host=host, port=port, key_type=key_type, key_b64=key_b64, fingerprint=fp
                        )
                    )
                    session.flush()
                    audit.record(
                        session,
                        actor=self.actor,
                        tenant="",
                        action="hostkey.pinned",
                        resource=f"host/{host}:{port}",
                        result="ok",
                        details={"key_type": key_type, "fingerprint": fp},
                    )
                return
            except IntegrityError:  # another connection pinned first: compare with its key
                old = self.get(host, port)
        if old is not None and old != (key_type, key_b64):
            raise changed_error(host, port, old, (key_type, key_b64))

    def forget(self, host: str, port: int) -> bool:
        from penguinctl.state import audit
        from penguinctl.state.db import session_scope
        from penguinctl.state.models import HostKeyRow

        self._preloaded.pop((host, port), None)

        with session_scope(self.engine) as session:
            row = session.get(HostKeyRow, (host, port))
            if row is None:
                return False
            audit.record(
                session,
                actor=self.actor,
                tenant="",
                action="hostkey.forgotten",
                resource=f"host/{host}:{port}",
                result="ok",
                details={"key_type": row.key_type, "fingerprint": row.fingerprint},
            )
            session.delete(row)
        return True


def verify_or_pin(store: HostKeyStore, host: str, port: int, key: paramiko.PKey) -> None:
    """Accept ``key`` for ``host:port`` if it is the pinned one, pin it if none is; otherwise
    raise ``HostKeyChanged``."""
    offered = (key.get_name(), key.get_base64())
    pinned = store.get(host, port)
    if pinned is None:
        store.pin(host, port, *offered)
    elif pinned != offered:
        raise changed_error(host, port, pinned, offered)


class PinningPolicy(paramiko.MissingHostKeyPolicy):
    """paramiko calls this when the client knows no key for the server: pin on first contact
    (audited by the store), refuse a key that differs from the stored pin."""

    def __init__(self, store: HostKeyStore, host: str, port: int) -> None:
        self.store, self.host, self.port = store, host, port

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey):
        verify_or_pin(self.store, self.host, self.port, key)
