"""Building blocks of the campaign sending tests: recorded mailboxes, a campaign and its leads
written straight into a migrated state store (what `apply` and `campaign launch` / `leads
import` would record), and a keystore for mailbox passwords."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

DEFAULT_STEPS = [
    {"subject": "{Hi|Hello} {{ first_name | default('there') }}", "body": "Body one {{ email }}"},
    {"delay": "1d", "body": "Follow-up two"},
    {"delay": "2d", "body": "Follow-up three"},
]


def keystore(tmp_path: Path):
    from penguinctl.providers.secrets.keystore import KeystoreBackend

    return KeystoreBackend(tmp_path / "keystore", key_file=tmp_path / "master.key")


def record_mailboxes(
    engine: sa.Engine,
    tenant: str,
    addresses: Iterable[str],
    *,
    smtp_port: int,
    security: str = "none",
    imap_port: int | None = None,
    imap_security: str = "none",
    daily_limit: int = 1000,
    created_at: datetime | None = None,
) -> None:
    """Server ``mx`` (submission and IMAP on 127.0.0.1), a domain per address, the mailboxes."""
    from penguinctl.resources import ResourceKey
    from penguinctl.state.db import session_scope
    from penguinctl.state.models import ResourceRow
    from penguinctl.state.repo import upsert_resource

    mail: dict[str, Any] = {
        "submission": {"host": "127.0.0.1", "port": smtp_port, "security": security}
    }
    if imap_port:
        mail["imap"] = {"host": "127.0.0.1", "port": imap_port, "security": imap_security}
    with session_scope(engine) as s:
        upsert_resource(
            s,
            key=ResourceKey("server", tenant, "mx"),
            provider="server:external",
            data={"provider": "external", "hostname": "mx.test.example", "mail": mail},
        )
        for address in addresses:
            domain = address.split("@", 1)[1]
            upsert_resource(
                s,
                key=ResourceKey("domain", tenant, domain),
                provider="state",
                data={"server": "mx"},
            )
            upsert_resource(
                s,
                key=ResourceKey("mailbox", tenant, address),
                provider="state",
                data={
                    "domain": domain,
                    "display_name": f"Sender {address.split('@')[0]}",
                    "daily_limit": daily_limit,
                    "password": None,
                },
            )
        if created_at is not None:
            s.execute(
                sa.update(ResourceRow.__table__)
                .where(ResourceRow.__table__.c.kind == "mailbox")
                .values(created_at=created_at)
            )


def make_campaign(
    engine: sa.Engine,
    tenant: str,
    name: str,
    *,
    senders: list[str],
    leads: Iterable[dict[str, Any]],
    steps: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> int:
    """A launched campaign (status active) with its leads (active, next_step 0). Returns its id."""
    from penguinctl.campaigns.models import Campaign, Lead
    from penguinctl.campaigns.spec import CampaignSpec, spec_hash

    doc = {
        "senders": senders,
        "unsubscribe": {"url": "https://track.test.example/u/{token}"},
        "steps": steps or DEFAULT_STEPS,
        "schedule": {
            "timezone": "UTC",
            "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
            "hours": "00:00-24:00",
        },
        "limits": {"per_mailbox_daily": 10000, "min_gap": "0s"},
        **spec,
    }
    stored = CampaignSpec.model_validate(doc).model_dump(mode="json")
    now = datetime.now(UTC)
    with engine.begin() as conn:
        cid = conn.execute(
            sa.insert(Campaign.__table__)
            .values(
                tenant=tenant,
                name=name,
                status="active",
                spec=stored,
                spec_hash=spec_hash(stored),
                created_at=now,
                updated_at=now,
            )
            .returning(Campaign.__table__.c.id)
        ).scalar_one()
        rows = [
            {
                "campaign_id": cid,
                "email": lead["email"],
                "first_name": lead.get("first_name"),
                "last_name": None,
                "company": lead.get("company"),
                "timezone": lead.get("timezone"),
                "fields": lead.get("fields", {}),
                "status": "active",
                "next_step": 0,
                "next_send_at": lead.get("next_send_at"),
                "created_at": now,
                "updated_at": now,
            }
            for lead in leads
        ]
        if rows:
            conn.execute(sa.insert(Lead.__table__), rows)
    return cid


def leads_of(engine: sa.Engine, campaign_id: int) -> dict[str, Any]:
    from penguinctl.campaigns.models import Lead

    t = Lead.__table__
    with engine.connect() as conn:
        return {
            r.email: r for r in conn.execute(sa.select(t).where(t.c.campaign_id == campaign_id))
        }


def sends_of(engine: sa.Engine, campaign_id: int | None = None) -> list[Any]:
    from penguinctl.campaigns.models import CampaignSend

    t = CampaignSend.__table__
    stmt = sa.select(t).order_by(t.c.id)
    if campaign_id is not None:
        stmt = stmt.where(t.c.campaign_id == campaign_id)
    with engine.connect() as conn:
        return list(conn.execute(stmt))
