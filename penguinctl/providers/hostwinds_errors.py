"""The errors of the Hostwinds client (``hostwinds_client``): one class per way a call fails,
each a ``ProviderError`` (exit code 5) carrying Hostwinds' own message and whether the request
may have been carried out."""

from __future__ import annotations

from penguinctl.errors import ProviderError


class HostwindsError(ProviderError):
    """A Hostwinds API call failed. ``api_message``/``code`` are Hostwinds' own ``message`` and
    ``ERROR`` (code: for support only, never for logic). ``maybe_processed``: the request may
    have reached Hostwinds and been carried out although no answer says so."""

    def __init__(
        self,
        message: str,
        *,
        action: str,
        status: int | None = None,
        api_message: str | None = None,
        code: str | None = None,
        maybe_processed: bool = False,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.action = action
        self.status = status
        self.api_message = api_message
        self.code = code
        self.maybe_processed = maybe_processed


class HostwindsAuthError(HostwindsError):
    """HTTP 401/403 or "Not Authorized!": wrong key, or a caller address not allow-listed."""


class HostwindsApiError(HostwindsError):
    """Hostwinds answered ``result: error``: bad input or a refused state change. Not retried."""


class HostwindsInvalidService(HostwindsApiError):
    """The service id is unknown (never existed, or terminated)."""


class HostwindsLocked(HostwindsApiError):
    """The instance is locked: it cannot be modified or deleted."""


class HostwindsUnavailable(HostwindsError):
    """HTTP 5xx or 429 after every retry."""


class HostwindsConnectionError(HostwindsError):
    """No answer: connection refused, timeout, TLS or protocol error (after every retry)."""


class HostwindsProtocolError(HostwindsError):
    """An answer penguinctl cannot read (not JSON, or not the documented shape)."""


class HostwindsCircuitOpen(HostwindsError):
    """Calls are suspended after repeated failures (the circuit breaker is open)."""
