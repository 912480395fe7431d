"""DKIM key records (RFC 6376 section 3.6.1, RFC 8301, RFC 8463): ``parse_dkim_key`` /
``check_dkim_key`` / ``dkim_public_key``. An empty ``p=`` is the *revoked* state (problem code
``dkim-revoked``, a warning), not a syntax error.
"""

from __future__ import annotations

import base64
import binascii
import re

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

from penguinctl.dns.lint.base import (
    LintProblem,
    RecordSyntaxError,
    clip,
    dedupe,
    lint_error,
    lint_warning,
    short_key,
    tag_list,
)

DKIM_KEY_TYPES = ("rsa", "ed25519")
DKIM_MIN_RSA_BITS = 1024  # RFC 8301: verifiers ignore shorter keys
DKIM_GOOD_RSA_BITS = 2048  # RFC 8301: what signers SHOULD use


# -- DKIM key records ----------------------------------------------------------------------------
DKIM_SYNTAX_CODES = frozenset(
    {
        "dkim-bad-tag",
        "dkim-duplicate-tag",
        "dkim-bad-value",
        "dkim-bad-version",
        "dkim-version-not-first",
        "dkim-bad-key-type",
        "dkim-missing-key",
        "dkim-bad-base64",
    }
)
_DKIM_TAGS = ("v", "h", "k", "n", "p", "s", "t")
_DKIM_VALCHARS = re.compile(r"[\x21-\x3a\x3c-\x7e \t\r\n]*")  # VALCHAR and folding white space
_WS = re.compile(r"[ \t\r\n]+")


def _colon_list(value: str) -> list[str]:
    return [x.strip() for x in value.split(":")]


def _key_kind(public: object) -> str:
    if isinstance(public, ed25519.Ed25519PublicKey):
        return "an Ed25519 key (use k=ed25519 with the raw 32-byte key)"
    if isinstance(public, ec.EllipticCurvePublicKey):
        return "an elliptic-curve key"
    if isinstance(public, dsa.DSAPublicKey):
        return "a DSA key"
    return "a key of another type"


def _check_key_data(key: str, key_type: str) -> list[LintProblem]:
    """The ``p=`` value (whitespace removed, not empty) as a key of ``key_type``."""
    shown = short_key(key)
    try:
        der = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        return [lint_error("dkim-bad-base64", f"p= is not valid base64 ({shown})")]
    if key_type == "ed25519":
        if len(der) == 32:
            try:
                ed25519.Ed25519PublicKey.from_public_bytes(der)
            except (ValueError, UnsupportedAlgorithm):
                return [lint_error("dkim-bad-key", f"p= is not an Ed25519 public key ({shown})")]
            return []
        try:
            loaded = serialization.load_der_public_key(der)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            loaded = None
        if isinstance(loaded, ed25519.Ed25519PublicKey):
            msg = (
                "k=ed25519 takes the raw 32-byte key (RFC 8463), not a SubjectPublicKeyInfo "
                f"({shown})"
            )
        else:
            msg = f"k=ed25519 keys are 32 bytes; p= decodes to {len(der)} ({shown})"
        return [lint_error("dkim-bad-key", msg)]
    try:
        public = serialization.load_der_public_key(der)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        msg = f"p= is not a DER SubjectPublicKeyInfo public key ({shown})"
        return [lint_error("dkim-bad-key", msg)]
    if not isinstance(public, rsa.RSAPublicKey):
        msg = f"k=rsa but p= holds {_key_kind(public)} ({shown})"
        return [lint_error("dkim-key-type-mismatch", msg)]
    problems: list[LintProblem] = []
    bits = public.key_size
    if bits < DKIM_MIN_RSA_BITS:
        msg = f"the RSA key has {bits} bits; verifiers ignore keys under {DKIM_MIN_RSA_BITS}"
        problems.append(lint_error("dkim-weak-key", msg))
    elif bits < DKIM_GOOD_RSA_BITS:
        msg = f"the RSA key has {bits} bits; use {DKIM_GOOD_RSA_BITS} (RFC 8301)"
        problems.append(lint_warning("dkim-short-key", msg))
    spki = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if der != spki:
        pkcs1 = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
        if der == pkcs1:
            msg = (
                "p= is a bare PKCS#1 RSAPublicKey; most verifiers expect a "
                f"SubjectPublicKeyInfo ({shown})"
            )
            problems.append(lint_warning("dkim-pkcs1-key", msg))
    return problems


def _check_dkim(text: str) -> tuple[dict[str, str], list[LintProblem]]:
    tags, problems = tag_list(text, "dkim")
    values: dict[str, str] = {}
    for name, value in tags:
        if name in values:
            msg = f"the {name}= tag appears more than once (the whole record is invalid)"
            problems.append(lint_error("dkim-duplicate-tag", msg))
            continue
        values[name] = value
        if not _DKIM_VALCHARS.fullmatch(value):
            msg = f"{name}= has a character DKIM does not allow ({clip(value, 24)})"
            problems.append(lint_error("dkim-bad-value", msg))
        if name not in _DKIM_TAGS:
            hint = " (tag names are case-sensitive)" if name.lower() in _DKIM_TAGS else ""
            problems.append(
                lint_warning("dkim-unknown-tag", f"unknown tag {clip(name)} (ignored){hint}")
            )
    if "v" in values:
        if tags[0][0] != "v":
            problems.append(
                lint_error("dkim-version-not-first", "v=DKIM1 must be the first tag when present")
            )
        if values["v"] != "DKIM1":
            msg = f"v={clip(values['v'])}: the version must be exactly DKIM1"
            problems.append(lint_error("dkim-bad-version", msg))
    key_type = values.get("k", "rsa")
    if key_type not in DKIM_KEY_TYPES:
        msg = f"k={clip(key_type)}: the key type must be one of {', '.join(DKIM_KEY_TYPES)}"
        problems.append(lint_error("dkim-bad-key-type", msg))
    if "h" in values:
        hashes = _colon_list(values["h"])
        if "" in hashes:
            problems.append(lint_error("dkim-bad-value", f"h={clip(values['h'])}: an empty item"))
        unknown = [h for h in hashes if h and h not in ("sha1", "sha256")]
        if unknown:
            msg = f"h= lists unknown hash algorithm(s) {', '.join(map(clip, unknown))} (ignored)"
            problems.append(lint_warning("dkim-unknown-hash", msg))
        if "sha256" not in hashes:
            msg = f"h={clip(values['h'])} excludes sha256; verifiers reject sha1 (RFC 8301)"
            problems.append(lint_error("dkim-no-sha256", msg))
    if "s" in values:
        services = _colon_list(values["s"])
        unknown = [s for s in services if s not in ("*", "email")]
        if unknown:
            msg = f"s= lists unknown service type(s) {', '.join(map(clip, unknown))} (ignored)"
            problems.append(lint_warning("dkim-unknown-service", msg))
        if "*" not in services and "email" not in services:
            msg = f"s={clip(values['s'])}: the key may not be used for email (use s=email or *)"
            problems.append(lint_error("dkim-not-for-email", msg))
    if "t" in values:
        flags = _colon_list(values["t"])
        unknown = [f for f in flags if f not in ("y", "s")]
        if unknown:
            msg = f"t= lists unknown flag(s) {', '.join(map(clip, unknown))} (ignored)"
            problems.append(lint_warning("dkim-unknown-flag", msg))
        if "y" in flags:
            msg = "t=y: testing mode, receivers may treat signed mail as unsigned"
            problems.append(lint_warning("dkim-testing", msg))
    if "p" not in values:
        problems.append(lint_error("dkim-missing-key", "the p= tag (public key) is required"))
    else:
        key = _WS.sub("", values["p"])
        values["p"] = key
        if not key:
            problems.append(lint_warning("dkim-revoked", "the key is revoked (empty p=)"))
        elif key_type in DKIM_KEY_TYPES:
            problems += _check_key_data(key, key_type)
    return values, dedupe(problems)


def parse_dkim_key(text: str) -> dict[str, str]:
    """The tags of a DKIM key record (names as written, values stripped; ``p`` with all
    whitespace removed; ``p == ""`` means revoked). Raises ``RecordSyntaxError`` when the tag
    syntax is invalid (the codes in ``DKIM_SYNTAX_CODES``); a weak or unusable key does not
    raise (see ``check_dkim_key``)."""
    values, problems = _check_dkim(text)
    errors = [p for p in problems if p.code in DKIM_SYNTAX_CODES]
    if errors:
        raise RecordSyntaxError(errors)
    return values


def check_dkim_key(text: str) -> list[LintProblem]:
    """Every problem with a DKIM key record (RFC 6376 section 3.6.1). A revoked key (empty
    ``p=``) is the warning ``dkim-revoked``."""
    return _check_dkim(text)[1]


def dkim_public_key(text: str) -> str | None:
    """The ``p=`` value with whitespace removed, to compare with the key the secrets backend
    holds: ``""`` for a revoked key, ``None`` when the record has no ``p=`` tag."""
    tags, _ = tag_list(text, "dkim")
    for name, value in tags:
        if name == "p":
            return _WS.sub("", value)
    return None
