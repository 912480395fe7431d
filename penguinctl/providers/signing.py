"""Switching which DKIM key a mail server signs a domain's mail with.

A ``DkimSigner`` is the mail-server side of DKIM rotation: ``switch(domain, selector, path)``
makes the server sign ``domain`` with the key stored at ``path`` in the secrets backend under
``selector``, and returns a one-line note of what it did. It must be idempotent (a rotation
re-run after a crash calls it again) and must not return before the server signs with the key.

A MailU server penguinctl manages gets ``penguinctl.mailu.signing.MailuSigner`` (rspamd's
per-domain selector maps, over SSH). For servers penguinctl cannot reach (``external``) or whose
stack it does not manage (``mail: {stack: none}``), the switch is recorded only: the note says so
and the operator switches the server by hand (the audit log says when). Which signer a server
gets is ``penguinctl.providers.signers.signer_for``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod


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
