"""``check --notify URL``: a thin alias over the webhook system.

The URL becomes a platform webhook endpoint (created on first use, ``source = notify``) for
``check.*``, ``blocklist.*`` and ``campaign.paused``, signed with the secret from
``PENGUINCTL_WEBHOOK_SECRET`` or the secrets backend at ``platform/notify/webhook`` (field
``secret``): its ``whsec_`` form is ``whsec_`` + base64(secret), so one secret verifies both
schemes. After the checks, the events they emitted (transitions only: a check that starts
failing, or recovers) are delivered to it at once, one POST per event with the Standard Webhooks
headers and, for one release, the old ``X-Penguinctl-Timestamp`` /
``X-Penguinctl-Signature: sha256=<hex>`` over the same body (``<timestamp>.<body>``,
HMAC-SHA256 keyed with the secret). A POST that fails is retried on the webhook schedule by
``serve`` (or ``events deliver``).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from penguinctl import secret_paths
from penguinctl.errors import ProviderError

SECRET_PATH = secret_paths.NOTIFY_WEBHOOK
EVENTS = ["check.*", "blocklist.*", "campaign.paused"]


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The legacy ``X-Penguinctl-Signature`` value."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def webhook_secret(env: dict[str, str], secrets: Any) -> str:
    if env.get("PENGUINCTL_WEBHOOK_SECRET"):
        return env["PENGUINCTL_WEBHOOK_SECRET"]
    fields = secrets.get(SECRET_PATH) or {}
    if "secret" not in fields:
        raise ProviderError(
            "no webhook secret: set PENGUINCTL_WEBHOOK_SECRET or store one",
            hint=f"penguinctl secrets put {SECRET_PATH} secret=...",
        )
    return fields["secret"].reveal()


def endpoint_for(app: Any, url: str, secret: str, *, allow_private: bool) -> Any:
    """The ``notify`` endpoint of ``url``, created (or its secret brought in line) now."""
    import sqlalchemy as sa

    from penguinctl.webhooks import endpoints, signing

    whsec = signing.from_legacy(secret)
    ep = endpoints.find_by_url(app.db, url, tenant="", source="notify")
    if ep is None:
        ep, _ = endpoints.add(
            app.db,
            app.secrets(),
            url,
            event_types=EVENTS,
            description="check --notify",
            allow_private=allow_private,
            actor=app.actor(),
            source="notify",
            secret=whsec,
            legacy_headers=True,
        )
        return ep
    path = endpoints.secret_path("", ep.id)
    stored = (app.secrets().get(path) or {}).get("secret")
    if stored is None or stored.reveal() != whsec:  # the operator changed the secret
        app.secrets().put(path, {"secret": whsec})
        with app.db.begin() as conn:
            conn.execute(
                sa.update(endpoints.E)
                .where(endpoints.E.c.id == ep.id)
                .values(secret_rotated_at=app.now())
            )
    if ep.allow_private != allow_private or ep.status != "active":
        with app.db.begin() as conn:
            conn.execute(
                sa.update(endpoints.E)
                .where(endpoints.E.c.id == ep.id)
                .values(allow_private=allow_private, status="active", disabled_reason=None)
            )
    return endpoints.get(app.db, ep.id)


def deliver_now(app: Any, endpoint_id: str) -> dict[str, Any]:
    """Relay what was emitted and deliver this endpoint's due deliveries (one attempt each)."""
    import sqlalchemy as sa

    from penguinctl.events.relay import relay
    from penguinctl.webhooks.delivery import DL, Deliverer

    now = app.now()
    relay(app.db, now=now)
    with app.db.connect() as conn:
        ids = list(
            conn.execute(
                sa.select(DL.c.id).where(
                    DL.c.endpoint_id == endpoint_id,
                    DL.c.status == "pending",
                    DL.c.next_attempt_at <= now,
                )
            ).scalars()
        )
    deliverer = Deliverer(app.db, app.secrets(), clock=app.clock, owner=f"cli:{app.actor()}")
    try:
        report = deliverer.deliver_due(delivery_ids=ids) if ids else None
    finally:
        deliverer.close()
    out = {"endpoint": endpoint_id, "events": len(ids), "delivered": 0, "retrying": 0}
    if report is not None:
        out.update(delivered=report.succeeded, retrying=report.retrying + report.deferred)
    return out
