"""Checks for the names a spec is made of: resource names, DNS names, e-mail addresses, cron.

Each ``check_*`` function returns the normalised value or raises ``ValueError`` with a message
that says what is wrong and what is allowed.
"""

from __future__ import annotations

import ipaddress
import re

from penguinctl.spec.source import quote

_NAME = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,61}[a-z0-9])?")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_SERVICE_LABEL = re.compile(r"_?[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?")  # _spf, _dmarc, ...
_LABEL_TEXT = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
# The common case in one match: two or more labels, a non-numeric top-level label.
_FQDN = re.compile(rf"(?:{_LABEL_TEXT}\.)+(?![0-9]+\Z){_LABEL_TEXT}")
# RFC 5321 dot-atom: atext characters, dots only between atoms.
_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_name(value: str) -> str:
    """A resource name: 1-63 lowercase letters, digits, '.', '-' or '_'."""
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{quote(value)} is not a valid name: use 1-63 lowercase letters, digits, '.', '-' "
            "or '_', starting and ending with a letter or digit"
        )
    return value


def check_dns_name(
    value: str, *, min_labels: int = 2, what: str = "domain name", underscore: bool = False
) -> str:
    """A DNS name of letter-digit-hyphen labels, lowercased, without the trailing dot.

    With ``underscore``, labels may also hold ``_`` (service names such as ``_spf.example.com``).
    """
    name = value.lower()
    if name.endswith("."):
        name = name[:-1]
    if len(name) <= 253 and _FQDN.fullmatch(name):
        return name
    if not name.isascii():
        raise ValueError(f"{quote(value)} is not a valid {what}: write it in punycode (xn--...)")
    if len(name) > 253:
        raise ValueError(f"{quote(value)} is not a valid {what}: longer than 253 characters")
    labels = name.split(".")
    label_re = _SERVICE_LABEL if underscore else _LABEL
    for label in labels:
        if not label_re.fullmatch(label):
            raise ValueError(
                f"{quote(value)} is not a valid {what}: each label is 1-63 letters, digits or "
                "'-', not starting or ending with '-'"
            )
    if len(labels) < min_labels:
        raise ValueError(f"{quote(value)} is not a valid {what}: it needs at least two labels")
    if min_labels > 1 and labels[-1].isdigit():
        raise ValueError(f"{quote(value)} is not a valid {what}: the top-level label is numeric")
    return name


def check_txt_domain(value: str) -> str:
    """A domain that may hold service labels, such as an SPF include (``_spf.google.com``)."""
    return check_dns_name(value, underscore=True)


def check_fqdn(value: str) -> str:
    """A fully qualified host name such as ``mail.example.com``."""
    return check_dns_name(value, what="host name")


def check_relative_name(value: str) -> str:
    """A name inside a zone, such as ``track`` or ``links.track``."""
    return check_dns_name(value, min_labels=1, what="name")


def check_host(value: str) -> str:
    """An IP address or a host name."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    try:
        return check_dns_name(value, what="host name")
    except ValueError:
        raise ValueError(f"{quote(value)} is neither an IP address nor a host name") from None


def check_local_part(value: str) -> str:
    """A mailbox local part (RFC 5321 dot-atom), lowercased."""
    local = value.lower()
    if len(local) > 64 or not _LOCAL.fullmatch(local):
        raise ValueError(
            f"{quote(value)} is not a valid mailbox local part: use letters, digits and "
            "!#$%&'*+/=?^_`{|}~- with single dots between them (64 characters at most)"
        )
    return local


def check_email(value: str) -> str:
    """``local@domain``; the domain is lowercased (the local part is kept as written)."""
    local, at, domain = value.rpartition("@")
    if not at or not local or len(local) > 64 or not _LOCAL.fullmatch(local.lower()):
        raise ValueError(f"{quote(value)} is not an e-mail address")
    try:
        domain = check_dns_name(domain)
    except ValueError:
        raise ValueError(f"{quote(value)} is not an e-mail address") from None
    return f"{local}@{domain}"


def check_report_uri(value: str, *, https: bool = False) -> str:
    """A report address for DMARC/TLS-RPT: an e-mail address or a ``mailto:`` URI (or, when
    ``https`` is allowed, an ``https://`` URL). Returns a URI (``mailto:`` added when missing)."""
    if https and value.startswith("https://") and len(value) > len("https://"):
        return value
    address = value.removeprefix("mailto:")
    address, bang, size = address.partition("!")  # DMARC size limit suffix, e.g. !10m
    if bang and not re.fullmatch(r"[0-9]+[kmgt]?", size):
        raise ValueError(f"{quote(value)} has an invalid size limit after '!'")
    allowed = (
        "an e-mail address, a mailto: URI or an https:// URL"
        if https
        else "an e-mail address or a mailto: URI"
    )
    try:
        address = check_email(address)
    except ValueError:
        raise ValueError(f"{quote(value)} is not {allowed}") from None
    return f"mailto:{address}{bang}{size}"


def check_env_name(value: str) -> bool:
    """Whether ``value`` is a usable environment variable name."""
    return bool(_ENV_NAME.fullmatch(value))


def check_hostmaster(value: str) -> str:
    """The zone's contact (SOA RNAME): an e-mail address, or a DNS name already in RNAME form
    (``hostmaster.example.com.``). Returned as written."""
    if "@" in value:
        check_email(value)
        return value
    try:
        check_dns_name(value, underscore=True)
    except ValueError:
        raise ValueError(
            f"{quote(value)} is not an e-mail address (hostmaster@example.com) or a DNS name "
            "in SOA RNAME form (hostmaster.example.com.)"
        ) from None
    return value


def check_local_path(value: str) -> str:
    """A file system path on the machine penguinctl runs on (absolute, or relative to the
    working directory). Control characters are refused for every field (Strict)."""
    if not value.strip():
        raise ValueError("the path is empty")
    if len(value) > 4096:
        raise ValueError("the path is longer than 4096 characters")
    return value


# restic's repository locations (penguinctl.backup.repository opens them)
REPOSITORY_SCHEMES = ("local:", "sftp:", "s3:", "rest:", "b2:", "azure:", "gs:", "rclone:")


def check_repository(value: str) -> str:
    """A restic repository: ``/path`` or a restic URL (``sftp:user@host:/path``, ``s3:...``);
    ``{server}`` stands for the server's name."""
    if len(value) > 1024:
        raise ValueError("the repository is longer than 1024 characters")
    if not (value.startswith("/") or value.startswith(REPOSITORY_SCHEMES)):
        raise ValueError(
            f"{quote(value)} is not a path or a restic URL: use /path, "
            "sftp:user@host:/path or s3:https://host/bucket"
        )
    return value
