"""Alert digests: at most one mail per recipient per window, flapping folded into one line.

``send_due`` is one pass (``serve``'s event loop, ``events deliver``): every recipient with
waiting items whose window has passed (``every_minutes`` since its last mail; the first mail of
a quiet period goes at once) gets one digest of them. Items are grouped by what they are about
(the event's subject: one check, one listing, one campaign): a group shows its latest state,
and how many times it changed since the last mail, so a check failing and recovering over and
over makes one line in one mail per window. A group whose latest event ends a problem
(``check.recovered``, ``blocklist.delisted``) is listed under "Recovered": that is the recovery
mail. A mail the relay refuses is kept as a failed digest; its items wait and it is tried again
after ``RETRY``.

Claiming a recipient sets ``retry_at`` in a short transaction first (``FOR UPDATE SKIP LOCKED``
on PostgreSQL), so two replicas never mail the same digest; a process killed mid-send leaves the
items waiting, mailed again after ``RETRY``.
"""

from __future__ import annotations

import email.utils
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import sqlalchemy as sa

from penguinctl.alerts.subscriptions import due
from penguinctl.alerts.tables import AlertDigest, AlertItem, AlertSubscription
from penguinctl.events.catalogue import RECOVERY_OF
from penguinctl.events.tables import Event

log = logging.getLogger("penguinctl.alerts")
SUB = AlertSubscription.__table__
ITEM = AlertItem.__table__
DIG = AlertDigest.__table__
EV = Event.__table__
RETRY = timedelta(minutes=5)
MAX_ITEMS = 500


def describe(ev: dict[str, Any]) -> str:
    """One line for people about an event."""
    d, t = ev["data"], ev["type"]
    lines = {
        "check.failed": "{target} {check} {subject}: {status}: {detail}",
        "check.recovered": "{target} {check} {subject}: {status} again",
        "blocklist.listed": "{listed} is listed on {list} ({target}): {detail}",
        "blocklist.delisted": "{listed} is no longer on {list} ({target})",
        "campaign.paused": "campaign {campaign} paused ({cause}): {reason}",
        "backup.failed": "{operation} of {server} failed: {error}",
        "restore.drill.failed": "restore drill of {server} failed: {error}",
        "invoice.payment_failed": "invoice {invoice}: charge {attempt} failed ({reason})",
        "job.failed": "job {job} {target} failed: {error}",
        "dkim.rotation.failed": "DKIM {step} of {domain} failed: {error}",
        "webhook.endpoint.disabled": "webhook endpoint {endpoint} ({host}) disabled: {reason}",
    }
    template = lines.get(t)
    if template is not None:
        try:
            values = {k: (v if v not in ("", None) else "-") for k, v in d.items()}
            if t == "backup.failed" and not d.get("server"):
                values["server"] = "the state store"
            return " ".join(template.format(**values).split())[:300]
        except (KeyError, IndexError):
            pass
    return f"{t} {ev['subject']}"


@dataclass
class Group:
    subject: str
    events: list[dict[str, Any]]

    @property
    def latest(self) -> dict[str, Any]:
        return self.events[-1]

    @property
    def recovered(self) -> bool:
        return self.latest["type"] in RECOVERY_OF

    def line(self, *, tenant: bool = False) -> str:
        latest = self.latest
        when = datetime.fromisoformat(latest["timestamp"]).strftime("%H:%M")
        who = f"{latest['tenant'] or 'platform'}: " if tenant else ""
        text = f"- {who}{describe(latest)}  [{latest['type']}, {when} UTC"
        if len(self.events) > 1:
            text += f"; changed {len(self.events)} times since the last mail"
        return text + "]"


def compose(
    events: list[dict[str, Any]], *, tenant: str, every: int, sender: str, to: str, now: datetime
) -> EmailMessage:
    groups: dict[str, Group] = {}
    for ev in events:  # oldest first
        key = f"{ev['tenant']}|{ev['subject']}"
        groups.setdefault(key, Group(ev["subject"], [])).events.append(ev)
    problems = [g for g in groups.values() if not g.recovered]
    recovered = [g for g in groups.values() if g.recovered]
    scope = tenant or "platform"
    if problems:
        subject = f"[penguinctl] {scope}: {len(problems)} problem(s)"
        if recovered:
            subject += f", {len(recovered)} recovered"
    elif len(recovered) == 1:
        subject = f"[penguinctl] {scope}: recovered: {describe(recovered[0].latest)}"
    else:
        subject = f"[penguinctl] {scope}: {len(recovered)} recovered"
    body = [
        f"penguinctl alerts for {scope} (at most one mail every {every} min), "
        f"{now:%Y-%m-%d %H:%M} UTC",
        "",
    ]
    for title, part in (("Problems", problems), ("Recovered", recovered)):
        if part:
            body += [f"{title} ({len(part)})", *(g.line(tenant=not tenant) for g in part), ""]
    first = min(ev["timestamp"] for ev in events)
    who = f"--tenant {tenant} " if tenant else ""
    body.append(f"Details: penguinctl events list {who}--since {first[:19]}")
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject[:200]
    msg["Date"] = email.utils.format_datetime(now)
    msg["Message-ID"] = email.utils.make_msgid(domain=sender.rpartition("@")[2] or None)
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content("\n".join(body) + "\n")
    return msg


def _claim(engine: Any, now: datetime) -> list[Any]:
    waiting = sa.exists().where(ITEM.c.subscription_id == SUB.c.id, ITEM.c.digest_id.is_(None))
    from penguinctl.events.relay import write_lock

    with engine.begin() as conn:
        write_lock(conn)
        stmt = sa.select(SUB).where(waiting).order_by(SUB.c.id)
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update(of=SUB, skip_locked=True)
        rows = [r for r in conn.execute(stmt).all() if due(r, now)]
        if rows:
            conn.execute(
                sa.update(SUB)
                .where(SUB.c.id.in_([r.id for r in rows]))
                .values(retry_at=now + RETRY)
            )
    return rows


def _items(engine: Any, subscription_id: int) -> list[tuple[int, dict[str, Any]]]:
    from penguinctl.events.query import to_json

    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(ITEM.c.id.label("item_id"), EV)
            .join(EV, EV.c.seq == ITEM.c.event_seq)
            .where(ITEM.c.subscription_id == subscription_id, ITEM.c.digest_id.is_(None))
            .order_by(EV.c.seq)
            .limit(MAX_ITEMS)
        ).all()
    return [(r.item_id, to_json(r)) for r in rows]


def send_due(engine: Any, secrets: Any, relay: Any, *, now: datetime) -> list[dict[str, Any]]:
    """Mail every recipient that is due; returns what was sent or tried."""
    if relay is None:
        return []
    out = []
    for sub in _claim(engine, now):
        items = _items(engine, sub.id)
        if not items:
            continue
        events = [ev for _, ev in items]
        msg = compose(
            events,
            tenant=sub.tenant,
            every=sub.every_minutes,
            sender=relay.sender,
            to=sub.email,
            now=now,
        )
        error = relay.send(secrets, sub.email, msg.as_bytes())
        with engine.begin() as conn:
            digest_id = conn.execute(
                sa.insert(DIG)
                .values(
                    subscription_id=sub.id,
                    attempted_at=now,
                    status="sent" if error is None else "failed",
                    items=len(items),
                    subject=str(msg["Subject"]),
                    error=error,
                )
                .returning(DIG.c.id)
            ).scalar_one()
            if error is None:
                conn.execute(
                    sa.update(ITEM)
                    .where(ITEM.c.id.in_([i for i, _ in items]))
                    .values(digest_id=digest_id)
                )
                conn.execute(
                    sa.update(SUB).where(SUB.c.id == sub.id).values(last_sent_at=now, retry_at=None)
                )
            else:
                log.warning("alert digest to %s not sent: %s", sub.email, error)
        out.append(
            {
                "to": sub.email,
                "tenant": sub.tenant or None,
                "items": len(items),
                "subject": str(msg["Subject"]),
                "error": error,
            }
        )
    return out
