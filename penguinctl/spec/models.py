"""Typed ``spec`` blocks of each document kind (pydantic v2, unknown fields rejected)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from penguinctl.spec.durations import Duration
from penguinctl.spec.refs import SecretRef
from penguinctl.spec.types import (
    Cron,
    DmarcUris,
    Email,
    Fqdn,
    Host,
    Hostmaster,
    ImageName,
    IpAddress,
    JumpHost,
    LocalPart,
    LocalPath,
    Name,
    Port,
    RelativeName,
    RepositoryUri,
    SshHost,
    Text,
    TlsRptUri,
    Ttl,
    TxtDomain,
    UnixUser,
    refuse_control_characters,
)

# Hostwinds' billing cycles (change_billing_cycle; hourly only when enabled for the account)
BillingCycle = Literal[
    "hourly", "monthly", "quarterly", "semiannually", "annually", "biennially", "triennially"
]


class Strict(BaseModel):
    """Base of every spec model: unknown fields are errors and values are read-only.

    No string field of any model below (a field added later included) may hold a control
    character (penguinctl.spec.text): a line break in a value that reaches a zone file, a
    header or a command is an injection, a NUL a crash. ``MultiLineText`` fields (template
    bodies) may hold line breaks and tabs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # after: a before/wrap validator is not allowed on a discriminator field ("type", "kind")
    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any, info: ValidationInfo) -> Any:
        if value.__class__ is str and value.isprintable():  # the common case, fast
            return value
        return refuse_control_characters(cls, info.field_name, value)


# -- Tenant -----------------------------------------------------------------------------------
class TenantSpec(Strict):
    plan: Name = "starter"
    contact: Email | None = None


# -- Server -----------------------------------------------------------------------------------
# Bounds of numeric fields (README, "Limits"): every int and float in a spec has a maximum, so a
# typo such as a 26-digit daily_limit is an error at `validate`, not a value sent on to a server.
HostwindsId = Annotated[int, Field(ge=1, le=2_147_483_647)]  # Hostwinds ids are 32-bit ints


class HostwindsServer(Strict):
    location_id: HostwindsId
    template: ImageName
    rid: HostwindsId
    billingcycle: BillingCycle = "monthly"


class StaticServer(Strict):
    address: SshHost
    # unset: the ssh config's User/Port for the address, else root and 22
    ssh_user: UnixUser | None = None
    ssh_port: Port | None = None
    # A key that logs in before penguinctl has installed its own admin key (first contact only).
    initial_key: SecretRef | None = None


class ExternalServer(Strict):
    ips: list[IpAddress] = Field(min_length=1)


class Endpoint(Strict):
    host: Host
    port: Port
    security: Literal["starttls", "tls", "none"]


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in value:
        raise ValueError(f"{value!r} is not an http(s) URL, e.g. https://mail.example.com/api/v1")
    return value.rstrip("/")


class MailStack(Strict):
    # "none": penguinctl installs no mail stack (the server runs something it does not manage)
    stack: Literal["mailu", "none"] = "mailu"
    # the pinned 2024.06 line: "2024.06" follows its newest patch release, "2024.06.57" pins one
    version: Annotated[str, Field(pattern=r"^2024\.06(\.[0-9]+)?$")] = "2024.06"
    tls: Literal["letsencrypt", "cert", "notls", "mail", "mail-letsencrypt"] = "letsencrypt"
    submission: Endpoint | None = None
    imap: Endpoint | None = None
    # MailU's REST API root; default https://<hostname>/api/v1 (ServerSpec.mail_api_url)
    api_url: Annotated[str, AfterValidator(_http_url)] | None = None
    # where MailU lives on the server (data, mail, keys: the backup set)
    root: Annotated[str, Field(pattern=r"^/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$")] = "/mailu"


class SshAccess(Strict):
    # the jump host (bastion) in front of this server; unset: direct, or the ssh config's
    # ProxyJump for the address
    via: JumpHost | None = None


ServerProvider = Literal["hostwinds", "static", "external"]


class ServerSpec(Strict):
    provider: ServerProvider
    hostwinds: HostwindsServer | None = Field(None, validate_default=True)
    static: StaticServer | None = Field(None, validate_default=True)
    external: ExternalServer | None = Field(None, validate_default=True)
    hostname: Fqdn
    mail: MailStack = Field(default_factory=MailStack)
    backup: Name | None = None
    ssh: SshAccess | None = None

    @field_validator("ssh", mode="after")
    @classmethod
    def _ssh_needs_access(cls, value: SshAccess | None, info: ValidationInfo) -> object:
        if value is not None and info.data.get("provider") == "external":
            raise PydanticCustomError(
                "external_ssh", "an external server has no SSH access: remove the 'ssh' block"
            )
        return value

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
    def mail_api_url(self) -> str:
        """MailU's REST API root: ``mail.api_url``, else ``https://<hostname>/api/v1``."""
        return self.mail.api_url or f"https://{self.hostname.rstrip('.')}/api/v1"

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
    directory: LocalPath | None = None
    nameservers: list[Fqdn] = []
    hostmaster: Hostmaster | None = None
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
    daily_limit: int = Field(default=40, ge=1, le=10_000)  # per day; cold email is ~30-50
    password: SecretRef | None = None

    def address(self, domain: str) -> str:
        """The full address of this mailbox in ``domain``."""
        return f"{self.local}@{domain}"


class Alias(Strict):
    """A MailU alias ``<local>@<domain>`` delivering to ``destinations`` (MailU's API accepts
    only addresses of existing mailboxes on the same MailU server)."""

    local: LocalPart
    destinations: list[Email] = Field(min_length=1)

    @field_validator("destinations")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for address in value:
            if address.lower() in seen:
                raise ValueError(f"destination {address!r} is listed twice; remove one")
            seen.add(address.lower())
        return value

    def address(self, domain: str) -> str:
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
    aliases: list[Alias] = []

    @field_validator("aliases")
    @classmethod
    def _aliases_unique(cls, value: list[Alias], info: ValidationInfo) -> list[Alias]:
        mailboxes = {m.local for m in info.data.get("mailboxes") or []}
        seen: set[str] = set()
        for alias in value:
            if alias.local in mailboxes:
                raise ValueError(f"alias {alias.local!r} is also a mailbox; use another name")
            if alias.local in seen:
                raise ValueError(f"alias {alias.local!r} is listed twice; remove one")
            seen.add(alias.local)
        return value


# -- BackupPolicy -----------------------------------------------------------------------------
class Retention(Strict):
    """Snapshots kept (restic --keep-daily/weekly/monthly), at most ten years of each."""

    daily: int = Field(default=7, ge=0, le=3660)
    weekly: int = Field(default=4, ge=0, le=522)
    monthly: int = Field(default=6, ge=0, le=120)


class BackupPolicySpec(Strict):
    schedule: Cron
    retention: Retention = Field(default_factory=Retention)
    repository: RepositoryUri | None = None


# -- Schedule ---------------------------------------------------------------------------------
# The jobs that run per tenant (``config/schedules.yaml`` holds their defaults; the control
# plane's registry, ``penguinctl.control.registry``, defines them). A tenant's backups follow
# its servers' BackupPolicy schedules instead.
TenantJob = Literal["dkim-rotate", "secrets-rotate", "check", "backup-verify", "drift"]
TENANT_JOBS: tuple[str, ...] = TenantJob.__args__  # type: ignore[attr-defined]


class JobSchedule(Strict):
    """One job's schedule for the tenant: a cron expression (UTC) replacing the default, and
    ``enabled: false`` to stop the job for this tenant."""

    schedule: Cron | None = None
    enabled: bool = True


class ScheduleSpec(Strict):
    jobs: dict[TenantJob, JobSchedule] = Field(min_length=1)
