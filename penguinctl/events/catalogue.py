"""The catalogue of event types: what each one means, whose it is, which code emits it, and the
JSON Schema of its payload (``schemas/<type>.json``, shipped in the wheel).

A webhook body is the Standard Webhooks envelope around the payload::

    {"id": "evt_...", "type": "check.failed", "timestamp": "2026-11-24T10:00:00+00:00",
     "tenant": "acme" | null, "subject": "server/mx1", "data": {...the payload...}}

``envelope_schema(type)`` is that body's schema; the README's catalogue table is
``markdown_table()`` (a test keeps the two equal). Adding a type: a row in ``TYPES``, a schema
file, an ``emit`` call in the code path that does the thing, and a test that the path emits it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

SCHEMAS = Path(__file__).parent / "schemas"


@dataclass(frozen=True)
class EventType:
    name: str
    scope: str  # tenant | platform | either ("either": platform when the thing has no tenant)
    emitted_by: str  # the code path (for the README)

    @property
    def description(self) -> str:
        return str(payload_schema(self.name).get("description", ""))


TYPES: tuple[EventType, ...] = (
    EventType("domain.applied", "tenant", "`apply` / `destroy` (engine), once per domain per run"),
    EventType("domain.transferred", "tenant", "`domains transfer` (both tenants, one event each)"),
    EventType("drift.detected", "tenant", "the `drift` job (serve, `jobs run drift`)"),
    EventType("dkim.rotation.advanced", "tenant", "`dkim rotate`, serve's `dkim-rotate` job"),
    EventType("dkim.rotation.failed", "tenant", "`dkim rotate`, serve's `dkim-rotate` job"),
    EventType("secret.rotated", "either", "`secrets rotate`, serve's `secrets-rotate` job"),
    EventType("check.failed", "either", "`check`, serve's `check` job (on the transition)"),
    EventType("check.recovered", "either", "`check`, serve's `check` job (on the transition)"),
    EventType("blocklist.listed", "either", "`check` (dnsbl), on the transition"),
    EventType("blocklist.delisted", "either", "`check` (dnsbl), on the transition"),
    EventType(
        "campaign.paused",
        "tenant",
        "worker (bounce rate, template error), `check`, dunning, `campaign pause`",
    ),
    EventType("campaign.completed", "tenant", "worker"),
    EventType("send.ambiguous", "tenant", "worker (lost answer, or recovered after a crash)"),
    EventType("backup.failed", "either", "`backup run` / `prune` / `state`, serve's backup jobs"),
    EventType("backup.verified", "either", "`backup verify`, serve's `backup-verify` job"),
    EventType(
        "restore.drill.failed",
        "either",
        "`backup verify`, serve's `backup-verify` job (check, samples, mail-store drill)",
    ),
    EventType("invoice.created", "tenant", "`billing run`, serve's `billing-run` job"),
    EventType("invoice.paid", "tenant", "`billing sync` (charge, retry or Stripe status)"),
    EventType("invoice.payment_failed", "tenant", "`billing sync` (first charge, dunning retry)"),
    EventType("tenant.suspended", "tenant", "`billing sync` (dunning, after the last retry)"),
    EventType("tenant.reactivated", "tenant", "`billing sync` (invoice paid)"),
    EventType("budget.threshold", "tenant", "`billing run` / `billing alerts` (80 %, 100 %)"),
    EventType("job.failed", "either", "the job runner (serve, `jobs run`): failed or timed out"),
    EventType("webhook.endpoint.disabled", "either", "webhook delivery (failing for days, 410)"),
    EventType("webhook.test", "either", "`webhooks test` (to that endpoint only)"),
)
BY_NAME: dict[str, EventType] = {t.name: t for t in TYPES}

# What alert emails carry by default (and what `alerts add --events` may name).
ALERT_TYPES: tuple[str, ...] = (
    "check.failed",
    "check.recovered",
    "blocklist.listed",
    "blocklist.delisted",
    "campaign.paused",
    "backup.failed",
    "restore.drill.failed",
    "invoice.payment_failed",
    "job.failed",
    "dkim.rotation.failed",
    "webhook.endpoint.disabled",
)
# Events that end a problem another event started (a recovery mail, flap damping).
RECOVERY_OF: dict[str, str] = {
    "check.recovered": "check.failed",
    "blocklist.delisted": "blocklist.listed",
}


def get(name: str) -> EventType:
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"{name!r} is not an event type in the catalogue") from None


@cache
def payload_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of ``name``'s payload (the webhook body's ``data``)."""
    return json.loads((SCHEMAS / f"{name}.json").read_text(encoding="utf-8"))


def envelope_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of a whole webhook body carrying a ``name`` event."""
    data = {k: v for k, v in payload_schema(name).items() if not k.startswith("$")}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "id": {"type": "string", "pattern": "^evt_[0-9a-f]{24}$"},
            "type": {"const": name},
            "timestamp": {"type": "string", "format": "date-time"},
            "tenant": {"type": ["string", "null"]},
            "subject": {"type": "string", "maxLength": 400},
            "data": data,
        },
        "required": ["id", "type", "timestamp", "tenant", "subject", "data"],
        "additionalProperties": False,
    }


def matches(patterns: list[str] | tuple[str, ...], name: str) -> bool:
    """Whether an event type filter (exact names, or ``prefix.*``) takes ``name``; an empty
    filter takes everything."""
    if not patterns:
        return True
    return any(p == name or (p.endswith(".*") and name.startswith(p[:-1])) for p in patterns)


def check_patterns(patterns: list[str]) -> list[str]:
    """``patterns`` as given, each a catalogue type or a ``prefix.*`` matching one; raises
    ValueError naming the first that matches nothing."""
    for p in patterns:
        if not any(matches([p], t.name) for t in TYPES):
            raise ValueError(f"{p!r} matches no event type")
    return patterns


def markdown_table() -> str:
    """The README's catalogue table."""
    rows = ["| type | tenant | emitted by | meaning |", "|---|---|---|---|"]
    scope = {"tenant": "tenant", "platform": "none", "either": "tenant, or none"}
    for t in TYPES:
        rows.append(f"| `{t.name}` | {scope[t.scope]} | {t.emitted_by} | {t.description} |")
    return "\n".join(rows)
