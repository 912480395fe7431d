"""Annotated field types shared by the spec models (names, hosts, addresses, ports)."""

from __future__ import annotations

import functools
import re
import typing
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from penguinctl.spec import names
from penguinctl.spec.cron import check_cron
from penguinctl.spec.source import quote
from penguinctl.spec.text import control_problem


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _ip_address(value: Any) -> IPv4Address | IPv6Address:
    if isinstance(value, (IPv4Address, IPv6Address)):
        return value
    try:
        if isinstance(value, str):  # not an int: ip_address(5) would be 0.0.0.5
            return ip_address(value)
    except ValueError:
        pass
    raise ValueError(f"{quote(value)} is not an IP address")


Name = Annotated[
    str,
    AfterValidator(names.check_name),
    WithJsonSchema({"type": "string", "pattern": r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$"}),
]
DomainName = Annotated[
    str,
    AfterValidator(names.check_dns_name),
    WithJsonSchema({"type": "string", "format": "hostname", "maxLength": 254}),
]
TxtDomain = Annotated[
    str,
    AfterValidator(names.check_txt_domain),
    WithJsonSchema({"type": "string", "maxLength": 254}),
]
Fqdn = Annotated[
    str,
    AfterValidator(names.check_fqdn),
    WithJsonSchema({"type": "string", "format": "hostname", "maxLength": 254}),
]
RelativeName = Annotated[
    str,
    AfterValidator(names.check_relative_name),
    WithJsonSchema({"type": "string", "maxLength": 253}),
]
Host = Annotated[
    str,
    AfterValidator(names.check_host),
    WithJsonSchema({"type": "string", "description": "an IP address or a host name"}),
]
Email = Annotated[
    str, AfterValidator(names.check_email), WithJsonSchema({"type": "string", "format": "email"})
]
LocalPart = Annotated[
    str,
    AfterValidator(names.check_local_part),
    WithJsonSchema({"type": "string", "maxLength": 64}),
]
DmarcUri = Annotated[
    str,
    AfterValidator(names.check_report_uri),
    WithJsonSchema({"type": "string", "description": "an e-mail address or a mailto: URI"}),
]
DmarcUris = Annotated[
    list[DmarcUri],
    BeforeValidator(_one_or_many),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}},
            ],
            "description": "e-mail addresses or mailto: URIs (one, or a list)",
        }
    ),
]
TlsRptUri = Annotated[
    str,
    AfterValidator(lambda value: names.check_report_uri(value, https=True)),
    WithJsonSchema({"type": "string", "description": "an e-mail address, mailto: or https: URI"}),
]
Cron = Annotated[
    str,
    AfterValidator(check_cron),
    WithJsonSchema({"type": "string", "description": "a 5-field cron expression"}),
]
IpAddress = Annotated[
    IPv4Address | IPv6Address,
    PlainValidator(_ip_address),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "description": "an IPv4 or IPv6 address"}),
]
Port = Annotated[int, Field(ge=1, le=65535)]
Ttl = Annotated[int, Field(ge=1, le=2_147_483_647)]
Text = Annotated[str, Field(max_length=256)]  # one line of free text (control chars: Strict)
Hostmaster = Annotated[
    str,
    AfterValidator(names.check_hostmaster),
    WithJsonSchema({"type": "string", "description": "an e-mail address (SOA RNAME)"}),
]
LocalPath = Annotated[
    str,
    AfterValidator(names.check_local_path),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 4096}),
]
RepositoryUri = Annotated[
    str,
    AfterValidator(names.check_repository),
    WithJsonSchema({"type": "string", "description": "/path or a restic URL (sftp:, s3:, ...)"}),
]


# -- SSH: a static server's address and a jump host ---------------------------------------
_SSH_ALIAS = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?")


def _ssh_host(value: str) -> str:
    if _SSH_ALIAS.fullmatch(value):
        return value  # one label: a Host alias of the ssh client config, or a local name
    return names.check_host(value)


SshHost = Annotated[
    str,
    AfterValidator(_ssh_host),
    WithJsonSchema(
        {
            "type": "string",
            "description": "an IP address, a host name, or a Host alias of the operator's ssh "
            "client config (~/.ssh/config, or the file PENGUINCTL_SSH_CONFIG names)",
        }
    ),
]


def _jump_host(value: str) -> str:
    if value.lower().startswith("ssh://"):
        from penguinctl.remote.sshconfig import parse_host_string

        try:
            parse_host_string(value)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        return value
    return names.check_name(value)


JumpHost = Annotated[
    str,
    AfterValidator(_jump_host),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(ssh://\S+|[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?)$",
            "description": "another Server of the spec (same tenant, or shared), or "
            "ssh://[user@]host[:port] (a host or ssh_config alias penguinctl holds no key for)",
        }
    ),
]


def _matching(pattern: str, what: str) -> Any:
    """A string type matching ``pattern`` (whole), else "'value' is not <what>"."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"{quote(value)} is not {what}")
        return value

    return Annotated[
        str, AfterValidator(check), WithJsonSchema({"type": "string", "pattern": f"^{pattern}$"})
    ]


UnixUser = _matching(
    r"[a-z_][a-z0-9_.-]{0,31}",
    "a user name: 1-32 lowercase letters, digits, '_', '.' or '-', starting with a letter or '_'",
)
ImageName = _matching(
    r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}",
    "a template name: letters, digits, '.', '_', ':' or '-' (128 at most), such as ubuntu-22.04",
)
LabelKey = _matching(
    r"[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?",
    "a label key: 1-63 letters, digits, '.', '_', '/' or '-', starting and ending with a "
    "letter or digit",
)


@dataclass(frozen=True)
class _MultiLine:
    """Marks a text field that may hold line breaks and tabs (a template body)."""


MULTILINE = _MultiLine()
MultiLineText = Annotated[str, MULTILINE]


# -- control characters in every string field (Strict's field validator) ---------------------
def _marked(tp: Any) -> bool:
    """Whether ``tp`` (Annotated/Optional/Union/list...) carries the MULTILINE marker."""
    if typing.get_origin(tp) is Annotated:
        return MULTILINE in typing.get_args(tp)[1:] or _marked(typing.get_args(tp)[0])
    return any(_marked(arg) for arg in typing.get_args(tp))


@functools.cache
def _multiline_fields(model: type[Any]) -> frozenset[str]:
    return frozenset(
        name
        for name, info in model.model_fields.items()
        if MULTILINE in info.metadata or _marked(info.annotation)
    )


_PLAIN = (int, float, bool, IPv4Address, IPv6Address)


def _problem(value: Any, multiline: bool, where: str = "") -> str | None:
    if value is None or isinstance(value, (*_PLAIN, BaseModel)):
        return None  # a nested model checked its own fields
    if isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(value):
            found = _problem(item, multiline, f"{where}item {index + 1}: ")
            if found:
                return found
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _problem(key, False, f"{where}a key: ") or _problem(
                item, multiline, f"{where}{quote(key)}: "
            )
            if found:
                return found
        return None
    # a string, or a value parsed from one (a secret reference, a duration): its text form
    problem = control_problem(value if isinstance(value, str) else str(value), multiline=multiline)
    return f"{where}{problem}" if problem else None


def refuse_control_characters(model: type[Any], field: str | None, value: Any) -> Any:
    """``value`` unchanged, or a ``control_character`` error when a string in it (the value,
    an item or key of its lists and dicts, a value parsed from a string) holds a control
    character (penguinctl.spec.text); ``MultiLineText`` fields may hold line breaks and tabs.
    Nested models are not entered: their own fields are checked (precise error locations)."""
    if type(value) in (int, bool, float) or value is None:
        return value
    problem = _problem(value, field in _multiline_fields(model))
    if problem:
        raise PydanticCustomError("control_character", "{problem}", {"problem": problem})
    return value
