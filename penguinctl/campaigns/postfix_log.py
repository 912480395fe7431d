"""Reading a Postfix log for the Message-IDs it accepted (ambiguous sends, settle.py).

Postfix logs a submitted message as it goes (one queue id per message)::

    ... postfix/smtpd[11]: 9138E21E186: client=localhost[127.0.0.1]
    ... postfix/cleanup[13]: 9138E21E186: message-id=<pc.1f...@acme-mail.example>
    ... postfix/qmgr[9]: 9138E21E186: from=<john@acme-mail.example>, size=282, nrcpt=1
        (queue active)

``cleanup`` logs the Message-ID while the message is still being received: a client killed
mid-DATA leaves that line and nothing more (the message is thrown away). A message is
**accepted** only once ``qmgr`` picked it up (``from=<...>``, ``(queue active)``) or a
delivery line names its queue id: the message was committed to the queue, the point where
smtpd answers 250.

Timestamps: a leading RFC 3339 one (``docker logs --timestamps``, rsyslog's high-precision
format), else the classic ``Mmm dd hh:mm:ss`` (``maillog_file``, syslog), read in the log's time
zone (UTC unless told) in the year that puts it at most a day after the time of reading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

MAX_LOG_BYTES = 512 * 1024 * 1024  # a log bigger than this is refused (hostile or misrouted)

_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?\s+")
_BSD = re.compile(r"([A-Z][a-z]{2}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2})\s+")
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, 1)}
# "<host> postfix[/sub...]/<program>[pid]: <QUEUEID>: <text>"
_ENTRY = re.compile(r"\S*\s*postfix[\w./-]*?/([\w-]+)\[\d+\]: ([0-9A-Za-z]{6,}): (.*)\Z")
_MESSAGE_ID = re.compile(r"message-id=(<[^>\s]{1,500}>|\S{1,500})")
_QUEUED = re.compile(r"from=<[^>]*>, size=\d+, nrcpt=\d+ \(queue active\)")
_DELIVERY = re.compile(r"(to=<[^>]*>,.*status=\w+)|^removed\Z")


@dataclass
class PostfixLog:
    """What a log says: for each Message-ID, its queue ids and when; the queue ids that were
    committed to the queue; and the time span the log covers."""

    first: datetime | None = None
    last: datetime | None = None
    seen: dict[str, list[tuple[str, datetime]]] = field(default_factory=dict)
    queued: set[str] = field(default_factory=set)
    lines: int = 0

    def accepted(self, message_id: str) -> tuple[str, datetime] | None:
        """(queue id, when) of the message's accepted copy, or None."""
        for queue_id, when in self.seen.get(message_id, []):
            if queue_id in self.queued:
                return queue_id, when
        return None

    def received_only(self, message_id: str) -> bool:
        """The message was being received (cleanup saw it) but never queued."""
        return bool(self.seen.get(message_id)) and self.accepted(message_id) is None


def _stamp(line: str, read_at: datetime, zone: tzinfo) -> tuple[datetime | None, str]:
    m = _RFC3339.match(line)
    if m:
        day, clock_time, frac, offset = m.groups()
        text = f"{day}T{clock_time}{(frac or '')[:7]}"
        if offset and offset != "Z":
            text += offset if ":" in offset else f"{offset[:3]}:{offset[3:]}"
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            return None, line
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC if offset == "Z" else zone)
        rest = line[m.end() :]
        inner = _BSD.match(rest)  # docker's prefix before Postfix's own stamp
        return when.astimezone(UTC), rest[inner.end() :] if inner else rest
    m = _BSD.match(line)
    if not m or m.group(1) not in _MONTHS:
        return None, line
    mon, day, hh, mm, ss = m.groups()
    local_read = read_at.astimezone(zone)
    try:
        when = datetime(local_read.year, _MONTHS[mon], int(day), int(hh), int(mm), int(ss),
                        tzinfo=zone)  # fmt: skip
        if when - local_read > timedelta(days=1):
            when = when.replace(year=local_read.year - 1)
    except ValueError:  # Feb 29 in a year without one
        return None, line[m.end() :]
    return when.astimezone(UTC), line[m.end() :]


def parse(text: str, read_at: datetime, zone: tzinfo = UTC) -> PostfixLog:
    """The Postfix entries of ``text`` (other lines only count for the time span)."""
    log = PostfixLog()
    for line in text.splitlines():
        when, rest = _stamp(line, read_at, zone)
        if when is None:
            continue
        log.lines += 1
        if log.first is None or when < log.first:
            log.first = when
        if log.last is None or when > log.last:
            log.last = when
        entry = _ENTRY.search(rest)
        if entry is None:
            continue
        program, queue_id, message = entry.groups()
        if program == "cleanup":
            found = _MESSAGE_ID.match(message)
            if found:
                log.seen.setdefault(found.group(1), []).append((queue_id, when))
        elif (program == "qmgr" and _QUEUED.match(message)) or _DELIVERY.search(message):
            log.queued.add(queue_id)
    return log


@dataclass(frozen=True)
class Judgement:
    verdict: str | None  # sent | unsent | None (still ambiguous)
    reason: str


def judge(
    log: PostfixLog, message_id: str, claimed_at: datetime, read_at: datetime, grace: timedelta
) -> Judgement:
    """Sent when the log shows the message accepted; unsent when the log covers the claim
    (an entry at least a second before it, and one at least ``grace`` after it: Postfix had
    time to log the message) and shows no accepted copy; else still ambiguous, with why."""
    found = log.accepted(message_id)
    if found:
        queue_id, when = found
        return Judgement("sent", f"accepted by the MTA as queue id {queue_id} at {when:%F %T}Z")
    if log.first is None or log.last is None:
        return Judgement(None, "the MTA log is empty")
    if log.first > claimed_at - timedelta(seconds=1):
        return Judgement(
            None,
            f"the MTA log starts at {log.first:%F %T}Z, after the claim at {claimed_at:%F %T}Z "
            "(rotated?); settle it by hand",
        )
    if log.last < claimed_at + grace or read_at < claimed_at + grace:
        return Judgement(
            None,
            f"the MTA log has no entry {int(grace.total_seconds())} s after the claim yet; "
            "a later run decides",
        )
    if log.received_only(message_id):
        why = "the MTA received part of it and dropped it (never queued)"
    else:
        why = "the MTA never received it"
    return Judgement("unsent", f"{why}: its log covers {log.first:%F %T}Z to {log.last:%F %T}Z")
