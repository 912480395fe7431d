"""Building blocks of the dashboard tests: a recorded world with two tenants (the quickstart's
acme, applied for real, and globex written straight into state), campaigns with sends, API keys
of each role, and an HTTP client that signs in the way a browser does (form + cookies)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from penguinctl import clock

ACME_DOMAINS = ("acme-growth.example", "acme-mail.example", "acme-outreach.example")
GLOBEX_DOMAIN = "globex-secret.example"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def seed_globex(engine: sa.Engine) -> None:
    """A second tenant: server, domain (with a failing check), campaign, audit, job series."""
    from penguinctl.health.tables import check_results, check_runs
    from penguinctl.resources import ResourceKey
    from penguinctl.state.audit import record
    from penguinctl.state.db import session_scope
    from penguinctl.state.repo import upsert_resource

    now = clock.now()
    with session_scope(engine) as s:
        upsert_resource(
            s,
            key=ResourceKey("tenant", "", "globex"),
            provider="state",
            data={"plan": "starter", "contact": "ops@globex.example"},
        )
        upsert_resource(
            s,
            key=ResourceKey("server", "globex", "gx-hidden"),
            provider="server:external",
            data={
                "provider": "external",
                "hostname": "gx-hidden.globex.example",
                "ips": ["198.51.100.9"],
            },
        )
        upsert_resource(
            s,
            key=ResourceKey("domain", "globex", GLOBEX_DOMAIN),
            provider="state",
            data={"server": "gx-hidden", "dns": "z", "dmarc": {"policy": "reject"}},
        )
        upsert_resource(
            s,
            key=ResourceKey("dnsrecord", "globex", f"{GLOBEX_DOMAIN}/@/MX"),
            provider="dns:z",
            data={
                "zone": GLOBEX_DOMAIN,
                "name": "@",
                "type": "MX",
                "ttl": 300,
                "values": ["10 mx.globex-secret.example."],
            },
        )
        record(
            s,
            actor="globex-op",
            tenant="globex",
            action="globex.secret-action",
            resource="domain/globex-secret.example",
            result="ok",
        )
        run = s.execute(
            check_runs.insert().values(
                actor="t",
                targets=[GLOBEX_DOMAIN],
                status="fail",
                counts={"fail": 1},
                started_at=now,
                finished_at=now,
            )
        ).inserted_primary_key[0]
        s.execute(
            check_results.insert().values(
                run_id=run,
                tenant="globex",
                target_kind="domain",
                target=GLOBEX_DOMAIN,
                check="dns:MX",
                subject=GLOBEX_DOMAIN,
                status="fail",
                critical=True,
                detail="globex MX missing",
                data={},
                checked_at=now,
            )
        )


def seed_series(engine: sa.Engine) -> None:
    from penguinctl.control.tables import JobSeries

    now = clock.now()
    with engine.begin() as conn:
        conn.execute(
            sa.insert(JobSeries.__table__),
            [
                {
                    "job": job,
                    "tenant": tenant,
                    "target": "",
                    "schedule": "*/15 * * * *",
                    "source": "config",
                    "next_run_at": now + timedelta(minutes=15),
                    "paused": False,
                    "failures": 0,
                    "active": True,
                    "updated_at": now,
                }
                for job, tenant in (("check", "acme"), ("check", "globex"), ("billing-run", ""))
            ],
        )


def seed_sends(engine: sa.Engine, campaign_id: int, tenant: str, mailbox: str, n: int) -> None:
    """``n`` sent first steps (one per lead, oldest leads first) over the last days; the first
    lead replied."""
    from penguinctl.campaigns.models import CampaignSend, Lead

    now = clock.now()
    with engine.begin() as conn:
        leads = conn.execute(
            sa.select(Lead.__table__.c.id, Lead.__table__.c.email)
            .where(Lead.__table__.c.campaign_id == campaign_id)
            .order_by(Lead.__table__.c.id)
            .limit(n)
        ).all()
        conn.execute(
            sa.insert(CampaignSend.__table__),
            [
                {
                    "tenant": tenant,
                    "campaign_id": campaign_id,
                    "lead_id": lid,
                    "step": 0,
                    "variant": "A",
                    "mailbox": mailbox,
                    "recipient": email,
                    "message_id": f"<{campaign_id}.{lid}@t>",
                    "status": "sent",
                    "claimed_at": now - timedelta(days=i % 5),
                    "sent_at": now - timedelta(days=i % 5),
                }
                for i, (lid, email) in enumerate(leads)
            ],
        )
        if leads:
            conn.execute(
                sa.update(Lead.__table__)
                .where(Lead.__table__.c.id == leads[0][0])
                .values(status="replied", next_step=1)
            )


def make_key(engine: sa.Engine, tenant: str, role: str) -> str:
    from penguinctl.identity import keys
    from penguinctl.state.db import session_scope

    with session_scope(engine) as s:
        _, token = keys.create(s, tenant=tenant, role=role, actor="test")
    return token


class Dash:
    """A signed-in dashboard client (cookies, CSRF from the forms), without redirects followed."""

    def __init__(self, base: str) -> None:
        self.client = httpx.Client(base_url=base, follow_redirects=False, timeout=30)

    def login(self, token: str) -> httpx.Response:
        form = self.client.get("/dashboard/login")
        assert form.status_code == 200, form.text
        return self.client.post(
            "/dashboard/login",
            data={"csrf": csrf_of(form.text), "key": token, "next": "/dashboard/domains"},
        )

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.get(path, **kw)

    def post(self, path: str, data: dict[str, str]) -> httpx.Response:
        return self.client.post(path, data=data)

    def csrf(self, page: str = "/dashboard/domains") -> str:
        return csrf_of(self.get(page).text)

    def close(self) -> None:
        self.client.close()


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def seed_scale(engine: sa.Engine, *, domains: int, sends: int = 0, tenant: str = "bulk") -> int:
    """``domains`` recorded domains of ``tenant`` (MX, SPF, DMARC and DKIM records, a DKIM key,
    a check run with every 10th domain failing its MX check) and, when ``sends``, one campaign
    with that many leads each sent step 1 over the last 30 days, variants A and B in turn (every
    20th lead replied: all of them A's, so the A/B test names A the winner). Written
    in bulk, as apply and the worker would have recorded them. Returns the campaign id (0: none).
    """
    from penguinctl.campaigns.models import Campaign, CampaignSend, Lead
    from penguinctl.health.tables import check_results, check_runs
    from penguinctl.state.models import ResourceRow

    now = clock.now()
    r = ResourceRow.__table__
    rows: list[dict[str, Any]] = [
        {
            "tenant": "",
            "kind": "tenant",
            "name": tenant,
            "provider": "state",
            "data": {"plan": "business"},
            "status": "applied",
            "created_at": now,
            "updated_at": now,
        }
    ]
    for i in range(domains):
        d = f"dom{i:05d}.example"
        base = {"tenant": tenant, "status": "applied", "created_at": now, "updated_at": now}
        rows.append(
            {
                **base,
                "kind": "domain",
                "name": d,
                "provider": "state",
                "data": {"server": "mx", "dns": "z", "dmarc": {"policy": "quarantine"}},
            }
        )
        for name, rtype, value in (
            ("@", "MX", "10 mx.bulk.example."),
            ("@", "TXT", "v=spf1 ip4:192.0.2.1 include:spf.bulk.example ~all"),
            ("_dmarc", "TXT", "v=DMARC1; p=quarantine"),
            ("s1._domainkey", "TXT", "v=DKIM1; k=rsa; p=MIIB"),
        ):
            rows.append(
                {
                    **base,
                    "kind": "dnsrecord",
                    "name": f"{d}/{name}/{rtype}",
                    "provider": "dns:z",
                    "data": {"zone": d, "name": name, "type": rtype, "ttl": 300, "values": [value]},
                }
            )
        rows.append(
            {
                **base,
                "kind": "dkim",
                "name": f"{d}/s1",
                "provider": "dkim",
                "data": {
                    "domain": d,
                    "selector": "s1",
                    "phase": "active",
                    "algorithm": "rsa",
                    "bits": 2048,
                },
            }
        )
    with engine.begin() as conn:
        for i in range(0, len(rows), 5000):
            conn.execute(sa.insert(r), rows[i : i + 5000])
        run = conn.execute(
            check_runs.insert().values(
                actor="bench", targets=[], status="fail", counts={}, started_at=now, finished_at=now
            )
        ).inserted_primary_key[0]
        results = [
            {
                "run_id": run,
                "tenant": tenant,
                "target_kind": "domain",
                "target": f"dom{i:05d}.example",
                "check": "dns:MX",
                "subject": f"dom{i:05d}.example",
                "status": "fail" if i % 10 == 0 else "ok",
                "critical": True,
                "detail": "checked",
                "data": {},
                "checked_at": now,
            }
            for i in range(domains)
        ]
        for i in range(0, len(results), 5000):
            conn.execute(check_results.insert(), results[i : i + 5000])
        if not sends:
            return 0
        spec = {
            "senders": ["rep@dom00000.example"],
            "steps": [
                {
                    "subject": "Hi",
                    "body": "x",
                    "variants": [{"name": "B", "weight": 50, "subject": "Hey"}],
                }
            ],
            "unsubscribe": {"url": "https://t.example/u/{token}"},
        }
        cid = conn.execute(
            sa.insert(Campaign.__table__)
            .values(
                tenant=tenant,
                name="big",
                status="active",
                spec=_full_spec(spec),
                spec_hash="bench",
                created_at=now,
                updated_at=now,
            )
            .returning(Campaign.__table__.c.id)
        ).scalar_one()
        providers = ("gmail.com", "outlook.com", "yahoo.com", "example.org")
        leads = [
            {
                "campaign_id": cid,
                "email": f"p{i}@{providers[i % 4]}",
                "fields": {},
                "status": "replied" if i % 20 == 0 else "active",
                "next_step": 1,
                "created_at": now,
                "updated_at": now,
            }
            for i in range(sends)
        ]
        for i in range(0, sends, 10000):
            conn.execute(sa.insert(Lead.__table__), leads[i : i + 10000])
        ids = conn.execute(
            sa.select(Lead.__table__.c.id, Lead.__table__.c.email)
            .where(Lead.__table__.c.campaign_id == cid)
            .order_by(Lead.__table__.c.id)
        ).all()
        batch = [
            {
                "tenant": tenant,
                "campaign_id": cid,
                "lead_id": lid,
                "step": 0,
                "variant": "A" if i % 2 == 0 else "B",
                "mailbox": "rep@dom00000.example",
                "recipient": email,
                "message_id": f"<b{lid}@bench>",
                "status": "sent",
                "claimed_at": now - timedelta(days=i % 30),
                "sent_at": now - timedelta(days=i % 30),
            }
            for i, (lid, email) in enumerate(ids)
        ]
        for i in range(0, len(batch), 10000):
            conn.execute(sa.insert(CampaignSend.__table__), batch[i : i + 10000])
    return int(cid)


def _full_spec(doc: dict[str, Any]) -> dict[str, Any]:
    from penguinctl.campaigns.spec import CampaignSpec

    return CampaignSpec.model_validate(doc).model_dump(mode="json")
