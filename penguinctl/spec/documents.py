"""Documents (metadata + typed spec + where they came from) and the set ``load_specs`` returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import Field, field_validator

from penguinctl.errors import Location
from penguinctl.spec.models import (
    BackupPolicySpec,
    DnsProviderSpec,
    DomainSpec,
    ScheduleSpec,
    ServerSpec,
    Strict,
    TenantSpec,
)
from penguinctl.spec.source import YamlMap, locate
from penguinctl.spec.types import DomainName, LabelKey, Name, Text

API_VERSION = "penguinctl/v1"
S = TypeVar("S")


class Metadata(Strict):
    name: Name
    tenant: Name | None = None
    labels: dict[LabelKey, Text] = {}


class TenantMetadata(Metadata):
    @field_validator("tenant")
    @classmethod
    def _no_tenant(cls, value: str | None) -> None:
        if value is not None:
            raise ValueError("a Tenant does not belong to a tenant: remove metadata.tenant")
        return None


class DomainMetadata(Metadata):
    name: DomainName
    tenant: Name = Field(description="the Tenant this domain belongs to")


class _Envelope(Strict):
    apiVersion: Literal["penguinctl/v1"]


class TenantEnvelope(_Envelope):
    kind: Literal["Tenant"]
    metadata: TenantMetadata
    spec: TenantSpec = Field(default_factory=TenantSpec)


class ServerEnvelope(_Envelope):
    kind: Literal["Server"]
    metadata: Metadata
    spec: ServerSpec


class DnsProviderEnvelope(_Envelope):
    kind: Literal["DnsProvider"]
    metadata: Metadata
    spec: DnsProviderSpec


class DomainEnvelope(_Envelope):
    kind: Literal["Domain"]
    metadata: DomainMetadata
    spec: DomainSpec


class BackupPolicyEnvelope(_Envelope):
    kind: Literal["BackupPolicy"]
    metadata: Metadata
    spec: BackupPolicySpec


class ScheduleMetadata(Metadata):
    tenant: Name = Field(description="the Tenant whose jobs this Schedule sets")


class ScheduleEnvelope(_Envelope):
    kind: Literal["Schedule"]
    metadata: ScheduleMetadata
    spec: ScheduleSpec


@dataclass(eq=False)
class Document(Generic[S]):
    """One validated document. ``raw`` is the YAML it came from (with positions)."""

    kind: ClassVar[str]
    envelope: ClassVar[type[_Envelope]]

    metadata: Metadata
    spec: S
    location: Location
    source_dir: Path
    raw: YamlMap = field(repr=False)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def tenant(self) -> str | None:
        return self.metadata.tenant

    def location_of(self, *field_path: str | int) -> Location:
        """Where ``field_path`` (e.g. ``"spec", "mailboxes", 0, "local"``) is written; when it
        is not written, where its nearest enclosing key or item is."""
        return locate(self.raw, field_path)[0]

    def __str__(self) -> str:
        return describe(self.kind, self.name)


class TenantDoc(Document[TenantSpec]):
    kind = "Tenant"
    envelope = TenantEnvelope


class ServerDoc(Document[ServerSpec]):
    kind = "Server"
    envelope = ServerEnvelope


class DnsProviderDoc(Document[DnsProviderSpec]):
    kind = "DnsProvider"
    envelope = DnsProviderEnvelope


class DomainDoc(Document[DomainSpec]):
    kind = "Domain"
    envelope = DomainEnvelope


class BackupPolicyDoc(Document[BackupPolicySpec]):
    kind = "BackupPolicy"
    envelope = BackupPolicyEnvelope


class ScheduleDoc(Document[ScheduleSpec]):
    kind = "Schedule"
    envelope = ScheduleEnvelope


DOC_TYPES: dict[str, type[Document[Any]]] = {
    cls.kind: cls
    for cls in (TenantDoc, ServerDoc, DnsProviderDoc, DomainDoc, BackupPolicyDoc, ScheduleDoc)
}
KINDS = tuple(sorted(DOC_TYPES))
# How messages name each kind ("server mx1: ...") and its plural ("defined servers: ...").
NOUNS = {
    "Tenant": ("tenant", "tenants"),
    "Server": ("server", "servers"),
    "DnsProvider": ("dns provider", "dns providers"),
    "Domain": ("domain", "domains"),
    "BackupPolicy": ("backup policy", "backup policies"),
    "Schedule": ("schedule", "schedules"),
}


def describe(kind: str, name: str | None) -> str:
    """``"server mx1"`` (or just ``"server"`` when the name is unknown)."""
    noun = NOUNS.get(kind, (kind.lower(), ""))[0]
    return f"{noun} {name}" if name else noun


@dataclass(frozen=True, eq=False)
class Declared:
    """A document of a known kind as written, valid or not (for name and reference checks)."""

    kind: str
    raw: YamlMap

    @property
    def name(self) -> str | None:
        """``metadata.name`` when it is a string (a Domain's lowercased, without the dot)."""
        name = self.text("metadata", "name")
        if name is not None and self.kind == "Domain":
            return name.lower().removesuffix(".")
        return name

    def text(self, *field_path: str) -> str | None:
        """The string at ``field_path``, or None when it is missing or not a string."""
        node: Any = self.raw
        for part in field_path:
            node = node.get(part) if isinstance(node, dict) else None
        return node if isinstance(node, str) else None

    def location_of(self, *field_path: str | int) -> Location:
        """Where ``field_path`` is written (or its nearest enclosing key)."""
        return locate(self.raw, field_path)[0]


@dataclass
class SpecSet:
    """Every valid document of a load, by kind and name, plus where they came from."""

    tenants: dict[str, TenantDoc] = field(default_factory=dict)
    servers: dict[str, ServerDoc] = field(default_factory=dict)
    dns_providers: dict[str, DnsProviderDoc] = field(default_factory=dict)
    domains: dict[str, DomainDoc] = field(default_factory=dict)
    backup_policies: dict[str, BackupPolicyDoc] = field(default_factory=dict)
    schedules: dict[str, ScheduleDoc] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    documents: list[Document[Any]] = field(default_factory=list)
    # Every document of a known kind as written, valid or not: name and reference checks use
    # them, so a typo in a Server does not also make each Domain on it "undefined".
    declared: list[Declared] = field(default_factory=list, repr=False)

    def by_kind(self, kind: str) -> dict[str, Any]:
        """The ``{name: doc}`` dict of ``kind`` (``"Domain"``, ...)."""
        by_kind: dict[str, dict[str, Any]] = {
            "Tenant": self.tenants,
            "Server": self.servers,
            "DnsProvider": self.dns_providers,
            "Domain": self.domains,
            "BackupPolicy": self.backup_policies,
            "Schedule": self.schedules,
        }
        return by_kind[kind]

    def add(self, doc: Document[Any]) -> None:
        """Add a validated document (the first document of a name wins)."""
        self.documents.append(doc)
        self.by_kind(doc.kind).setdefault(doc.name, doc)

    def declared_names(self, kind: str) -> set[str]:
        """Names written in documents of ``kind``, including documents that are invalid."""
        return {d.name for d in self.declared if d.kind == kind and d.name is not None}

    def location_of(self, doc: Document[Any], *field_path: str | int) -> Location:
        """Where ``field_path`` of ``doc`` is written (see :meth:`Document.location_of`)."""
        return doc.location_of(*field_path)

    def domains_of(self, tenant: str) -> list[DomainDoc]:
        """The domains of ``tenant``, in load order."""
        return [doc for doc in self.domains.values() if doc.metadata.tenant == tenant]
