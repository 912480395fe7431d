"""RFC 3464 DSN parsing, auto-reply and unsubscribe recognition (pure parsing, no servers)."""

from __future__ import annotations

import email

from penguinctl.campaigns.autoreply import auto_reply_reason, is_unsubscribe_request, own_text
from penguinctl.campaigns.dsn import parse_dsn


def dsn(
    recipient: str,
    status: str,
    action: str = "failed",
    *,
    orig_id: str = "<m1@s.example>",
    headers_only: bool = False,
) -> bytes:
    original = (
        f"Message-ID: {orig_id}\r\nFrom: s@s.example\r\nTo: {recipient}\r\nSubject: Hi\r\n\r\n"
    )
    orig_part = (
        "Content-Type: text/rfc822-headers\r\n\r\n" + original.split("\r\n\r\n")[0] + "\r\n"
        if headers_only
        else "Content-Type: message/rfc822\r\n\r\n" + original + "body\r\n"
    )
    return (
        "From: MAILER-DAEMON@mx.dest.example\r\nTo: s@s.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nAuto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you...\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.dest.example\r\nArrival-Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
        f"\r\nFinal-Recipient: rfc822; {recipient}\r\nOriginal-Recipient: rfc822;{recipient}\r\n"
        f"Action: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; 550 {status} mailbox unavailable\r\n\r\n"
        f"--B\r\n{orig_part}--B--\r\n"
    ).encode()


def test_hard_soft_delayed() -> None:
    hard = parse_dsn(email.message_from_bytes(dsn("Gone@Dest.example", "5.1.1")))
    assert hard is not None and len(hard) == 1
    b = hard[0]
    assert (b.kind, b.recipient, b.status, b.original_message_id) == (
        "hard",
        "gone@dest.example",
        "5.1.1",
        "<m1@s.example>",
    )
    assert "mailbox unavailable" in b.diagnostic
    soft = parse_dsn(email.message_from_bytes(dsn("full@dest.example", "4.2.2", headers_only=True)))
    assert soft[0].kind == "soft" and soft[0].original_message_id == "<m1@s.example>"
    delayed = parse_dsn(email.message_from_bytes(dsn("slow@dest.example", "4.4.1", "delayed")))
    assert delayed[0].kind == "delayed" and delayed[0].event_kind == "delayed"
    delivered = parse_dsn(email.message_from_bytes(dsn("ok@dest.example", "2.0.0", "delivered")))
    assert delivered == []


def test_not_a_bounce_and_heuristic_bounce() -> None:
    reply = email.message_from_bytes(b"From: lead@dest.example\r\nSubject: Re: Hi\r\n\r\nSure!\r\n")
    assert parse_dsn(reply) is None
    plain = email.message_from_bytes(
        b"From: Mail Delivery System <MAILER-DAEMON@mx.example>\r\n"
        b"Subject: Mail delivery failed: returning message to sender\r\n\r\n"
        b"This message was created automatically by mail delivery software.\r\n\r\n"
        b"  nobody@dest.example\r\n    host mx.dest.example: 550 5.1.1 User unknown\r\n\r\n"
        b"------ This is a copy of the message, including all the headers. ------\r\n"
        b"Message-ID: <m9@s.example>\r\n"
    )
    [b] = parse_dsn(plain)
    assert (b.kind, b.recipient, b.status, b.original_message_id) == (
        "hard",
        "nobody@dest.example",
        "5.1.1",
        "<m9@s.example>",
    )


def test_auto_replies() -> None:
    def msg(headers: str, body: str = "text") -> email.message.Message:
        return email.message_from_string(f"From: a@b.example\n{headers}\n\n{body}\n")

    assert auto_reply_reason(msg("Subject: Re: Hi\nAuto-Submitted: auto-replied")) is not None
    assert auto_reply_reason(msg("Subject: Re: Hi\nAuto-Submitted: no")) is None
    assert auto_reply_reason(msg("Subject: Re: Hi\nX-Autoreply: yes")) == "X-Autoreply"
    assert auto_reply_reason(msg("Subject: Re: Hi\nPrecedence: bulk")) == "Precedence: bulk"
    assert auto_reply_reason(msg("Subject: Automatic reply: Hi")) is not None
    assert auto_reply_reason(msg("Subject: Out of Office: back Monday")) is not None
    assert auto_reply_reason(msg("Subject: Abwesenheitsnotiz: Hi")) is not None
    assert auto_reply_reason(msg("Subject: Re: Hi\nX-Auto-Response-Suppress: All")) is not None
    assert auto_reply_reason(msg("Subject: Re: Quick question")) is None


def test_unsubscribe_requests() -> None:
    quoted = "Thanks, sounds good.\n\nOn Mon, Nov 23 John wrote:\n> reply to unsubscribe\n"
    m = email.message_from_string(f"Subject: Re: Hi\n\n{quoted}")
    assert own_text(m) == "Thanks, sounds good.\n"
    assert not is_unsubscribe_request(m)
    assert is_unsubscribe_request(email.message_from_string("Subject: unsubscribe\n\n"))
    assert is_unsubscribe_request(
        email.message_from_string("Subject: Re: Hi\n\nPlease remove me from your list.\n")
    )
    assert is_unsubscribe_request(
        email.message_from_string("Subject: Re: Hi\n\nStop emailing me\n> quoted\n")
    )
