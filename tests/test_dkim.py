"""DKIM key material: selectors, RSA key pairs, the DKIM TXT value."""

from __future__ import annotations

import base64
from datetime import date

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from penguinctl.dkim import (
    DkimKeyPair,
    dkim_txt_value,
    generate_many,
    generate_rsa,
    key_bits,
    public_b64_from_private,
    selector_for,
)

pytestmark = pytest.mark.clock  # date-sensitive: scripts/test re-runs it under shifted clocks


@pytest.fixture(scope="module")
def pair() -> DkimKeyPair:
    return generate_rsa(2048)


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (date(2026, 11, 23), "pm202611"),
        (date(2027, 1, 1), "pm202701"),
        (date(999, 3, 9), "pm099903"),
    ],
)
def test_selector_is_dated(when, expected):
    assert selector_for(when) == expected


def test_generate_rsa_formats(pair):
    assert pair.private_pem.startswith("-----BEGIN PRIVATE KEY-----\n")  # PKCS#8, unencrypted
    key = serialization.load_pem_private_key(pair.private_pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048
    assert key.public_key().public_numbers().e == 65537
    spki = base64.b64decode(pair.public_b64, validate=True)
    public = serialization.load_der_public_key(spki)
    assert public.public_numbers() == key.public_key().public_numbers()
    assert public_b64_from_private(pair.private_pem) == pair.public_b64
    assert key_bits(pair.private_pem) == 2048
    assert pair.public_b64.startswith("MIIBIjAN")  # SPKI of an RSA-2048 key


def test_key_pair_repr_hides_the_private_key(pair):
    body = pair.private_pem.splitlines()[1]
    for text in (repr(pair), str(pair), f"{pair}", repr([pair])):
        assert "PRIVATE KEY" not in text
        assert body not in text
        assert "******" in text


def test_generate_rsa_refuses_short_keys():
    with pytest.raises(ValueError, match="1024"):
        generate_rsa(512)


def test_generate_many_distinct_keys():
    pairs = generate_many(4, bits=1024, workers=2)
    assert len(pairs) == 4
    assert len({p.public_b64 for p in pairs}) == 4
    for p in pairs:
        assert public_b64_from_private(p.private_pem) == p.public_b64
        assert key_bits(p.private_pem) == 1024
    assert generate_many(0) == []
    assert len(generate_many(1, bits=1024, workers=8)) == 1
    with pytest.raises(ValueError):
        generate_many(-1)


def test_public_from_bad_private_never_echoes_input():
    secretish = "-----BEGIN PRIVATE KEY-----\nTOPSECRETMATERIAL\n-----END PRIVATE KEY-----\n"
    with pytest.raises(ValueError) as info:
        public_b64_from_private(secretish)
    assert "TOPSECRETMATERIAL" not in str(info.value)
    assert info.value.__context__ is None and info.value.__cause__ is None


def test_public_from_non_rsa_key_is_refused():
    from cryptography.hazmat.primitives.asymmetric import ed25519

    pem = (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    with pytest.raises(ValueError, match="RSA"):
        public_b64_from_private(pem)


def test_dkim_txt_value(pair):
    assert dkim_txt_value(pair.public_b64) == f"v=DKIM1; k=rsa; p={pair.public_b64}"
    assert dkim_txt_value("") == "v=DKIM1; k=rsa; p="  # revoked
    assert dkim_txt_value("AAAA", algorithm="ed25519") == "v=DKIM1; k=ed25519; p=AAAA"
    with pytest.raises(ValueError, match="key type"):
        dkim_txt_value("AAAA", algorithm="dsa")
    with pytest.raises(ValueError, match="base64"):
        dkim_txt_value("not base64!")
