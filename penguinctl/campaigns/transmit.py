"""The SMTP side of a send loop: composes each committed claim's message and transmits it, in
order, interleaved with the loop's own work in the loop's thread.

Why interleaved and not a thread: an SMTP transaction is four round trips (MAIL, RCPT, DATA,
the message) spent waiting on the server, while claiming and composing are work for the CPU.
Overlapped, a message costs the larger of the two instead of their sum. A second thread would
overlap them too, but every reply would then have to win the interpreter lock (and a CPU) back
from the thread that is claiming: measured, that handover alone halves a bare smtplib loop's
rate on two cores. So the loop calls ``pump()`` between units of its work (and the claim
transaction between its statements); ``pump`` reads the replies that have arrived, writes the
next commands, and composes the next message while the server is still answering.

Contract (all calls from the loop's thread; the transmitter never touches the database):
- ``submit(claimed)``: a committed claim. Its message is rendered here (``render``) and sent in
  the order submitted, over one connection per mailbox, opened on first use and reused. A
  message that cannot be rendered is not sent: its result carries ``compose_error`` (the loop
  releases the claim and pauses the campaign) and the campaign's later claims are reported
  unsent.
- ``pump(wait=0)``: progress without blocking (``wait``: block up to that many seconds for a
  reply when there is nothing else to do).
- ``results()``: the results ready so far, each exactly once. A result whose ``outcome`` is
  None was never handed to the server (``reason`` says why: the worker is stopping, the
  campaign was paused, the mailbox failed earlier): the loop releases it.
- ``wait_until(n)``: pumps until at most ``n`` claims are queued or in transmission.
- ``close()``: finishes what is queued (or reports it unsent when stopping) and closes the
  connections; the results stay readable.

A mailbox whose server is unreachable, or that refuses the mailbox itself, is unusable from
that moment for the claims made before it (``claimed_at`` up to then): they are reported unsent
rather than tried once each; claims made later (after the worker's backoff, or once the mailbox
is resumed) are tried again.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from penguinctl.campaigns.smtp import Outcome, SmtpConnection
from penguinctl.errors import PenguinError

if TYPE_CHECKING:
    from penguinctl.campaigns.scheduler import Claimed
    from penguinctl.campaigns.senders import Sender
    from penguinctl.campaigns.window import Clock

_BLOCK = 0.5  # seconds per blocking wait in wait_until (the socket timeout bounds the whole)


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
    ) -> None:
        self._connect = connect
        self._render = render
        self._stopping = stopping
        self._clock = clock
        self._queue: deque[Claimed] = deque()
        self._active: _Active | None = None
        self._results: list[Result] = []
        self._pool: dict[str, SmtpConnection] = {}
        self._unusable: dict[str, datetime] = {}  # mailbox -> when it failed
        self._failed = False  # an unexpected error: nothing more is sent
        self._compose_errors: dict[int, str] = {}  # send id -> why its message failed

    # -- the loop's side ----------------------------------------------------------------------
    @property
    def pending(self) -> int:
        return len(self._queue) + (self._active is not None)

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
            if active is None:
                if not self._queue:
                    return
                self._start(self._queue.popleft())
                continue
            if active.conn.reply_ready() or self._overdue(active):
                self._step(active)  # overdue: the blocking read times out into an outcome
                continue
            if self._compose_ahead():
                continue  # useful work while the server answers; then look again
            if wait <= 0 or not active.conn.wait_reply(wait):
                return
            wait = 0.0  # one blocking wait per call

    def wait_until(self, most: int) -> None:
        while self.pending > most:
            self.pump(wait=_BLOCK)

    def close(self) -> None:
        self.wait_until(0)
        for conn in self._pool.values():
            conn.close()
        self._pool.clear()

    # -- one claim ----------------------------------------------------------------------------
    def _compose_ahead(self) -> bool:
        """Render the next queued message if it is not yet: whether there was one."""
        if not self._queue:
            return False
        claimed = self._queue[0]
        if claimed.payload or claimed.plan.problems.get("compose"):
            return False
        self._prepare(claimed)
        return True

    def _prepare(self, claimed: Claimed) -> str:
        """Render the message; the compose error ('' when it rendered)."""
        try:
            self._render(claimed)
        except PenguinError as exc:
            claimed.plan.problems["compose"] = str(exc)  # the loop stops handing its claims over
            self._compose_errors[claimed.send_id] = str(exc)
            return str(exc)
        return ""

    def _start(self, claimed: Claimed) -> None:
        address = claimed.sender.address
        error = self._compose_errors.pop(claimed.send_id, "")
        if error:
            return self._done(claimed, None, "not sent: the campaign was paused", error)
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
                return self._done(claimed, None, "not sent: the campaign was paused", error)
        conn = self._pool.get(address)
        if conn is None:
            conn = self._pool[address] = self._connect(claimed.sender)
        steps = conn.transaction(address, claimed.recipient, claimed.payload)
        self._active = _Active(claimed, conn, steps)
        self._step(self._active)  # writes MAIL FROM (opening the connection first if needed)

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
        except Exception as exc:  # a bug, not an SMTP failure: the message may be out
            self._active = None
            self._failed = True
            why = f"internal error: {type(exc).__name__}: {exc}"
            self._results.append(Result(active.claimed, Outcome("unknown", None, why, "payload")))
            raise
        self._active = None
        unreachable = outcome.kind == "deferred" and outcome.code is None
        if unreachable or outcome.kind == "sender_error":
            self._unusable[active.claimed.sender.address] = self._clock.now()
        self._results.append(Result(active.claimed, outcome))

    def _done(
        self, claimed: Claimed, outcome: Outcome | None, reason: str = "", error: str = ""
    ) -> None:
        self._results.append(Result(claimed, outcome, reason, error))
