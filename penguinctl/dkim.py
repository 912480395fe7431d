"""DKIM key material: dated selectors, RSA key pairs and the DKIM TXT record value.

- Selectors are dated, ``pmYYYYMM``, so a new key never reuses the name of an old one.
- Keys are RSA (2048 bits by default, e=65537). The private key is PKCS#8 PEM; the public key is
  the base64 of the DER SubjectPublicKeyInfo, which is what the ``p=`` tag carries (RFC 6376
  section 3.6.1).
- ``generate_many`` runs generation in threads: ``cryptography`` releases the GIL while it
  generates an RSA key, so N threads use N cores.
- The record value is ``v=DKIM1; k=rsa; p=<key>``; an empty ``p=`` means the key is revoked.

A ``DkimKeyPair`` never shows its private key in ``repr``/``str``.
"""

from __future__ import annotations

import base64
import binascii
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

PUBLIC_EXPONENT = 65537
MIN_RSA_BITS = 1024  # RFC 8301: verifiers ignore shorter keys; 2048 is what signers should use
ALGORITHMS = ("rsa", "ed25519")


def selector_for(when: date) -> str:
    """The dated selector of a key created on ``when``: ``pmYYYYMM``."""
    return f"pm{when.year:04d}{when.month:02d}"


@dataclass(frozen=True)
class DkimKeyPair:
    """A private key (PKCS#8 PEM) and its public key (base64 of DER SubjectPublicKeyInfo)."""

    private_pem: str = field(repr=False)
    public_b64: str

    def __repr__(self) -> str:
        return f"DkimKeyPair(private_pem='******', public_b64={self.public_b64[:16]!r}...)"

    __str__ = __repr__


def _public_b64(key: rsa.RSAPrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode("ascii")


def generate_rsa(bits: int = 2048) -> DkimKeyPair:
    """A new RSA key pair of ``bits`` bits."""
    if bits < MIN_RSA_BITS:
        raise ValueError(f"RSA DKIM keys need at least {MIN_RSA_BITS} bits (RFC 8301), not {bits}")
    key = rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=bits)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    return DkimKeyPair(private_pem=pem, public_b64=_public_b64(key))


def _load_rsa(pem: str, *, check: bool = True) -> rsa.RSAPrivateKey:
    # Never let the key text reach an exception message or its context.
    # ``check=False`` skips OpenSSL's RSA consistency check (~40 ms per 2048-bit key, holding
    # the GIL): for keys penguinctl generated and kept in its own secrets backend.
    try:
        key = serialization.load_pem_private_key(
            pem.encode("ascii"), password=None, unsafe_skip_rsa_key_validation=not check
        )
    except (ValueError, TypeError, UnicodeError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an unencrypted PEM RSA private key")
    return key


def public_b64_from_private(pem: str) -> str:
    """The ``p=`` value (base64 DER SubjectPublicKeyInfo) of a PEM RSA private key."""
    return _public_b64(_load_rsa(pem))


def key_bits(pem: str) -> int:
    """The size in bits of a PEM RSA private key."""
    return _load_rsa(pem).key_size


def stored_key_info(pem: str) -> tuple[str, int]:
    """``(public key b64, bits)`` of a key from penguinctl's own secrets backend, loaded once
    and without OpenSSL's slow consistency check (the key was checked when it was made)."""
    key = _load_rsa(pem, check=False)
    return _public_b64(key), key.key_size


def generate_many(n: int, *, bits: int = 2048, workers: int | None = None) -> list[DkimKeyPair]:
    """``n`` new key pairs, generated on ``workers`` threads (default: one per CPU)."""
    if n < 0:
        raise ValueError("n must not be negative")
    if n == 0:
        return []
    workers = max(1, min(n, workers or os.cpu_count() or 1))
    if workers == 1:
        return [generate_rsa(bits) for _ in range(n)]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dkim-keygen") as pool:
        return list(pool.map(lambda _: generate_rsa(bits), range(n)))


def dkim_txt_value(public_b64: str, algorithm: str = "rsa") -> str:
    """The TXT value published at ``<selector>._domainkey``; ``public_b64=""`` revokes the key."""
    if algorithm not in ALGORITHMS:
        choices = ", ".join(ALGORITHMS)
        raise ValueError(f"unknown DKIM key type {algorithm!r} (use one of {choices})")
    if public_b64:
        try:
            base64.b64decode(public_b64, validate=True)
        except binascii.Error:
            raise ValueError("the DKIM public key is not valid base64") from None
    return f"v=DKIM1; k={algorithm}; p={public_b64}"
