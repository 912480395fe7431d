"""The SMTP relay alert mails go through (the campaign SMTP code: ``campaigns.smtp``).

Configured by the environment of the process that sends (``serve``, or ``events deliver``):

=================================  ============================================================
``PENGUINCTL_ALERT_SMTP``          ``HOST[:PORT]`` of the relay (port 587 by default)
``PENGUINCTL_ALERT_SMTP_SECURITY`` ``starttls`` (default), ``tls`` (465) or ``none`` (loopback)
``PENGUINCTL_ALERT_SMTP_USER``     login name, if the relay wants one; the password is read from
                                   the secrets backend at ``platform/alerts/smtp`` (``password``)
``PENGUINCTL_ALERT_FROM``          the From address (default ``penguinctl@<this host>``)
=================================  ============================================================
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from penguinctl.errors import ConfigError
from penguinctl.secret_paths import ALERTS_SMTP

SECRET_PATH = ALERTS_SMTP


@dataclass(frozen=True)
class Relay:
    host: str
    port: int
    security: str
    username: str | None
    sender: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Relay | None:
        """The relay the environment names; None when ``PENGUINCTL_ALERT_SMTP`` is unset."""
        from penguinctl.campaigns.smtp import SECURITIES

        target = (env.get("PENGUINCTL_ALERT_SMTP") or "").strip()
        if not target:
            return None
        host, _, port = target.rpartition(":") if ":" in target else (target, "", "587")
        security = (env.get("PENGUINCTL_ALERT_SMTP_SECURITY") or "starttls").strip().lower()
        if not host or not port.isdecimal() or security not in SECURITIES:
            raise ConfigError(
                f"PENGUINCTL_ALERT_SMTP={target!r} / _SECURITY={security!r} is not a relay",
                hint="HOST[:PORT], and starttls, tls or none",
            )
        sender = env.get("PENGUINCTL_ALERT_FROM") or f"penguinctl@{socket.getfqdn()}"
        return cls(host, int(port), security, env.get("PENGUINCTL_ALERT_SMTP_USER"), sender)

    def send(self, secrets: Any, to: str, message: bytes, *, timeout: float = 30.0) -> str | None:
        """Submit ``message`` to ``to``; returns None when the relay accepted it, else why."""
        from penguinctl.campaigns.smtp import Endpoint, SmtpConnection

        def password() -> str | None:
            if not self.username:
                return None
            fields = secrets.get(SECRET_PATH) or {}
            return fields["password"].reveal() if "password" in fields else None

        conn = SmtpConnection(
            Endpoint(self.host, self.port, self.security),
            username=self.username,
            password=password,
            timeout=timeout,
        )
        try:
            outcome = conn.send(self.sender, to, message)
        except OSError as exc:
            return f"{self.host}:{self.port}: {exc}"[:300]
        finally:
            conn.close()
        return None if outcome.ok else outcome.describe()
