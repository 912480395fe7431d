"""The SMTP side of a send loop: composes each committed claim's message and transmits it,
interleaved with the loop's own work in the loop's thread, with up to ``in_flight``
transactions in progress at once.

Why interleaved and not a thread: an SMTP transaction is four round trips (MAIL, RCPT, DATA,
the message) spent waiting on the server, while claiming and composing are work for the CPU.
Overlapped, a message costs the larger of the two instead of their sum. A second thread would
overlap them too, but every reply would then have to win the interpreter lock (and a CPU) back
from the thread that is claiming: measured, that handover alone halves a bare smtplib loop's
rate on two cores. So the loop calls ``pump()`` between units of its work (and the claim
transaction between its statements); ``pump`` reads the replies that have arrived (one
``select`` over the connections waiting), writes the next commands, starts the next
transactions, and composes the next message while the servers are still answering.

Connections are kept open for the whole cycle, at most ``per_server`` (default 10) to one
submission server, whichever mailboxes they belong to: a tenant's mailboxes usually share one
MailU server, whose Postfix turns away more than 50 connections from one client by default.
Past the limit the connection idle the longest is closed (QUIT) before another is opened.

Why several transactions in flight: one transaction leaves the server idle while the client
reads its reply and writes the next command, and the client idle while the server works; with
two, each side works while the other does. Against a remote server the round trips dominate
(four per message), and transactions to different mailboxes, or over a second connection of one
mailbox, overlap them. Each transaction has its own connection: a mailbox opens another only
while all of its connections are busy, so a mailbox that sends with a gap between messages
keeps one.

Contract (all calls from the loop's thread; the transmitter never touches the database):
- ``submit(claimed)``: a committed claim. Its message is rendered here (``render``) and sent
  over a connection of its mailbox, opened on first use and reused. The claims of one mailbox
  start in the order submitted (with ``in_flight`` > 1 they may finish in another order). A
  message that cannot be rendered (any exception: a template error, a header the email
  package refuses) is not sent: its result carries ``compose_error`` and the loop records that
  send alone as ``unsent``; after :data:`COMPOSE_PAUSE` such failures in a row in one campaign
  (its template is broken for everyone, not one lead's data) the campaign is paused and its
  later claims are reported unsent.
- ``pump(wait=0)``: progress without blocking (``wait``: block up to that many seconds for a
  reply when there is nothing else to do).
- ``results()``: the results ready so far, each exactly once (``uncollected``: how many). A
  result whose ``outcome`` is None was never handed to the server (``reason`` says why: the
  worker is stopping, the campaign was paused, the mailbox failed earlier): the loop releases
  it.
- ``wait_until(n)``: pumps until at most ``n`` claims are queued or in transmission.
- ``close()``: finishes the transactions in progress and what is queued (or reports what is
  queued unsent when stopping) and closes the connections; the results stay readable.

A transaction that raises before any byte of its message was written (a local error, never
the server's answer) ends as an ``error`` outcome (the send is ``unsent``, never
``ambiguous``); its connection is dropped and the loop goes on. One that raises later is a bug
whose message may be out: ``ambiguous``, and the exception stops the loop.

A mailbox whose server is unreachable or turns it away (``Outcome.mailbox_deferred``), or that
refuses the mailbox itself, is unusable from
that moment for the claims made before it (``claimed_at`` up to then): they are reported unsent
rather than tried once each; claims made later (after the worker's backoff, or once the mailbox
is resumed) are tried again. A transaction already in progress on another of its connections
finishes with its own outcome.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from penguinctl.campaigns.smtp import Outcome, SmtpConnection, ready
from penguinctl.errors import PenguinError

if TYPE_CHECKING:
    from penguinctl.campaigns.claims import Claimed
    from penguinctl.campaigns.senders import Sender
    from penguinctl.campaigns.window import Clock

_BLOCK = 0.5  # seconds per blocking wait in wait_until (the socket timeout bounds the whole)
COMPOSE_PAUSE = 5  # messages of one campaign in a row that cannot be composed: pause it
DEFAULT_PER_SERVER = 10  # connections kept open to one submission server (see the module doc)


@dataclass(frozen=True)
class Result:
    claimed: Claimed
    outcome: Outcome | None  # None: never handed to the server
    reason: str = ""  # why it was not sent (outcome None)
    compose_error: str = ""  # the message could not be rendered (outcome None)


@dataclass
class _Active:
    claimed: Claimed
    conn: SmtpConnection
    steps: Generator[None, None, Outcome]
    since: float = 0.0  # when the transaction last wrote to the server (monotonic)


class Transmitter:
    def __init__(
        self,
        connect: Callable[[Sender], SmtpConnection],
        render: Callable[[Claimed], bytes],
        *,
        stopping: Callable[[], bool],
        clock: Clock,
        in_flight: int = 1,
        per_server: int = DEFAULT_PER_SERVER,
    ) -> None:
        self._connect = connect
        self._render = render
        self._stopping = stopping
        self._clock = clock
        self._in_flight = max(1, in_flight)
        self._per_server = max(1, per_server)
        self._queue: deque[Claimed] = deque()
        self._active: list[_Active] = []
        self._results: list[Result] = []
        self._pool: dict[str, list[SmtpConnection]] = {}  # mailbox -> its connections
        self._unusable: dict[str, datetime] = {}  # mailbox -> when it failed
        self._failed = False  # an unexpected error: nothing more is sent
        self._compose_errors: dict[int, str] = {}  # send id -> why its message failed

    # -- the loop's side ----------------------------------------------------------------------
    @property
    def pending(self) -> int:
        return len(self._queue) + len(self._active)

    @property
    def uncollected(self) -> int:
        """Results ready and not yet taken with ``results()``."""
        return len(self._results)

    def submit(self, claimed: Claimed) -> None:
        self._queue.append(claimed)

    def results(self) -> list[Result]:
        out, self._results = self._results, []
        return out

    def pump(self, wait: float = 0.0) -> None:
        """Progress as far as possible without waiting on a server; with ``wait``, block up to
        that long for a reply when nothing else can be done."""
        while True:
            active = self._active
            if active:
                answered = ready([a.conn for a in active])
                overdue = [a for a in active if a.conn not in answered and self._overdue(a)]
                if answered or overdue:
                    for a in [a for a in active if a.conn in answered] + overdue:
                        self._step(a)  # overdue: the blocking read times out into an outcome
                    continue
            if self._queue and len(active) < self._in_flight and self._start_next():
                continue
            if not active:
                return
            if self._compose_ahead():
                continue  # useful work while the servers answer; then look again
            if wait <= 0 or not ready([a.conn for a in active], wait):
                return
            wait = 0.0  # one blocking wait per call

    def wait_until(self, most: int) -> None:
        while self.pending > most:
            self.pump(wait=_BLOCK)

    def close(self) -> None:
        self.wait_until(0)
        for conns in self._pool.values():
            for conn in conns:
                conn.close()
        self._pool.clear()

    # -- one claim ----------------------------------------------------------------------------
    def _compose_ahead(self) -> bool:
        """Render the first queued message not rendered yet: whether there was one."""
        for claimed in self._queue:
            if claimed.plan.problems.get("compose"):
                continue
            if not claimed.payload:
                self._prepare(claimed)
                return True
        return False

    def _prepare(self, claimed: Claimed) -> str:
        """Render the message; the compose error ('' when it rendered). Any exception is this
        message's failure, never the loop's."""
        plan = claimed.plan
        try:
            self._render(claimed)
        except Exception as exc:  # a template error, a header the email package refuses...
            why = str(exc) if isinstance(exc, PenguinError) else f"{type(exc).__name__}: {exc}"
            why = f"cannot compose the message: {why}"
            plan.compose_failures += 1
            if plan.compose_failures >= COMPOSE_PAUSE and not plan.problems.get("compose"):
                # the loop stops handing its claims over and pauses the campaign
                plan.problems["compose"] = (
                    f"{plan.compose_failures} messages in a row could not be composed; {why}"
                )
            self._compose_errors[claimed.send_id] = why
            return why
        plan.compose_failures = 0
        return ""

    def _start_next(self) -> bool:
        """Start the first queued claim whose mailbox has a connection to spare (an idle one,
        or room for one more while transactions are in flight on the others); whether one was
        started. Claims of one mailbox start in the order they were submitted."""
        busy = {id(a.conn) for a in self._active}
        for i, claimed in enumerate(self._queue):
            conns = self._pool.setdefault(claimed.sender.address, [])
            conn = next((c for c in conns if id(c) not in busy), None)
            if conn is None and len(conns) < self._in_flight and self._room(claimed, busy):
                conn = self._connect(claimed.sender)
                conns.append(conn)
            if conn is not None:
                del self._queue[i]
                self._start(claimed, conn)
                return True
        return False

    def _room(self, claimed: Claimed, busy: set[int]) -> bool:
        """Whether another connection to the claim's server may be opened: under
        ``per_server`` open ones, or after closing (QUIT) the one idle the longest."""
        endpoint = claimed.sender.submission
        open_ = [
            (conn, conns)
            for conns in self._pool.values()
            for conn in conns
            if conn.endpoint == endpoint
        ]
        if len(open_) < self._per_server:
            return True
        idle = [(conn, conns) for conn, conns in open_ if id(conn) not in busy]
        if not idle:
            return False  # every connection to that server is busy: the claim waits
        conn, conns = min(idle, key=lambda item: item[0].last_used)
        conn.close()
        conns.remove(conn)
        return True

    def _start(self, claimed: Claimed, conn: SmtpConnection) -> None:
        address = claimed.sender.address
        error = self._compose_errors.pop(claimed.send_id, "")
        if error:
            return self._done(claimed, None, "not sent", error)
        if self._failed:
            return self._done(claimed, None, "not sent: an internal error stopped sending")
        if self._stopping():
            return self._done(claimed, None, "not sent: the worker stopped")
        if claimed.plan.problems.get("compose"):
            return self._done(claimed, None, "not sent: the campaign was paused")
        failed_at = self._unusable.get(address)
        if failed_at is not None and claimed.claimed_at <= failed_at:
            return self._done(claimed, None, "not sent: the mailbox is unusable")
        if not claimed.payload:
            error = self._prepare(claimed)
            if error:
                self._compose_errors.pop(claimed.send_id, None)
                return self._done(claimed, None, "not sent", error)
        steps = conn.transaction(address, claimed.recipient, claimed.payload)
        active = _Active(claimed, conn, steps)
        self._active.append(active)
        self._step(active)  # writes MAIL FROM (opening the connection first if needed)

    @staticmethod
    def _overdue(active: _Active) -> bool:
        return time.monotonic() - active.since > active.conn.timeout

    def _step(self, active: _Active) -> None:
        try:
            next(active.steps)
            active.since = time.monotonic()
            return  # waiting for the next reply
        except StopIteration as done:
            outcome: Outcome = done.value
        except Exception as exc:  # a bug, not an SMTP failure
            self._active.remove(active)
            why = f"internal error: {type(exc).__name__}: {exc}"
            if not active.conn.payload_started:  # nothing of the message was written
                active.conn.close()
                self._results.append(Result(active.claimed, Outcome("error", None, why, "local")))
                return
            self._failed = True  # the message may be out
            self._results.append(Result(active.claimed, Outcome("unknown", None, why, "payload")))
            raise
        self._active.remove(active)
        if outcome.mailbox_deferred or outcome.kind == "sender_error":
            self._unusable[active.claimed.sender.address] = self._clock.now()
        self._results.append(Result(active.claimed, outcome))

    def _done(
        self, claimed: Claimed, outcome: Outcome | None, reason: str = "", error: str = ""
    ) -> None:
        self._results.append(Result(claimed, outcome, reason, error))
