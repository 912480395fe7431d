"""Test certificates (``cryptography``) and TLS mail servers on loopback for the check tests.

``make_ca(dir)`` writes a CA; ``make_cert(ca, dir, names, days)`` a leaf signed by it, valid for
``days`` from now (negative: already expired). ``smtp_server(port, cert, implicit=...)`` is an
aiosmtpd server with STARTTLS (or implicit TLS); ``ImapsGreeter`` a TLS socket that sends an IMAP
greeting. Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Pem:
    cert: Path
    key: Path
    obj: x509.Certificate
    private: ec.EllipticCurvePrivateKey


def _write(directory: Path, stem: str, cert: x509.Certificate, key) -> Pem:
    directory.mkdir(parents=True, exist_ok=True)
    cp, kp = directory / f"{stem}.crt", directory / f"{stem}.key"
    cp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    kp.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Pem(cp, kp, cert, key)


def make_ca(directory: Path) -> Pem:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "penguinctl test CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return _write(directory, "ca", cert, key)


def make_cert(ca: Pem, directory: Path, names: list[str], days: float, stem: str = "leaf") -> Pem:
    """A leaf that expires ``days`` after the product's clock says now (which CI shifts), and
    that is already valid by the real clock too (TLS libraries check it against real time)."""
    from penguinctl import clock

    key = ec.generate_private_key(ec.SECP256R1())
    now = clock.now()
    end = now + dt.timedelta(days=days)
    real = dt.datetime.now(dt.UTC)
    start = min(now - dt.timedelta(days=1), real - dt.timedelta(days=1), end - dt.timedelta(days=2))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca.obj.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.private.public_key()), False
        )
        .sign(ca.private, hashes.SHA256())
    )
    return _write(directory, stem, cert, key)


def server_context(pem: Pem) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pem.cert, pem.key)
    return ctx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def smtp_server(pem: Pem, banner_host: str, *, implicit: bool = False):
    """A started aiosmtpd ``Controller`` on 127.0.0.1 (``.port``); call ``.stop()``."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Sink

    port = free_port()
    ctx = server_context(pem)
    kwargs = {"ssl_context": ctx} if implicit else {"tls_context": ctx}
    ctl = Controller(Sink(), hostname="127.0.0.1", port=port, server_hostname=banner_host, **kwargs)
    ctl.start()
    return ctl


class ImapsGreeter:
    """TLS on 127.0.0.1 that answers every connection with an IMAP greeting."""

    def __init__(self, pem: Pem) -> None:
        self.ctx = server_context(pem)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"* OK [CAPABILITY IMAP4rev1] ready\r\n")
                    tls.settimeout(2)
                    tls.recv(100)
            except (OSError, ssl.SSLError):
                pass

    def stop(self) -> None:
        self.sock.close()
