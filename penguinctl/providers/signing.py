"""Switching which DKIM key a mail server signs a domain's mail with.

A ``DkimSigner`` is the mail-server side of DKIM rotation: ``switch(domain, selector, path)``
makes the server sign ``domain`` with the key stored at ``path`` in the secrets backend under
``selector``, and returns a one-line note of what it did. It must be idempotent (a rotation
re-run after a crash calls it again) and must not return before the server signs with the key.

A MailU server penguinctl manages gets ``penguinctl.mailu.signing.MailuSigner`` (rspamd's
per-domain selector maps, over SSH). For servers penguinctl cannot reach (``external``) or whose
stack it does not manage (``mail: {stack: none}``), the switch is recorded only: the note says so
and the operator switches the server by hand (the audit log says when).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class DkimSigner(ABC):
    @abstractmethod
    def switch(self, domain: str, selector: str, secret_path: str) -> str:
        """Sign ``domain`` with the key at ``secret_path`` as ``selector``; a note of what was
        done."""


class RecordOnlySigner(DkimSigner):
    def __init__(self, server: str, reason: str) -> None:
        self.server = server
        self.reason = reason

    def switch(self, domain: str, selector: str, secret_path: str) -> str:
        return (
            f"recorded only: {self.reason}; make {self.server} sign {domain} with selector "
            f"{selector} (key at {secret_path})"
        )


def signer_for(
    server_name: str,
    server: dict[str, Any] | None,
    *,
    secrets=None,
    db=None,
    env: dict[str, str] | None = None,
    actor: str = "penguinctl",
) -> DkimSigner:
    """The signer of a recorded server: MailU's over SSH when penguinctl manages the stack and
    has what it needs to reach it (``secrets``, the state ``db`` for pinned host keys)."""
    provider = (server or {}).get("provider", "external")
    if provider == "external":
        return RecordOnlySigner(server_name, f"server {server_name} is external")
    stack = ((server or {}).get("mail") or {}).get("stack", "mailu")
    if stack == "none":
        return RecordOnlySigner(server_name, f"server {server_name} has no managed mail stack")
    if stack == "mailu" and secrets is not None and db is not None:
        from penguinctl.mailu.signing import MailuSigner, MailuSigning
        from penguinctl.providers.mailstack import MailstackProvider
        from penguinctl.remote.hostkeys import StateHostKeyStore
        from penguinctl.remote.servers import recorded_servers

        reach = MailstackProvider(
            f"mailstack:{server_name}",
            server=server_name,
            server_data=dict(server or {}),
            secrets=secrets,
            host_keys=StateHostKeyStore(db, actor=actor),
            env=dict(env or {}),
            servers=lambda: recorded_servers(db),
        )
        root = ((server or {}).get("mail") or {}).get("root") or "/mailu"
        return MailuSigner(
            server_name, lambda: MailuSigning(reach.connect(), secrets=secrets, root=root)
        )
    return RecordOnlySigner(
        server_name, f"the {stack} signer of server {server_name} is not available in this version"
    )
