"""The ``Campaign`` document (product contract section 3) and its loader.

``load_campaign_file(path)`` reads one YAML file with the spec loader machinery (positions kept,
hostile YAML refused) and returns its Campaign documents, validated as strictly as tenant specs:
unknown fields, bad values and template problems are :class:`~penguinctl.errors.SpecIssue` s
with ``file:line:col``, all reported at once in one :class:`~penguinctl.errors.SpecError`.

Stored form: ``CampaignSpec.model_dump(mode="json")`` goes into ``campaigns.spec``;
:func:`spec_of` turns a stored row back into a ``CampaignSpec``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator

from penguinctl.errors import Location, SpecError, SpecIssue
from penguinctl.spec.documents import Metadata
from penguinctl.spec.durations import Duration
from penguinctl.spec.loader import SpecFile, read_spec_file
from penguinctl.spec.models import Strict
from penguinctl.spec.source import YamlMap, locate
from penguinctl.spec.types import Email, MultiLineText, Name

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_STEPS = 20
# Variables every template may use without a default (filled in by message.compose).
BUILTIN_VARIABLES = frozenset(
    {"sender_email", "sender_name", "sender_first_name", "unsubscribe_url", "campaign"}
)
# Lead columns (leads.csv): also variables, but a lead may leave them empty.
LEAD_COLUMNS = ("email", "first_name", "last_name", "company", "timezone")

_HOURS = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])-(([01][0-9]|2[0-3]):([0-5][0-9])|24:00)")
_VARIANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
_FIELD = re.compile(r"[a-z_][a-z0-9_]{0,63}")


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone '{value}' (use an IANA name such as Europe/Paris)"
        ) from None
    return value


class Schedule(Strict):
    """When sends may go out: ``days`` x ``hours`` in the lead's zone (``timezone: lead``, with
    ``fallback_timezone`` for leads without one) or in one fixed IANA zone."""

    timezone: str = "lead"
    fallback_timezone: str = "UTC"
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(
        default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"], min_length=1
    )
    hours: str = "09:00-17:00"  # end exclusive; 24:00 = midnight

    @field_validator("timezone")
    @classmethod
    def _zone_or_lead(cls, value: str) -> str:
        return value if value == "lead" else _check_zone(value)

    @field_validator("fallback_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _check_zone(value)

    @field_validator("days")
    @classmethod
    def _unique_days(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a day is listed twice")
        return sorted(value, key=DAYS.index)

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        match = _HOURS.fullmatch(value.replace(" ", ""))
        if not match:
            raise ValueError("hours must be HH:MM-HH:MM, for example 09:00-17:00")
        start, end = value.replace(" ", "").split("-")
        if end != "24:00" and end <= start:
            raise ValueError("hours: the end must be after the start (within one day)")
        return f"{start}-{end}"


class Limits(Strict):
    per_mailbox_daily: int = Field(default=50, ge=1, le=10_000)
    min_gap: Duration = Duration("120s")  # between two sends of one mailbox


class Unsubscribe(Strict):
    url: str  # https URL with a {token} placeholder

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith("https://") or len(value) <= len("https://"):
            raise ValueError("the unsubscribe url must be an https:// URL (RFC 8058)")
        if value.count("{token}") != 1:
            raise ValueError("the unsubscribe url must contain {token} exactly once")
        if any(c.isspace() or c in '<>"' for c in value):
            raise ValueError("the unsubscribe url must not contain spaces, quotes or <>")
        return value


class Variant(Strict):
    """An A/B variant of a step: what it overrides. The step itself is variant ``A``."""

    name: str
    weight: int = Field(ge=0, le=100)
    subject: str | None = None
    body: MultiLineText | None = None
    html: MultiLineText | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _VARIANT.fullmatch(value):
            raise ValueError("a variant name is letters, digits, '-' or '_' (at most 32)")
        if value == "A":
            raise ValueError("'A' is the step itself; name the variants B, C, ...")
        return value

    @model_validator(mode="after")
    def _overrides_something(self) -> Variant:
        if self.subject is None and self.body is None and self.html is None:
            raise ValueError("a variant must set subject, body or html")
        return self


class Step(Strict):
    subject: str | None = None  # required on the first step; follow-ups default to "Re: ..."
    body: MultiLineText
    html: MultiLineText | None = None
    delay: Duration | None = None  # after the previous step; required on follow-ups
    variants: list[Variant] = []

    @field_validator("variants")
    @classmethod
    def _variants(cls, value: list[Variant]) -> list[Variant]:
        names = [v.name for v in value]
        if len(set(names)) != len(names):
            raise ValueError("variant names must be unique within a step")
        if sum(v.weight for v in value) > 100:
            raise ValueError("variant weights add up to more than 100 (A gets 100 - their sum)")
        return value

    @property
    def base_weight(self) -> int:
        """Weight of variant ``A`` (the step as written): 100 minus the variants' weights."""
        return 100 - sum(v.weight for v in self.variants)

    def weighted(self) -> list[tuple[str, int]]:
        """``[("A", w), ("B", w), ...]`` in spec order, zero weights included."""
        return [("A", self.base_weight), *((v.name, v.weight) for v in self.variants)]

    def content(self, variant: str) -> tuple[str | None, str, str | None]:
        """(subject, body, html) of ``variant`` (unknown names give the step itself)."""
        for v in self.variants:
            if v.name == variant:
                return (
                    v.subject if v.subject is not None else self.subject,
                    v.body if v.body is not None else self.body,
                    v.html if v.html is not None else self.html,
                )
        return self.subject, self.body, self.html


class Tracking(Strict):
    """Open and click tracking: off (cold email is sent without pixels or rewritten links)."""

    opens: bool = False
    clicks: bool = False

    @model_validator(mode="after")
    def _off(self) -> Tracking:
        if self.opens or self.clicks:
            raise ValueError(
                "open/click tracking is not supported: campaigns are sent without tracking"
            )
        return self


class WarmupPhase(Strict):
    """``days`` days ramping the daily cap linearly from ``start`` to ``end``."""

    days: int = Field(ge=1, le=365)
    start: int = Field(ge=1, le=10_000)  # daily caps, as limits.per_mailbox_daily
    end: int = Field(ge=1, le=10_000)


class Warmup(Strict):
    """A new mailbox's daily cap ramp (campaigns.md section 3): a preset or a custom schedule.
    The cap never exceeds ``limits.per_mailbox_daily`` nor the mailbox's own daily limit."""

    preset: Literal["conservative", "standard", "aggressive", "custom"] = "standard"
    schedule: list[WarmupPhase] | None = None

    @model_validator(mode="after")
    def _schedule(self) -> Warmup:
        if self.preset == "custom" and not self.schedule:
            raise ValueError("preset custom needs a schedule: [{days, start, end}, ...]")
        if self.preset != "custom" and self.schedule is not None:
            raise ValueError(f"preset {self.preset} takes no schedule (use preset: custom)")
        return self


def _percent(value: Any) -> Any:
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            return float(value.strip()[:-1])
        except ValueError:
            raise ValueError("write a percentage like 5% or 2.5") from None
    return value


class CampaignSpec(Strict):
    senders: list[Email] = Field(min_length=1)
    schedule: Schedule = Field(default_factory=Schedule)
    limits: Limits = Field(default_factory=Limits)
    stop_on: list[Literal["reply", "bounce", "unsubscribe", "auto_reply"]] = Field(
        default_factory=lambda: ["reply", "bounce", "unsubscribe"]
    )
    unsubscribe: Unsubscribe
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)
    fields: list[str] = []  # custom lead fields the templates use without a default
    tracking: Tracking = Field(default_factory=Tracking)
    warmup: Warmup | None = None  # None: no ramp, the caps apply from day one
    # Pause a mailbox or the campaign when its bounce rate exceeds this (percent; "5%" or 5).
    bounce_pause_threshold: float = Field(default=5.0, gt=0, le=100)

    @field_validator("bounce_pause_threshold", mode="before")
    @classmethod
    def _pct(cls, value: Any) -> Any:
        return _percent(value)

    @field_validator("senders")
    @classmethod
    def _unique_senders(cls, value: list[str]) -> list[str]:
        lowered = [v.lower() for v in value]
        if len(set(lowered)) != len(lowered):
            raise ValueError("a sender is listed twice")
        return value

    @field_validator("stop_on")
    @classmethod
    def _stop_on(cls, value: list[str]) -> list[str]:
        if "unsubscribe" not in value or "bounce" not in value:
            raise ValueError("stop_on must include unsubscribe and bounce (never mail them again)")
        return value

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _FIELD.fullmatch(name):
                raise ValueError(f"field '{name}' must be lower_snake_case (as in the leads CSV)")
        return value

    @property
    def bounce_pause_fraction(self) -> float:
        """``bounce_pause_threshold`` as a fraction (5% -> 0.05)."""
        return self.bounce_pause_threshold / 100.0

    def templates(self) -> list[tuple[tuple[str | int, ...], str, str]]:
        """Every template in the spec: (path below ``spec``, kind, text); kind is subject, body
        or html."""
        found: list[tuple[tuple[str | int, ...], str, str]] = []
        for i, step in enumerate(self.steps):
            for kind in ("subject", "body", "html"):
                text = getattr(step, kind)
                if text is not None:
                    found.append((("steps", i, kind), kind, text))
            for j, variant in enumerate(step.variants):
                for kind in ("subject", "body", "html"):
                    text = getattr(variant, kind)
                    if text is not None:
                        found.append((("steps", i, "variants", j, kind), kind, text))
        return found

    def required_variables(self) -> frozenset[str]:
        """Lead variables some template uses without a default (a lead must have them)."""
        from penguinctl.campaigns.templates import check

        needed: set[str] = set()
        for _, _, text in self.templates():
            needed |= check(text).required
        return frozenset(needed - BUILTIN_VARIABLES)


class CampaignMetadata(Metadata):
    tenant: Name = Field(description="the Tenant whose mailboxes send this campaign")


class CampaignEnvelope(Strict):
    apiVersion: Literal["penguinctl/v1"]
    kind: Literal["Campaign"]
    metadata: CampaignMetadata
    spec: CampaignSpec


@dataclass(eq=False)
class CampaignDoc:
    """A validated Campaign document and where it was written."""

    name: str
    tenant: str
    spec: CampaignSpec
    location: Location
    raw: YamlMap

    def location_of(self, *field_path: str | int) -> Location:
        return locate(self.raw, field_path)[0]

    @property
    def stored(self) -> dict[str, Any]:
        """The JSON form stored in ``campaigns.spec``."""
        return self.spec.model_dump(mode="json")

    @property
    def spec_hash(self) -> str:
        return spec_hash(self.stored)


def spec_hash(stored: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a stored spec."""
    canonical = json.dumps(stored, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


_SPEC_CACHE: dict[str, CampaignSpec] = {}


def spec_of(campaign: Any) -> CampaignSpec:
    """The ``CampaignSpec`` of a stored campaign row (cached by ``spec_hash``)."""
    key = getattr(campaign, "spec_hash", None) or spec_hash(campaign.spec)
    cached = _SPEC_CACHE.get(key)
    if cached is None:
        if len(_SPEC_CACHE) > 256:
            _SPEC_CACHE.clear()
        cached = CampaignSpec.model_validate(campaign.spec)
        _SPEC_CACHE[key] = cached
    return cached


# -- loading -----------------------------------------------------------------------------------
def _template_issues(doc: CampaignDoc) -> list[SpecIssue]:
    from penguinctl.campaigns.templates import check

    issues: list[SpecIssue] = []
    spec = doc.spec
    known = BUILTIN_VARIABLES | set(LEAD_COLUMNS) | set(spec.fields)
    label = f"campaign {doc.name}"
    for path, _, text in spec.templates():
        where = doc.location_of("spec", *path)
        shown = _dotted(("spec", *path))
        result = check(text)
        for line, problem in result.problems:
            at = f" (template line {line})" if "\n" in text.strip() else ""
            issues.append(SpecIssue(where, f"{label}: {shown}: {problem}{at}"))
        for name in sorted(result.required - known):
            issues.append(
                SpecIssue(
                    where,
                    f"{label}: {shown}: variable '{name}' has no default and is not a lead "
                    f"column ({', '.join(LEAD_COLUMNS)}), a built-in or a listed field; give it "
                    f'a default ({{{{ {name} | default("...") }}}}) or add it to spec.fields',
                )
            )
    steps = spec.steps
    if steps[0].subject is None:
        issues.append(
            SpecIssue(
                doc.location_of("spec", "steps", 0),
                f"{label}: spec.steps[0]: the first step needs a subject",
            )
        )
    if steps[0].delay is not None and steps[0].delay.total_seconds() != 0:
        issues.append(
            SpecIssue(
                doc.location_of("spec", "steps", 0, "delay"),
                f"{label}: spec.steps[0].delay: the first step goes out when a lead is due; "
                "delay applies to follow-ups",
            )
        )
    for i, step in enumerate(steps[1:], start=1):
        if step.delay is None:
            issues.append(
                SpecIssue(
                    doc.location_of("spec", "steps", i),
                    f"{label}: spec.steps[{i}]: a follow-up needs a delay (e.g. delay: 3d)",
                )
            )
    return issues


def _dotted(parts: tuple[str | int, ...]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def load_campaign_documents(path: str | Path) -> list[CampaignDoc]:
    """Every Campaign document in the file at ``path``; raises :class:`SpecError` listing every
    problem (YAML, schema, templates) with its ``file:line:col``."""
    from penguinctl.spec.validate import _issue

    given = Path(path)
    shown = str(path)
    if not given.is_file():
        raise SpecError([SpecIssue(Location(shown), "no such file")])
    parsed = read_spec_file(SpecFile(shown, given.resolve()))
    issues = list(parsed.issues)
    docs: list[CampaignDoc] = []
    for data in parsed.documents:
        kind = data.get("kind")
        if kind != "Campaign":
            what = f"a {kind} document" if isinstance(kind, str) else "a document without kind"
            issues.append(
                SpecIssue(
                    data.key_location("kind"),
                    f"{what}: campaign launch takes Campaign documents "
                    "(apply the others with `penguinctl apply`)",
                )
            )
            continue
        metadata = data.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        label = f"campaign {name}" if isinstance(name, str) else "campaign"
        try:
            envelope = CampaignEnvelope.model_validate(data)
        except ValidationError as exc:
            issues.extend(
                _issue(data, error, label, CampaignEnvelope)
                for error in exc.errors(include_url=False, include_input=False)
            )
            continue
        doc = CampaignDoc(
            name=envelope.metadata.name,
            tenant=envelope.metadata.tenant,
            spec=envelope.spec,
            location=data.location,
            raw=data,
        )
        issues.extend(_template_issues(doc))
        docs.append(doc)
    seen: dict[tuple[str, str], CampaignDoc] = {}
    for doc in docs:
        key = (doc.tenant, doc.name)
        if key in seen:
            issues.append(
                SpecIssue(doc.location, f"campaign {doc.name}: defined twice in this file")
            )
        seen[key] = doc
    if not issues and not docs:
        issues.append(SpecIssue(Location(shown), "no Campaign document in this file"))
    if issues:
        raise SpecError(issues)
    return docs


def load_campaign_file(path: str | Path) -> CampaignDoc:
    """The one Campaign document in the file at ``path`` (see :func:`load_campaign_documents`);
    a file with several campaigns is an error here."""
    docs = load_campaign_documents(path)
    if len(docs) > 1:
        raise SpecError(
            [SpecIssue(docs[1].location, "expected one Campaign document in this file")]
        )
    return docs[0]
