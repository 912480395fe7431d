"""Typed ``spec`` blocks of each document kind (pydantic v2, unknown fields rejected)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from penguinctl.spec.durations import Duration
from penguinctl.spec.refs import SecretRef
from penguinctl.spec.types import (
    Cron,
    DmarcUris,
    Email,
    Fqdn,
    Host,
    IpAddress,
    LocalPart,
    Name,
    Port,
    RelativeName,
    Text,
    TlsRptUri,
    Ttl,
    TxtDomain,
)


class Strict(BaseModel):
    """Base of every spec model: unknown fields are errors and values are read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# -- Tenant -----------------------------------------------------------------------------------
class TenantSpec(Strict):
    plan: Name = "starter"
    contact: Email | None = None


# -- Server -----------------------------------------------------------------------------------
class HostwindsServer(Strict):
    location_id: int
    template: str
    rid: int
    billingcycle: str = "monthly"


class StaticServer(Strict):
    address: Host
    ssh_user: str = "root"
    ssh_port: Port = 22


class ExternalServer(Strict):
    ips: list[IpAddress] = Field(min_length=1)


class Endpoint(Strict):
    host: Host
    port: Port
    security: Literal["starttls", "tls", "none"]


class MailStack(Strict):
    stack: Literal["mailu"] = "mailu"
    version: str = "2024.06"
    tls: str = "letsencrypt"
    submission: Endpoint | None = None
    imap: Endpoint | None = None


ServerProvider = Literal["hostwinds", "static", "external"]


class ServerSpec(Strict):
    provider: ServerProvider
    hostwinds: HostwindsServer | None = Field(None, validate_default=True)
    static: StaticServer | None = Field(None, validate_default=True)
    external: ExternalServer | None = Field(None, validate_default=True)
    hostname: Fqdn
    mail: MailStack = Field(default_factory=MailStack)
    backup: Name | None = None

    @field_validator("hostwinds", "static", "external", mode="after")
    @classmethod
    def _block_matches_provider(cls, value: object, info: ValidationInfo) -> object:
        provider = info.data.get("provider")
        block = info.field_name
        if provider is None or block is None:
            return value  # provider itself is invalid: already reported
        if provider == block and value is None:
            raise PydanticCustomError(
                "provider_block", f"provider is {provider}: add a '{block}' block"
            )
        if provider != block and value is not None:
            raise PydanticCustomError(
                "provider_block", f"provider is {provider}: remove the '{block}' block"
            )
        return value

    @property
    def submission(self) -> Endpoint:
        """Where mailboxes submit mail: ``mail.submission``, else the hostname on 587 STARTTLS."""
        default = Endpoint(host=self.hostname, port=587, security="starttls")
        return self.mail.submission or default

    @property
    def imap(self) -> Endpoint:
        """Where mailboxes read mail: ``mail.imap``, else the hostname on 993 TLS."""
        return self.mail.imap or Endpoint(host=self.hostname, port=993, security="tls")


# -- DnsProvider ------------------------------------------------------------------------------
TsigAlgorithm = Literal[
    "hmac-md5", "hmac-sha1", "hmac-sha224", "hmac-sha256", "hmac-sha384", "hmac-sha512"
]


class Tsig(Strict):
    name: RelativeName
    algorithm: TsigAlgorithm = "hmac-sha256"
    secret: SecretRef


class ZonefileDns(Strict):
    type: Literal["zonefile"]
    directory: str | None = None
    nameservers: list[Fqdn] = []
    hostmaster: str | None = None
    ttl: Ttl = 3600


class Rfc2136Dns(Strict):
    type: Literal["rfc2136"]
    server: Host
    port: Port = 53
    tsig: Tsig | None = None
    ttl: Ttl = 3600
    max_parallel: int = Field(default=4, ge=1, le=64)  # concurrent updates to the server


class CloudflareDns(Strict):
    type: Literal["cloudflare"]
    api_token: SecretRef
    ttl: Ttl = 3600
    rate_limit: float = Field(default=4.0, gt=0, le=200)  # requests/s (1200 per 5 min = 4)
    max_parallel: int = Field(default=4, ge=1, le=64)  # zones written at once


DnsProviderSpec = Annotated[ZonefileDns | Rfc2136Dns | CloudflareDns, Field(discriminator="type")]
DNS_TYPES = ("zonefile", "rfc2136", "cloudflare")


# -- Domain -----------------------------------------------------------------------------------
class Dmarc(Strict):
    policy: Literal["none", "quarantine", "reject"] = "none"
    rua: DmarcUris = []
    pct: int = Field(default=100, ge=0, le=100)


class Dkim(Strict):
    """Key type and the rotation timings (product contract, section 4). Rotation phases:
    generated -> published -> active -> retiring -> revoked -> removed."""

    rotate_every: Duration = Duration("180d")  # age of the signing key that makes rotation due
    propagation: Duration = Duration("48h")  # new key published (and seen in DNS) before signing
    retire_after: Duration = Duration("7d")  # old key stays published after the switch
    remove_after: Duration = Duration("7d")  # revoked (empty p=) record kept, then removed
    algorithm: Literal["rsa"] = "rsa"
    bits: Literal[2048, 3072, 4096] = 2048

    @field_validator("rotate_every")
    @classmethod
    def _positive(cls, value: Duration) -> Duration:
        if value.total_seconds() <= 0:
            raise ValueError("rotate_every must be longer than 0s")
        return value


class Spf(Strict):
    include: list[TxtDomain] = []
    all: Literal["~all", "-all", "?all"] = "~all"


class Tracking(Strict):
    host: RelativeName = "track"
    target: Fqdn


class MtaSts(Strict):
    mode: Literal["testing", "enforce", "none"] = "testing"
    max_age: int = Field(default=604800, ge=0, le=31_557_600)
    host: Fqdn | None = None


class TlsRpt(Strict):
    rua: TlsRptUri


class Mailbox(Strict):
    local: LocalPart
    display_name: Text | None = None
    daily_limit: int = Field(default=40, ge=1)
    password: SecretRef | None = None

    def address(self, domain: str) -> str:
        """The full address of this mailbox in ``domain``."""
        return f"{self.local}@{domain}"


class DomainSpec(Strict):
    server: Name
    dns: Name
    dmarc: Dmarc = Field(default_factory=Dmarc)
    dkim: Dkim = Field(default_factory=Dkim)
    spf: Spf = Field(default_factory=Spf)
    tracking: Tracking | None = None
    mta_sts: MtaSts | None = None
    tls_rpt: TlsRpt | None = None
    mailboxes: list[Mailbox] = []


# -- BackupPolicy -----------------------------------------------------------------------------
class Retention(Strict):
    daily: int = Field(default=7, ge=0)
    weekly: int = Field(default=4, ge=0)
    monthly: int = Field(default=6, ge=0)


class BackupPolicySpec(Strict):
    schedule: Cron
    retention: Retention = Field(default_factory=Retention)
    repository: str | None = None
