"""SMTP submission (smtplib) with one reused connection per mailbox, and a precise outcome.

The ledger needs to know, for every transaction, whether the server *may* hold the message:

- ``accepted``: 2xx after the end of DATA. The message is the server's.
- ``rejected``: a 5xx for the recipient (RCPT) or the message (DATA): it definitely did not
  take it and will not (the (lead, step) is ``failed``).
- ``deferred``: a 4xx anywhere, or a connection problem *before the last byte of the message
  was written*: the server definitely does not hold the message (the terminating ``.`` was
  never sent, or it answered 4xx), so the claim may be released and retried later. At connect,
  AUTH or MAIL FROM (``mailbox_deferred``) it concerns the mailbox, not the recipient.
- ``sender_error``: the mailbox itself is refused (AUTH fails, 5xx to MAIL FROM): nothing was
  sent; the mailbox is paused rather than the lead failed.
- ``unknown``: the whole message was written but no reply arrived (timeout, connection lost).
  The server may have queued it: the send is ``ambiguous`` and never retried automatically.
- ``error``: a local failure before any byte of the message was written (made by the
  transmitter when the transaction raises, ``payload_started`` still False): the server does
  not hold the message; the send is ``unsent``, never ``ambiguous``.
- A mailbox password that cannot be read (a missing secret, an unreadable ``file:``) is the
  mailbox's ``sender_error`` (it is paused with the reason).

A reused connection that the server closed while idle fails at MAIL FROM: that is detected,
and the transaction is tried once more on a fresh connection (nothing was sent yet).

Security: ``starttls`` (587), ``tls`` (465, implicit TLS), or ``none`` (plain, loopback tests
only). Certificates are verified against the system store or ``cafile``.
"""

from __future__ import annotations

import contextlib
import re
import select
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

from penguinctl.errors import PenguinError

SECURITIES = ("starttls", "tls", "none")
MAILBOX_STAGES = frozenset({"connect", "auth", "mail"})  # a failure here is the mailbox's
DEFAULT_TIMEOUT = 60.0
REPLY_FLOOR = 50e-6  # seconds: sooner than this after a command, a reply is not looked for


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    security: str = "starttls"

    @classmethod
    def from_data(
        cls,
        data: dict[str, Any] | None,
        default_host: str,
        default_port: int,
        default_security: str,
    ) -> Endpoint:
        data = data or {}
        security = str(data.get("security") or default_security)
        if security not in SECURITIES:
            raise ValueError(f"security {security!r}: use starttls, tls or none")
        return cls(
            str(data.get("host") or default_host), int(data.get("port") or default_port), security
        )

    def __str__(self) -> str:
        return f"{self.host}:{self.port} ({self.security})"


@dataclass(frozen=True)
class Outcome:
    kind: str  # accepted | rejected | deferred | sender_error | unknown | error
    code: int | None = None
    message: str = ""
    stage: str = ""  # connect | auth | mail | rcpt | data | payload | reply

    @property
    def ok(self) -> bool:
        return self.kind == "accepted"

    @property
    def mailbox_deferred(self) -> bool:
        """The mailbox's server cannot be reached, or turned the connection or the sender away
        for now (a 4xx or a broken connection at connect, AUTH or MAIL FROM): nothing about
        the message or its recipient was judged, so it does not count against the lead."""
        return self.kind == "deferred" and self.stage in MAILBOX_STAGES

    def describe(self) -> str:
        code = f"{self.code} " if self.code else ""
        return f"{self.stage}: {code}{self.message}".strip()[:500]


def ssl_context(cafile: str | None = None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cafile)


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


_EOL = re.compile(rb"(?:\r\n|\n|\r(?!\n))")
_DOT = re.compile(rb"(?m)^\.")


_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+\Z")


def _path(address: str) -> str:
    """``<address>`` as ``smtplib.quoteaddr`` makes it; a plain ASCII address (the usual case)
    without parsing it again."""
    if _PLAIN_ADDRESS.match(address):
        return f"<{address}>"
    return smtplib.quoteaddr(address)


def dot_stuff(payload: bytes) -> bytes:
    """The DATA payload: CRLF line ends, leading dots doubled, terminated by ``CRLF.CRLF``."""
    data = _DOT.sub(b"..", _EOL.sub(b"\r\n", payload))
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


class SmtpConnection:
    """One authenticated submission connection, opened on first use and reused."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        username: str | None,
        password: Callable[[], str | None] | str | None,
        timeout: float = DEFAULT_TIMEOUT,
        context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.username = username
        self._password = password
        self.timeout = timeout
        self.context = context
        self.local_hostname = local_hostname or socket.gethostname() or "localhost"
        self._smtp: smtplib.SMTP | None = None
        self._written = 0.0  # when the last command was written (perf_counter)
        self.transactions = 0
        self.payload_started = False  # whether the current transaction began writing DATA

    # -- connection ---------------------------------------------------------------------------
    def _secret(self) -> str | None:
        return self._password() if callable(self._password) else self._password

    def _open(self) -> smtplib.SMTP:
        ep = self.endpoint
        ctx = self.context
        if ctx is None and ep.security != "none":
            ctx = self.context = ssl_context()
        if ep.security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                ep.host,
                ep.port,
                local_hostname=self.local_hostname,
                timeout=self.timeout,
                context=ctx,
            )
        else:
            smtp = smtplib.SMTP(
                ep.host, ep.port, local_hostname=self.local_hostname, timeout=self.timeout
            )
        try:
            smtp.ehlo()
            if ep.security == "starttls":
                smtp.starttls(context=ctx)
                smtp.ehlo()
            password = self._secret()
            if password is not None and self.username:
                smtp.login(self.username, password)
        except BaseException:
            _quiet_close(smtp)
            raise
        return smtp

    def close(self) -> None:
        if self._smtp is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._smtp.quit()
            _quiet_close(self._smtp)
            self._smtp = None

    def _drop(self) -> None:
        if self._smtp is not None:
            _quiet_close(self._smtp)
            self._smtp = None

    # -- one transaction ----------------------------------------------------------------------
    def send(self, mail_from: str, rcpt: str, payload: bytes) -> Outcome:
        """One SMTP transaction, blocking; see the module doc for what each outcome means."""
        steps = self.transaction(mail_from, rcpt, payload)
        while True:
            try:
                next(steps)  # the reply is read (blocking) when the transaction resumes
            except StopIteration as done:
                return done.value

    def transaction(
        self, mail_from: str, rcpt: str, payload: bytes
    ) -> Generator[None, None, Outcome]:
        """``send`` one step at a time, for a caller that works while the server answers: a
        generator that yields each time it has written a command and waits for the reply
        (``ready`` tells when it has arrived); its return value (``StopIteration.value``)
        is the outcome. Resumed early, it simply blocks on the reply (socket timeout applies).
        Opening a connection (connect, EHLO, STARTTLS, AUTH) is done without yielding."""
        self.payload_started = False
        data = dot_stuff(payload)
        for attempt in (0, 1):
            reused = self._smtp is not None
            try:
                if self._smtp is None:
                    self._smtp = self._open()
            except smtplib.SMTPAuthenticationError as exc:
                return Outcome("sender_error", exc.smtp_code, _text(exc.smtp_error), "auth")
            except smtplib.SMTPNotSupportedError as exc:
                return Outcome("sender_error", None, str(exc), "auth")
            except smtplib.SMTPResponseException as exc:
                kind = "deferred" if 400 <= exc.smtp_code < 500 else "sender_error"
                return Outcome(kind, exc.smtp_code, _text(exc.smtp_error), "connect")
            except ssl.SSLError as exc:
                return Outcome("sender_error", None, f"TLS: {exc}", "connect")
            except (smtplib.SMTPException, OSError) as exc:
                return Outcome("deferred", None, f"{type(exc).__name__}: {exc}", "connect")
            except PenguinError as exc:  # the password could not be read: the mailbox's
                return Outcome("sender_error", None, exc.message, "auth")
            smtp = self._smtp
            try:
                outcome = yield from self._envelope(smtp, mail_from, rcpt)
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                self._drop()
                if attempt == 0 and reused:
                    continue  # the idle connection was closed by the server: nothing was sent
                return Outcome("deferred", None, f"{type(exc).__name__}: {exc}", "mail")
            if outcome is not None:
                self._reset()
                return outcome
            return (yield from self._payload(smtp, data))
        raise AssertionError("unreachable")

    @property
    def last_used(self) -> float:
        """When a command was last written (``time.perf_counter``; 0 before the first)."""
        return self._written

    def _socket(self) -> socket.socket | None:
        smtp = self._smtp
        return None if smtp is None else smtp.sock

    def _command(
        self, smtp: smtplib.SMTP, cmd: str, args: str = ""
    ) -> Generator[None, None, tuple[int, bytes]]:
        smtp.putcmd(cmd, args)
        self._written = time.perf_counter()
        yield
        return smtp.getreply()

    def _envelope(
        self, smtp: smtplib.SMTP, mail_from: str, rcpt: str
    ) -> Generator[None, None, Outcome | None]:
        code, msg = yield from self._command(smtp, "mail", f"FROM:{_path(mail_from)}")
        if code >= 400:
            kind = "deferred" if code < 500 else "sender_error"
            return Outcome(kind, code, _text(msg), "mail")
        code, msg = yield from self._command(smtp, "rcpt", f"TO:{_path(rcpt)}")
        if code >= 400:
            return Outcome("deferred" if code < 500 else "rejected", code, _text(msg), "rcpt")
        code, msg = yield from self._command(smtp, "data")
        if code != 354:
            kind = "deferred" if code < 500 else "rejected"
            return Outcome(kind, code, _text(msg), "data")
        return None

    def _payload(self, smtp: smtplib.SMTP, data: bytes) -> Generator[None, None, Outcome]:
        self.payload_started = True
        try:
            smtp.send(data)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            # sendall() failed: the terminating "." was not written, the server cannot
            # have accepted the message.
            self._drop()
            return Outcome("deferred", None, f"{type(exc).__name__}: {exc}", "payload")
        self._written = time.perf_counter()
        yield
        try:
            code, msg = smtp.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            return Outcome("unknown", None, f"{type(exc).__name__}: {exc}", "reply")
        self.transactions += 1
        if 200 <= code < 300:
            return Outcome("accepted", code, _text(msg), "reply")
        return Outcome("deferred" if code < 500 else "rejected", code, _text(msg), "reply")

    def _reset(self) -> None:
        if self._smtp is None:
            return
        try:
            self._smtp.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()


def ready(conns: Sequence[SmtpConnection], timeout: float = 0.0) -> list[SmtpConnection]:
    """The connections among ``conns`` (each waiting for a reply) whose reply can be read
    without blocking, found with one ``select``; with ``timeout``, blocks up to that long until
    at least one is. A connection without a socket counts as ready (resuming it fails fast).
    Without a timeout, a command written less than ``REPLY_FLOOR`` ago is not looked at: no
    server answers that fast, and the system call is spared."""
    out: list[SmtpConnection] = []
    waiting: dict[Any, SmtpConnection] = {}
    now = time.perf_counter()
    for conn in conns:
        sock = conn._socket()
        if sock is None or (isinstance(sock, ssl.SSLSocket) and sock.pending()):
            out.append(conn)
        elif timeout > 0 or now - conn._written >= REPLY_FLOOR:
            waiting[sock] = conn
    if not waiting:
        return out
    try:
        readable, _, _ = select.select(list(waiting), [], [], 0 if out else timeout)
    except (OSError, ValueError):
        return out + list(waiting.values())
    return out + [waiting[sock] for sock in readable]


def _quiet_close(smtp: smtplib.SMTP) -> None:
    with contextlib.suppress(OSError):
        smtp.close()
