"""Switching which DKIM key a mail server signs a domain's mail with.

A ``DkimSigner`` is the mail-server side of DKIM rotation: ``switch(domain, selector, path)``
makes the server sign ``domain`` with the key stored at ``path`` in the secrets backend under
``selector``, and returns a one-line note of what it did. It must be idempotent (a rotation
re-run after a crash calls it again) and must not return before the server signs with the key.

For servers penguinctl cannot reach (``external``), and for mail stacks whose signer is not
implemented yet, the switch is recorded only: the note says so and the operator switches the
server by hand (the audit log says when).
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


def signer_for(server_name: str, server: dict[str, Any] | None) -> DkimSigner:
    """The signer of a recorded server."""
    provider = (server or {}).get("provider", "external")
    if provider == "external":
        return RecordOnlySigner(server_name, f"server {server_name} is external")
    stack = ((server or {}).get("mail") or {}).get("stack", "mailu")
    return RecordOnlySigner(
        server_name, f"the {stack} signer of server {server_name} is not available in this version"
    )
