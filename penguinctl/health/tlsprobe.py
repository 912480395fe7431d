"""SMTP banner and STARTTLS (25, 587), implicit TLS (SMTP 465, IMAP 993), certificate expiry.

The protocol is spoken by hand over a socket (a few lines of SMTP/IMAP) so that the address
connected to (``connect``) and the name the certificate must carry (``server_name``: SNI and
hostname check) can differ: tests point the probe at loopback servers, operators at one IP of a
multi-homed host. The certificate is verified against the system CAs (or ``cafile``); an
untrusted certificate fails, and its expiry is still read (second, unverified handshake).
Expiry: under ``fail_days`` (7) fails, under ``warn_days`` (30) warns.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from penguinctl import clock
from penguinctl.health.results import Result

EHLO_NAME = "penguinctl-check.invalid"


@dataclass(frozen=True)
class Probe:
    connect: str  # address or name to connect to
    server_name: str  # the mail host: SNI, certificate name, expected in the banner
    timeout: float = 8.0
    cafile: str | None = None
    warn_days: int = 30
    fail_days: int = 7
    now: Callable[[], datetime] = clock.now


class _Lines:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.f = sock.makefile("rb")

    def smtp_reply(self) -> tuple[int, list[str]]:
        lines = []
        while True:
            raw = self.f.readline(2048)
            if not raw:
                raise ConnectionError("connection closed by the server")
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(line[4:])
            if len(line) < 4 or line[3] != "-":
                try:
                    return int(line[:3]), lines
                except ValueError:
                    raise ConnectionError(f"not an SMTP reply: {line[:80]!r}") from None

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode("ascii") + b"\r\n")

    def line(self) -> str:
        raw = self.f.readline(2048)
        if not raw:
            raise ConnectionError("connection closed by the server")
        return raw.decode("utf-8", "replace").rstrip("\r\n")


def _context(probe: Probe, verify: bool) -> ssl.SSLContext:
    if verify:
        ctx = ssl.create_default_context(cafile=probe.cafile)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _cert_result(base: Result, der: bytes | None, verify_error: str | None, probe: Probe):
    from cryptography import x509

    port = base.check.split(":")[-1]
    res = Result(base.target_kind, base.target, base.tenant, f"cert:{port}", base.subject, "ok")
    if der is None:
        res.status, res.detail = "error", "no certificate presented"
        return res
    cert = x509.load_der_x509_certificate(der)
    expires = cert.not_valid_after_utc
    days = (expires - probe.now()).total_seconds() / 86400
    res.data = {"not_after": expires.isoformat(), "days_left": round(days, 1),
                "subject": cert.subject.rfc4514_string()}  # fmt: skip
    if days < 0:
        res.status, res.critical = "fail", True
        res.detail = f"EXPIRED {-days:.0f} days ago ({expires:%Y-%m-%d})"
    elif days < probe.fail_days:
        res.status, res.detail = "fail", f"expires in {days:.1f} days ({expires:%Y-%m-%d})"
    elif days < probe.warn_days:
        res.status, res.detail = "warn", f"expires in {days:.0f} days ({expires:%Y-%m-%d})"
    else:
        res.detail = f"valid for {days:.0f} days ({expires:%Y-%m-%d})"
    if verify_error:
        res.status = "fail" if res.status != "fail" else res.status
        res.detail = f"not trusted: {verify_error}; {res.detail}"
    return res


def _tls(open_plain: Callable[[], tuple[socket.socket, _Lines | None]], probe: Probe):
    """Open the connection, reach the point where TLS starts (``open_plain``), handshake.
    Returns (tls socket, verify error or None)."""
    sock, _ = open_plain()
    try:
        return _context(probe, True).wrap_socket(sock, server_hostname=probe.server_name), None
    except ssl.SSLCertVerificationError as exc:
        sock.close()
        error = exc.verify_message or str(exc)
    sock, _ = open_plain()
    return _context(probe, False).wrap_socket(sock, server_hostname=probe.server_name), error


def _connect(probe: Probe, port: int) -> socket.socket:
    return socket.create_connection((probe.connect, port), timeout=probe.timeout)


def _banner_result(base: Result, code: int, lines: list[str], probe: Probe) -> None:
    banner = " ".join(lines)[:200]
    base.data["banner"] = banner
    if code != 220:
        base.status, base.detail = "fail", f"greeting {code}: {banner}"
        return
    name = probe.server_name.lower().rstrip(".")
    if name not in banner.lower():
        base.status = "warn"
        base.detail = f"banner does not name {name}: {banner}"


def smtp(probe: Probe, port: int, *, implicit: bool, base: Result) -> list[Result]:
    """``smtp:25``/``smtp:587`` (banner, EHLO, STARTTLS) or ``smtps:465`` (TLS, banner, EHLO),
    then the certificate."""
    greeting: dict[str, tuple[int, list[str]]] = {}
    try:
        if implicit:

            def open_plain():
                return _connect(probe, port), None

            tls, verr = _tls(open_plain, probe)
            lines = _Lines(tls)
            greeting["g"] = lines.smtp_reply()
            _banner_result(base, *greeting["g"], probe)
            lines.send(f"EHLO {EHLO_NAME}")
            code, _ = lines.smtp_reply()
            lines.send("QUIT")
        else:

            def open_plain():
                sock = _connect(probe, port)
                lines = _Lines(sock)
                greeting["g"] = lines.smtp_reply()
                lines.send(f"EHLO {EHLO_NAME}")
                code, ehlo = lines.smtp_reply()
                if code != 250:
                    raise ConnectionError(f"EHLO answered {code}")
                if not any(e.upper().startswith("STARTTLS") for e in ehlo):
                    raise _NoStartTls
                lines.send("STARTTLS")
                code, msg = lines.smtp_reply()
                if code != 220:
                    raise ConnectionError(f"STARTTLS answered {code} {' '.join(msg)[:80]}")
                return sock, lines

            try:
                tls, verr = _tls(open_plain, probe)
            except _NoStartTls:
                _banner_result(base, *greeting["g"], probe)
                base.status, base.detail = "fail", "STARTTLS is not offered"
                base.critical = port == 25
                return [base]
            _banner_result(base, *greeting["g"], probe)
            lines = _Lines(tls)
            lines.send(f"EHLO {EHLO_NAME}")
            code, _ = lines.smtp_reply()
            lines.send("QUIT")
        der = tls.getpeercert(binary_form=True)
        base.data["tls"] = tls.version()
        tls.close()
    except (OSError, ConnectionError, ssl.SSLError) as exc:
        base.status = "fail"
        base.detail = f"{type(exc).__name__}: {exc}"[:200]
        base.critical = port == 25 and isinstance(exc, ConnectionRefusedError | TimeoutError)
        return [base]
    if base.status == "ok":
        base.detail = f"{base.data.get('tls')}" + (" via STARTTLS" if not implicit else "")
        if code != 250:
            base.status, base.detail = "warn", f"EHLO after TLS answered {code}"
    return [base, _cert_result(base, der, verr, probe)]


class _NoStartTls(Exception):
    pass


def imaps(probe: Probe, port: int, *, base: Result) -> list[Result]:
    """``imaps:993``: TLS, then an ``* OK`` greeting; then the certificate."""
    try:
        tls, verr = _tls(lambda: (_connect(probe, port), None), probe)
        greeting = _Lines(tls).line()
        der = tls.getpeercert(binary_form=True)
        base.data["tls"] = tls.version()
        tls.sendall(b"a1 LOGOUT\r\n")
        tls.close()
    except (OSError, ConnectionError, ssl.SSLError) as exc:
        base.status, base.detail = "fail", f"{type(exc).__name__}: {exc}"[:200]
        return [base]
    base.data["banner"] = greeting[:200]
    if not greeting.startswith("* OK"):
        base.status, base.detail = "fail", f"not an IMAP greeting: {greeting[:80]}"
    else:
        base.detail = f"{base.data['tls']}"
    return [base, _cert_result(base, der, verr, probe)]
