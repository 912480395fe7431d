"""Annotated field types shared by the spec models (names, hosts, addresses, ports)."""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
)

from penguinctl.spec import names
from penguinctl.spec.cron import check_cron
from penguinctl.spec.source import quote


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _ip_address(value: Any) -> IPv4Address | IPv6Address:
    if isinstance(value, (IPv4Address, IPv6Address)):
        return value
    try:
        if isinstance(value, str):  # not an int: ip_address(5) would be 0.0.0.5
            return ip_address(value)
    except ValueError:
        pass
    raise ValueError(f"{quote(value)} is not an IP address")


def _printable(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("control characters (such as a line break) are not allowed here")
    return value


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
Text = Annotated[str, AfterValidator(_printable)]
Port = Annotated[int, Field(ge=1, le=65535)]
Ttl = Annotated[int, Field(ge=1, le=2_147_483_647)]
