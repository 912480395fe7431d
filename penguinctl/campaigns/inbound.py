"""Reading each sending mailbox over IMAP: bounces, replies, auto-replies, unsubscribes.

For every mailbox, the INBOX is opened read-only and the messages with a UID above the
stored cursor (``inbound_cursors``: UIDVALIDITY + last UID) are fetched with ``BODY.PEEK[]``
(nothing is marked seen, deleted or moved). Each message becomes one ``inbound_events`` row,
unique per (mailbox, folder, UIDVALIDITY, UID), written in the same transaction as its effects
and the cursor, so a message is processed once even if the worker dies half-way:

- a DSN (dsn.py): matched to the ledger by the original Message-ID (else by the recipient and
  this mailbox); a hard bounce stops the lead (``bounced``) and suppresses the address for the
  tenant at once; a soft bounce is counted and the third stops and suppresses likewise;
- otherwise a message whose ``In-Reply-To`` / ``References`` name a Message-ID of the ledger
  (else whose sender is a lead this mailbox wrote to): an unsubscribe request stops the lead
  (``unsubscribed``) and suppresses it; an automatic reply (autoreply.py) is recorded and stops
  the lead only if ``stop_on`` has ``auto_reply``; any other reply stops it (``replied``) when
  ``stop_on`` has ``reply``;
- anything else is recorded as ``unmatched``.

Incoming mail is hostile input (anyone can write to a campaign mailbox). Only the first
:data:`~penguinctl.campaigns.mailtext.MAX_MESSAGE_BYTES` of a message are fetched (an IMAP
partial fetch); text is decoded leniently (mailtext.py: unknown charsets read as UTF-8, bad
bytes replaced) and what is stored from it is cleaned (no NUL, no control characters). A
message that still cannot be processed (whatever it raises) is **quarantined**: its
``inbound_events`` row has kind ``quarantined`` and the reason in ``detail``, it is audited
(``campaign.inbound.quarantined``), the cursor moves past it and the next message is read; its
partial effects are rolled back. Only the state store failing stops the poll.

Then the worker checks bounce rates (bounce_rates.py): a mailbox or a campaign whose bounces
(hard DSNs plus SMTP-time 5xx rejections) exceed ``bounce_pause_threshold`` of what it sent,
over at least ``min_sample`` messages, is paused with the reason.
"""

from __future__ import annotations

import contextlib
import email
import imaplib
import re
import ssl
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import Message
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from penguinctl.campaigns.autoreply import auto_reply_reason, is_unsubscribe_request
from penguinctl.campaigns.dsn import SOFT_LIMIT, parse_dsn, suppress_hard
from penguinctl.campaigns.ledger import LEADS, SENDS
from penguinctl.campaigns.mailtext import MAX_MESSAGE_BYTES, clean, header
from penguinctl.campaigns.senders import Sender, password_for
from penguinctl.campaigns.tables import InboundCursor, InboundEvent

if TYPE_CHECKING:
    from penguinctl.campaigns.plans import CampaignPlan

FETCH_CHUNK = 100
CURSORS = InboundCursor.__table__
EVENTS = InboundEvent.__table__
_MSGID = re.compile(r"<[^<>\s]+>")
MAX_REFERENCES = 50  # Message-IDs of References looked up (the newest: ours are the last)
DEFAULT_STOP = frozenset({"reply", "bounce", "unsubscribe"})
# The state store itself failing: not the message's fault, so it is not quarantined.
_STORE_DOWN = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DisconnectionError)


@dataclass
class Context:
    engine: Engine
    tenant: str
    mailbox: str
    folder: str
    uidvalidity: int
    now: datetime
    stop_on: dict[int, frozenset[str]]  # campaign id -> stop_on
    actor: str


# -- IMAP ---------------------------------------------------------------------------------------
def connect(
    sender: Sender, password: str | None, *, context: ssl.SSLContext | None, timeout: float
) -> imaplib.IMAP4:
    ep = sender.imap
    if ep.security == "tls":
        conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(
            ep.host, ep.port, ssl_context=context or ssl.create_default_context(), timeout=timeout
        )
    else:
        conn = imaplib.IMAP4(ep.host, ep.port, timeout=timeout)
        if ep.security == "starttls":
            conn.starttls(ssl_context=context or ssl.create_default_context())
    if password is not None:
        conn.login(sender.address, password)
    return conn


def poll_mailbox(
    engine: Engine,
    sender: Sender,
    conn: imaplib.IMAP4,
    *,
    now: datetime,
    stop_on: dict[int, frozenset[str]],
    actor: str = "worker",
    folder: str = "INBOX",
    note: Callable[[str], None] | None = None,
) -> Counter[str]:
    """Process every new message of ``folder``; returns counts per event kind. ``note`` hears
    about each message quarantined."""
    typ, _ = conn.select(folder, readonly=True)
    if typ != "OK":
        raise imaplib.IMAP4.error(f"cannot open {folder}")
    uidvalidity = int(conn.response("UIDVALIDITY")[1][0])
    last = _cursor(engine, sender, folder, uidvalidity)
    typ, data = conn.uid("SEARCH", None, f"UID {last + 1}:*")
    uids = sorted(u for u in (int(x) for x in (data[0] or b"").split()) if u > last)
    counts: Counter[str] = Counter()
    ctx = Context(engine, sender.tenant, sender.address, folder, uidvalidity, now, stop_on, actor)
    for i in range(0, len(uids), FETCH_CHUNK):
        chunk = uids[i : i + FETCH_CHUNK]
        fetch = f"(UID BODY.PEEK[]<0.{MAX_MESSAGE_BYTES}>)"
        typ, data = conn.uid("FETCH", ",".join(map(str, chunk)), fetch)
        for uid, raw in _fetched(data):
            kind = process_message(ctx, uid, raw)
            counts[kind] += 1
            if kind == "quarantined" and note is not None:
                note(f"imap {sender.address}: message UID {uid} quarantined: {_why(ctx, uid)}")
    return counts


def _fetched(data: list[Any]) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    for item in data:
        if isinstance(item, tuple) and len(item) == 2:
            m = re.search(rb"UID (\d+)", item[0])
            if m:
                out.append((int(m.group(1)), item[1]))
    out.sort()
    return out


def _cursor(engine: Engine, sender: Sender, folder: str, uidvalidity: int) -> int:
    with engine.begin() as conn:
        row = conn.execute(
            sa.select(CURSORS).where(
                CURSORS.c.tenant == sender.tenant,
                CURSORS.c.mailbox == sender.address,
                CURSORS.c.folder == folder,
            )
        ).first()
        if row is None:
            conn.execute(
                sa.insert(CURSORS).values(
                    tenant=sender.tenant,
                    mailbox=sender.address,
                    folder=folder,
                    uidvalidity=uidvalidity,
                    last_uid=0,
                    updated_at=sa.func.now(),
                )
            )
            return 0
        if row.uidvalidity != uidvalidity:  # the folder was recreated: UIDs start over
            conn.execute(
                sa.update(CURSORS)
                .where(CURSORS.c.id == row.id)
                .values(uidvalidity=uidvalidity, last_uid=0)
            )
            return 0
        return int(row.last_uid)


# -- one message --------------------------------------------------------------------------------
def process_message(ctx: Context, uid: int, raw: bytes) -> str:
    """Process one message (its event row, its effects and the cursor in one transaction);
    the kind recorded. A message that raises anything is quarantined instead (see the module
    doc); only the state store failing propagates."""
    try:
        return _process(ctx, uid, raw)
    except _STORE_DOWN:
        raise
    except Exception as exc:  # a hostile message: never the worker's failure
        why = clean(f"{type(exc).__name__}: {exc}", 300)
    return _quarantine(ctx, uid, why)


def _seen(conn: Connection, ctx: Context, uid: int) -> Any:
    return conn.execute(
        sa.select(EVENTS.c.kind, EVENTS.c.detail).where(
            EVENTS.c.tenant == ctx.tenant,
            EVENTS.c.mailbox == ctx.mailbox,
            EVENTS.c.folder == ctx.folder,
            EVENTS.c.uidvalidity == ctx.uidvalidity,
            EVENTS.c.uid == uid,
        )
    ).first()


def _record(conn: Connection, ctx: Context, uid: int, event: dict[str, Any]) -> None:
    """The message's event row (what came from the message cleaned) and the cursor past it."""
    for key in ("detail", "status_code"):
        if event.get(key) is not None:
            event[key] = clean(event[key], 200) or None
    conn.execute(
        sa.insert(EVENTS).values(
            tenant=ctx.tenant,
            mailbox=ctx.mailbox,
            folder=ctx.folder,
            uidvalidity=ctx.uidvalidity,
            uid=uid,
            received_at=ctx.now,
            **event,
        )
    )
    conn.execute(
        sa.update(CURSORS)
        .where(
            CURSORS.c.tenant == ctx.tenant,
            CURSORS.c.mailbox == ctx.mailbox,
            CURSORS.c.folder == ctx.folder,
            CURSORS.c.last_uid < uid,
        )
        .values(last_uid=uid, updated_at=ctx.now)
    )


def _process(ctx: Context, uid: int, raw: bytes) -> str:
    msg = email.message_from_bytes(raw, policy=policy.compat32)
    with ctx.engine.begin() as conn:
        if _seen(conn, ctx, uid) is not None:
            return "seen"
        events = _classify(conn, ctx, msg)
        # one row per message (the first recipient of a multi-recipient DSN)
        event = events[0] if events else {"kind": "unmatched"}
        _record(conn, ctx, uid, dict(event))
        return str(event["kind"])


def _quarantine(ctx: Context, uid: int, why: str) -> str:
    """Record the message as quarantined with ``why`` (its own effects were rolled back),
    audited, and move the cursor past it."""
    from sqlmodel import Session

    from penguinctl.state.audit import record

    with ctx.engine.begin() as conn:
        if _seen(conn, ctx, uid) is not None:
            return "seen"
        _record(conn, ctx, uid, {"kind": "quarantined", "detail": why})
        with Session(bind=conn) as session:
            record(
                session,
                actor=ctx.actor,
                tenant=ctx.tenant,
                action="campaign.inbound.quarantined",
                resource=f"mailbox/{ctx.mailbox}",
                result="quarantined",
                details={
                    "folder": ctx.folder,
                    "uidvalidity": ctx.uidvalidity,
                    "uid": uid,
                    "why": why,
                },
            )
            session.flush()
    return "quarantined"


def _why(ctx: Context, uid: int) -> str:
    with ctx.engine.connect() as conn:
        row = _seen(conn, ctx, uid)
    return str(row.detail) if row is not None else "unknown"


def _send_by_ids(conn: Connection, ids: list[str]) -> Any:
    if not ids:
        return None
    return conn.execute(
        sa.select(SENDS)
        .where(SENDS.c.message_id.in_(ids), SENDS.c.lead_id.is_not(None))
        .order_by(SENDS.c.step.desc())
        .limit(1)
    ).first()


def _send_by_recipient(conn: Connection, ctx: Context, address: str | None) -> Any:
    if not address:
        return None
    return conn.execute(
        sa.select(SENDS)
        .where(
            SENDS.c.tenant == ctx.tenant,
            SENDS.c.mailbox == ctx.mailbox,
            sa.func.lower(SENDS.c.recipient) == address.lower(),
            SENDS.c.lead_id.is_not(None),
        )
        .order_by(SENDS.c.id.desc())
        .limit(1)
    ).first()


def _stop_lead(conn: Connection, lead_id: int, status: str, now: datetime) -> None:
    conn.execute(
        sa.update(LEADS)
        .where(LEADS.c.id == lead_id, LEADS.c.status.in_(("active", "completed")))
        .values(status=status, updated_at=now)
    )


def _lead_email(conn: Connection, lead_id: int) -> str | None:
    return conn.execute(sa.select(LEADS.c.email).where(LEADS.c.id == lead_id)).scalar()


def _campaign_key(conn: Connection, campaign_id: int) -> str:
    from penguinctl.campaigns.plans import CAMPAIGNS

    row = conn.execute(
        sa.select(CAMPAIGNS.c.tenant, CAMPAIGNS.c.name).where(CAMPAIGNS.c.id == campaign_id)
    ).first()
    return f"{row.tenant}/{row.name}" if row else ""


def _classify(conn: Connection, ctx: Context, msg: Message) -> list[dict[str, Any]]:
    bounces = parse_dsn(msg)
    if bounces is not None:
        return [_bounce(conn, ctx, b) for b in bounces] or [
            {"kind": "unmatched", "detail": "bounce without recipients"}
        ]
    refs = _MSGID.findall(f"{header(msg, 'In-Reply-To')} {header(msg, 'References', 100_000)}")
    send = _send_by_ids(conn, list(dict.fromkeys(refs[-MAX_REFERENCES:])))
    if send is None:
        sender = email.utils.parseaddr(header(msg, "From"))[1]
        send = _send_by_recipient(conn, ctx, sender[:320])
    if send is None:
        return [{"kind": "unmatched", "detail": header(msg, "Subject", 120)}]
    base = {"campaign_id": send.campaign_id, "lead_id": send.lead_id, "send_id": send.id}
    stop_on = ctx.stop_on.get(send.campaign_id, DEFAULT_STOP)
    if is_unsubscribe_request(msg):
        _stop_lead(conn, send.lead_id, "unsubscribed", ctx.now)
        address = _lead_email(conn, send.lead_id)
        if address:
            from sqlmodel import Session

            from penguinctl.campaigns.suppression import add

            with Session(bind=conn) as session:
                add(session, address, "tenant", ctx.tenant, "unsubscribe request by reply")
                session.flush()
        return [{**base, "kind": "unsubscribe"}]
    reason = auto_reply_reason(msg)
    if reason is not None:
        if "auto_reply" in stop_on:
            _stop_lead(conn, send.lead_id, "replied", ctx.now)
        return [{**base, "kind": "autoreply", "detail": reason[:120]}]
    if "reply" in stop_on:
        _stop_lead(conn, send.lead_id, "replied", ctx.now)
    return [{**base, "kind": "reply"}]


def _bounce(conn: Connection, ctx: Context, bounce: Any) -> dict[str, Any]:
    send = _send_by_ids(conn, [bounce.original_message_id] if bounce.original_message_id else [])
    if send is None:
        send = _send_by_recipient(conn, ctx, bounce.recipient)
    detail = (bounce.diagnostic or "")[:200] or None
    if send is None:
        return {"kind": "unmatched", "status_code": bounce.status, "detail": detail}
    base = {
        "campaign_id": send.campaign_id,
        "lead_id": send.lead_id,
        "send_id": send.id,
        "status_code": bounce.status,
        "detail": detail,
    }
    if bounce.kind == "delayed":
        return {**base, "kind": "delayed"}
    kind = bounce.event_kind
    stop = bounce.kind == "hard"
    if bounce.kind == "soft":
        earlier = conn.execute(
            sa.select(sa.func.count())
            .select_from(EVENTS)
            .where(EVENTS.c.lead_id == send.lead_id, EVENTS.c.kind == "soft_bounce")
        ).scalar_one()
        stop = earlier + 1 >= SOFT_LIMIT
    if stop:
        _stop_lead(conn, send.lead_id, "bounced", ctx.now)
        address = _lead_email(conn, send.lead_id) or bounce.recipient
        if address:
            suppress_hard(
                conn,
                ctx.tenant,
                _campaign_key(conn, send.campaign_id),
                address,
                f"{bounce.status or kind} {detail or ''}".strip(),
            )
    return {**base, "kind": kind}


# -- the worker's entry point -------------------------------------------------------------------
def poll_plans(
    engine: Engine,
    plans: list[CampaignPlan],
    *,
    secrets: Any,
    env: Any,
    context: ssl.SSLContext | None,
    timeout: float,
    now: datetime,
    actor: str,
    note: Callable[[str], None],
) -> Counter[str]:
    """Poll the inbox of every sender of ``plans`` once; what was found, counted by kind. A
    mailbox that cannot be reached is a ``note``, not a failure."""
    senders: dict[tuple[str, str], Sender] = {}
    stop_on: dict[int, frozenset[str]] = {}
    for plan in plans:
        stop_on[plan.id] = plan.stop_on
        for s in plan.senders:
            senders.setdefault((s.tenant, s.address), s)
    total: Counter[str] = Counter()
    for sender in senders.values():
        try:
            password = password_for(sender, secrets, env)
            conn = connect(sender, password, context=context, timeout=timeout)
            try:
                counts = poll_mailbox(
                    engine, sender, conn, now=now, stop_on=stop_on, actor=actor, note=note
                )
            finally:
                with contextlib.suppress(imaplib.IMAP4.error, OSError):
                    conn.logout()
        except (imaplib.IMAP4.error, OSError, ssl.SSLError) as exc:
            note(f"imap {sender.address} ({sender.imap}): {type(exc).__name__}: {exc}")
            continue
        total.update(counts)
    return total
