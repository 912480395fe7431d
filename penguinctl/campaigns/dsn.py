"""Delivery status notifications (RFC 3464) -> hard / soft bounces.

A DSN is ``multipart/report; report-type=delivery-status``: a human-readable part, a
``message/delivery-status`` part (per-message fields, then one block per recipient with
``Final-Recipient``, ``Action`` and ``Status``) and the original message or its headers
(``message/rfc822`` / ``text/rfc822-headers``), whose ``Message-ID`` ties the bounce to the
ledger. Classification by the status class (RFC 3463): ``5.x.x`` with ``Action: failed`` is
hard (suppress at once), ``4.x.x`` with ``Action: failed`` is soft (three of them stop the
lead), ``Action: delayed`` is only a warning. Non-standard bounces from a mailer daemon are
recognised by their sender and an enhanced status code in the text, best effort.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from typing import Any

from penguinctl.campaigns.mailtext import header, param, part_text

SOFT_LIMIT = 3
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_ADDR = re.compile(r"[\w.+'-]+@[\w.-]+\.[A-Za-z]{2,}")
_DAEMON = re.compile(r"mailer-daemon|postmaster|mail delivery (sub)?system", re.I)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (status notification|failure|has failed)|returned mail|"
    r"failure notice|mail delivery failed|non[- ]?delivery",
    re.I,
)


@dataclass(frozen=True)
class Bounce:
    kind: str  # hard | soft | delayed
    recipient: str | None
    status: str | None
    diagnostic: str | None
    original_message_id: str | None

    @property
    def event_kind(self) -> str:
        return {"hard": "hard_bounce", "soft": "soft_bounce"}.get(self.kind, "delayed")


def _addr(value: str | None) -> str | None:
    if not value:
        return None
    value = value.split(";", 1)[-1].strip().strip("<>").strip()
    return value.lower() or None


def _original_id(msg: Message) -> str | None:
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) and inner else inner
            if isinstance(inner, Message) and header(inner, "Message-ID"):
                return header(inner, "Message-ID")
        if ctype == "text/rfc822-headers":
            import email

            text = part.get_payload(decode=True)
            if not isinstance(text, bytes):
                continue
            headers = email.message_from_bytes(text.strip() + b"\r\n\r\n")
            if header(headers, "Message-ID"):
                return header(headers, "Message-ID")
    return None


def _classify(action: str, status: str | None) -> str:
    action = action.lower()
    if action == "delayed":
        return "delayed"
    if status and status.startswith("5"):
        return "hard"
    if status and status.startswith("4"):
        return "soft"
    return "hard" if action == "failed" else "delayed"


def parse_dsn(msg: Message) -> list[Bounce] | None:
    """The bounces a message reports, or None when it is not a bounce at all."""
    if (
        msg.get_content_type() == "multipart/report"
        and param(msg, "report-type") == "delivery-status"
    ):
        return _parse_rfc3464(msg)
    return _parse_heuristic(msg)


def _parse_rfc3464(msg: Message) -> list[Bounce]:
    original = _original_id(msg)
    bounces: list[Bounce] = []
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        if not isinstance(blocks, list):
            continue
        for block in blocks[1:]:  # the first block holds the per-message fields
            if not isinstance(block, Message):
                continue
            action = header(block, "Action")
            if not action or action.lower() in ("delivered", "relayed", "expanded"):
                continue
            match = _STATUS.search(header(block, "Status"))
            status = match.group(0) if match else None
            bounces.append(
                Bounce(
                    kind=_classify(action, status),
                    recipient=_addr(header(block, "Final-Recipient"))
                    or _addr(header(block, "Original-Recipient")),
                    status=status,
                    diagnostic=header(block, "Diagnostic-Code") or None,
                    original_message_id=original,
                )
            )
    return bounces


def _text_of(msg: Message, limit: int = 20000) -> str:
    out: list[str] = []
    size = 0
    for part in msg.walk():
        if size >= limit:
            break
        if part.get_content_maintype() == "text":
            out.append(part_text(part, limit - size))
            size += len(out[-1]) + 1
    return "\n".join(out)[:limit]


def _parse_heuristic(msg: Message) -> list[Bounce] | None:
    sender = header(msg, "From")
    subject = header(msg, "Subject")
    if not (_DAEMON.search(sender) and _BOUNCE_SUBJECT.search(subject)):
        return None
    text = _text_of(msg)
    status = None
    for match in _STATUS.finditer(text):
        if match.group(1) in "45":
            status = match.group(0)
            break
    mid = re.search(r"^Message-ID:\s*(<[^>]+>)", text, re.M | re.I)
    recipients = [
        a.lower()
        for a in _ADDR.findall(text)
        if not _DAEMON.search(a) and a.lower() not in sender.lower()
    ]
    kind = "soft" if status and status.startswith("4") else "hard"
    return [
        Bounce(
            kind,
            recipients[0] if recipients else None,
            status,
            None,
            mid.group(1) if mid else _original_id(msg),
        )
    ]


# -- suppression (C1's API) -----------------------------------------------------------------
def suppress_hard(conn: Any, tenant: str, campaign_key: str, email: str, reason: str) -> bool:
    """Suppress ``email`` for the whole tenant (a hard bounce: the address does not exist).
    Runs in the caller's transaction (``conn``). True when the entry is new."""
    from sqlmodel import Session

    from penguinctl.campaigns.suppression import add

    with Session(bind=conn) as session:
        new = add(session, email, "tenant", tenant, f"hard bounce: {reason}")
        session.flush()
    return bool(new)
