"""A real SMTP server for tests (aiosmtpd) on 127.0.0.1: AUTH, STARTTLS or implicit TLS.

``SmtpSink(tmp_path, security="starttls", users={"a@x": "pw"})`` is a context manager running
aiosmtpd's ``Controller`` on 127.0.0.1 and a random free port. It keeps every message it
accepted (``messages``: (mail_from, rcpt_tos, raw bytes)); TLS uses a self-signed certificate
for 127.0.0.1/localhost generated with ``cryptography`` (``cafile`` is its PEM).

``rules`` script replies per recipient: ``{"x@y": "550 5.1.1 no such user"}`` answers RCPT with
that line; ``{"x@y": "data:451 4.3.0 try later"}`` answers the end of DATA; ``"drop"`` closes the
connection after the whole message was received (before replying: an unknown outcome) and
``"accept-drop"`` keeps the message, then closes without a reply.

``data_delay`` (seconds) holds every reply to the end of DATA that long; ``max_active`` is the
most transactions that were at the end of DATA at once (how many a client kept in flight);
``max_connections`` the most connections open at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import ipaddress
import ssl
import threading
from collections import Counter
from pathlib import Path
from types import TracebackType

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, Session
from sshd import free_port


def make_cert(workdir: Path, names: tuple[str, ...] = ("localhost",)) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and ``names``: (cert PEM = CA file, key PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "penguinctl test")])
    now = dt.datetime.now(dt.UTC)
    alt = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = workdir / "test-cert.pem", workdir / "test-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Session(Session):
    """aiosmtpd's Session without the deprecation warning its own AUTH code triggers (warnings
    are errors in this suite, and it would fail every login)."""

    @property
    def login_data(self):
        return self._login_data

    @login_data.setter
    def login_data(self, value) -> None:
        self._login_data = value


class _SMTP(SMTP):
    sink: SmtpSink | None = None

    def _create_session(self) -> Session:
        return _Session(self.loop)

    def connection_made(self, transport) -> None:
        if self.sink is not None:
            self.sink.opened(1)
        super().connection_made(transport)

    def connection_lost(self, exc) -> None:
        if self.sink is not None:
            self.sink.opened(-1)
        super().connection_lost(exc)


class _Controller(Controller):
    implicit_tls = False

    def factory(self):
        server = _SMTP(self.handler, **self.SMTP_kwargs)
        server.sink = self.handler.sink
        if self.implicit_tls:  # aiosmtpd only counts STARTTLS as TLS for AUTH
            server._auth_require_tls = False
        return server


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        rule = self.sink.rules.get(address.lower(), "")
        if rule[:1] in ("4", "5"):
            return rule
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        sink = self.sink
        with sink._lock:
            sink.active += 1
            sink.max_active = max(sink.max_active, sink.active)
        try:
            if sink.data_delay:
                await asyncio.sleep(sink.data_delay)
            return self._data(server, envelope)
        finally:
            with sink._lock:
                sink.active -= 1

    def _data(self, server, envelope) -> str:
        rules = [self.sink.rules.get(r.lower(), "") for r in envelope.rcpt_tos]
        for rule in rules:
            if rule.startswith("data:"):
                return rule[5:]
            if rule == "drop":
                server.transport.abort()
                return "421 closing"
        self.sink.record(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
        if "accept-drop" in rules:
            server.transport.abort()
            return "421 closing"
        return "250 OK queued"


class SmtpSink:
    def __init__(
        self,
        workdir: Path,
        *,
        security: str = "none",
        users: dict[str, str] | None = None,
        address: str = "127.0.0.1",
        keep_bodies: bool = True,
    ) -> None:
        self.workdir = workdir
        self.security = security
        self.users = dict(users or {})
        self.address = address
        self.port = free_port(address)
        self.keep_bodies = keep_bodies
        self.rules: dict[str, str] = {}
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.message_ids: Counter[str] = Counter()
        self.auth_ok: Counter[str] = Counter()
        self.data_delay = 0.0
        self.connections = 0  # open now
        self.max_connections = 0  # most open at once
        self.active = 0
        self.max_active = 0
        self.cafile: Path | None = None
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    # -- recording ----------------------------------------------------------------------------
    def record(self, mail_from: str, rcpts: list[str], content: bytes) -> None:
        msg_id = ""
        head = content.split(b"\r\n\r\n", 1)[0]
        parsed = email.message_from_bytes(head + b"\r\n\r\n")
        msg_id = (parsed.get("Message-ID") or "").strip()
        with self._lock:
            self.messages.append((mail_from, rcpts, content if self.keep_bodies else head))
            self.message_ids[msg_id] += 1

    def opened(self, delta: int) -> None:
        with self._lock:
            self.connections += delta
            self.max_connections = max(self.max_connections, self.connections)

    def count(self) -> int:
        with self._lock:
            return len(self.messages)

    # -- auth ---------------------------------------------------------------------------------
    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            user = auth_data.login.decode()
            if self.users.get(user) == auth_data.password.decode():
                with self._lock:
                    self.auth_ok[user] += 1
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> SmtpSink:
        kwargs: dict = {}
        tls = None
        if self.security in ("starttls", "tls"):
            cert, key = make_cert(self.workdir)
            self.cafile = cert
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(cert, key)
        if self.security == "starttls":
            kwargs["tls_context"] = tls
            kwargs["require_starttls"] = True
        if self.security == "tls":
            kwargs["ssl_context"] = tls
        kwargs["server_hostname"] = "localhost"  # not socket.getfqdn() per connection
        if self.users:
            kwargs["authenticator"] = self._authenticate
            # plain loopback: AUTH offered but not required (aiosmtpd warns about requiring it
            # without TLS, and warnings are errors in this suite)
            kwargs["auth_required"] = self.security != "none"
            kwargs["auth_require_tls"] = self.security != "none"
        self._controller = _Controller(
            _Handler(self),
            hostname=self.address,
            port=self.port,
            loop=asyncio.new_event_loop(),
            **kwargs,
        )
        self._controller.implicit_tls = self.security == "tls"
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller.loop.close()
            self._controller = None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
