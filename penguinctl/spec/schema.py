"""JSON Schema of one spec document, for editors and CI (``penguinctl validate --schema``)."""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from penguinctl.spec.documents import (
    BackupPolicyEnvelope,
    DnsProviderEnvelope,
    DomainEnvelope,
    ScheduleEnvelope,
    ServerEnvelope,
    TenantEnvelope,
)

AnyDocument = Annotated[
    TenantEnvelope
    | ServerEnvelope
    | DnsProviderEnvelope
    | DomainEnvelope
    | BackupPolicyEnvelope
    | ScheduleEnvelope,
    Field(discriminator="kind"),
]


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    schema = TypeAdapter(AnyDocument).json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "penguinctl spec document (apiVersion penguinctl/v1)",
        "description": "One document of a penguinctl spec (a file holds several, split by ---).",
        **schema,
    }


def json_schema() -> dict[str, Any]:
    """The JSON Schema every document of a spec file must match (a fresh copy each call)."""
    return copy.deepcopy(_schema())
