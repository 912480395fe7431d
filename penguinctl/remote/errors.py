"""Errors of the SSH layer. All are ``ProviderError`` (exit code 5): a remote system failed.

Messages name ``user@host:port`` and never carry a private key, a command's full text or its
stdin (either may hold secrets).
"""

from __future__ import annotations

from penguinctl.errors import ProviderError

TRUST_COMMAND = "penguinctl server trust-hostkey SERVER"


class SshError(ProviderError):
    """Base of the SSH errors."""


class SshUnreachable(SshError):
    """No SSH session could be set up (refused, timed out, reset), after the retries.
    Fan-out classifies a host that raises this as ``unreachable``."""


class SshAuthFailed(SshError):
    """The server rejected the key. Never retried: retrying only adds noise to its logs."""


class SshKeyInvalid(SshError):
    """The private key text could not be loaded (unknown format, encrypted, corrupt)."""


class HostKeyChanged(SshError):
    """The server presented a host key other than the one pinned on first contact.
    Nothing was sent to the server past the key exchange (no auth, no command)."""

    def __init__(
        self, host: str, port: int, *, old_type: str, old_fp: str, new_type: str, new_fp: str
    ) -> None:
        self.host, self.port = host, port
        self.old_fingerprint, self.new_fingerprint = old_fp, new_fp
        super().__init__(
            f"host key of {host}:{port} changed: pinned {old_type} {old_fp}, "
            f"server now offers {new_type} {new_fp}; refusing to connect",
            hint=f"if the server was rebuilt on purpose, run `{TRUST_COMMAND}`",
        )


class CommandTimeout(SshError):
    """A remote command ran past its timeout; its channel was closed."""


class RemoteCommandFailed(SshError):
    """A remote command exited non-zero where success was required (``Result.check``)."""
