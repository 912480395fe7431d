"""Recognising automatic replies (out of office, vacation, autoresponders) and unsubscribe
requests among the messages that reply to a campaign.

Automatic, by header (RFC 3834 and common practice): ``Auto-Submitted`` other than ``no``;
``X-Autoreply`` / ``X-Autorespond`` / ``X-Autoresponse``; ``Precedence: auto_reply | bulk |
junk | list``; Microsoft's ``X-Auto-Response-Suppress`` (set on auto-generated mail);
``X-Failed-Recipients`` (a bounce that is not a DSN); then by subject (``Out of office``,
``Automatic reply``, ``Auto:``, ``Autoreply``, ``Abwesenheitsnotiz``, ``Réponse automatique``,
...). An automatic reply is not a reply: it stops the lead only when the campaign lists
``auto_reply`` in ``stop_on``.

Unsubscribe requests: a reply whose subject, or whose own first lines (quoted text removed),
say "unsubscribe", "remove me", "stop emailing", "opt out", ...
"""

from __future__ import annotations

import re
from email.message import Message

from penguinctl.campaigns.mailtext import header, part_text

_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic|matische)?[ -]?(reply|response|antwort|answer)|auto:|"
    r"out of (the )?office|ooo\b|on vacation|vacation (reply|notice)|away from (the )?office|"
    r"abwesenheit|abwesenheitsnotiz|r[ée]ponse automatique|absence|"
    r"respuesta autom[áa]tica|fuera de la oficina|risposta automatica|"
    r"automatisch antwoord|i am (currently )?out)",
    re.I,
)
_UNSUB = re.compile(
    r"\b(unsubscribe|remove me|take me off|stop (emailing|e-mailing|sending|contacting)|"
    r"opt[ -]?out|do not (email|contact)|don'?t (email|contact))\b",
    re.I,
)
_WROTE = re.compile(r"^(on .+ wrote:|-{2,} ?original message|from: )", re.I)


def auto_reply_reason(msg: Message) -> str | None:
    """Why ``msg`` looks automatic (a short reason), or None for a human reply."""
    auto = header(msg, "Auto-Submitted").lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponse", "X-Autoresponder"):
        if msg.get(name) is not None:
            return name
    precedence = header(msg, "Precedence").lower()
    if precedence in ("auto_reply", "bulk", "junk", "list"):
        return f"Precedence: {precedence}"
    if msg.get("X-Auto-Response-Suppress") is not None:
        return "X-Auto-Response-Suppress"
    if msg.get("X-Failed-Recipients") is not None:
        return "X-Failed-Recipients"
    subject = header(msg, "Subject")
    if _AUTO_SUBJECT.search(subject):
        return f"subject: {subject[:60]}"
    return None


def own_text(msg: Message, limit: int = 2000) -> str:
    """The reply's own text: the first text/plain part without the quoted original."""
    part = None
    for p in msg.walk():
        if p.get_content_type() == "text/plain":
            part = p
            break
    if part is None:
        return ""
    text = part_text(part, limit * 10)
    lines: list[str] = []
    for line in text.splitlines():
        if line.lstrip().startswith(">") or _WROTE.match(line.strip()):
            break
        lines.append(line)
    return "\n".join(lines)[:limit]


def is_unsubscribe_request(msg: Message) -> bool:
    subject = header(msg, "Subject")
    if _UNSUB.search(subject.replace("Re:", "").replace("RE:", "")):
        return True
    head = own_text(msg, 400)
    return bool(_UNSUB.search(head))
