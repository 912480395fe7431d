"""The SMTP side of a send loop: a thread that owns the loop's connections and transmits
composed claims, in order, while the loop claims and composes the next ones.

Why a thread: an SMTP transaction is four round trips (MAIL, RCPT, DATA, the message) spent
waiting on the server; the ledger transaction and the message's composition are CPU work. Done
one after the other, every message pays both; overlapped, a message costs the larger of the two.
The loop (worker.py) keeps the database: the transmitter never touches it, it only reports a
``Result`` per claim, which the loop records.

Contract:
- ``submit(claimed)``: a committed claim whose ``payload`` is composed. Claims are sent in the
  order submitted, over one connection per mailbox, opened on first use and reused.
- ``results()``: the results ready so far (non-blocking), each exactly once. A result whose
  ``outcome`` is None was never handed to the server (``reason`` says why: the worker is
  stopping, the campaign was paused, the mailbox failed earlier in the loop): the loop releases
  it as if it had never been claimed.
- ``wait_until(n)``: blocks until at most ``n`` claims are queued or in transmission.
- ``close()``: transmits what is queued (or reports it unsent when stopping), ends the thread
  and closes the connections; the results stay readable.

A mailbox whose server is unreachable, or that refuses the mailbox itself, is unusable from
that moment for the claims made before it (``claimed_at`` up to then): they are reported unsent
rather than tried once each; claims made later (after the worker's backoff, or once the mailbox
is resumed) are tried again.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from penguinctl.campaigns.smtp import Outcome, SmtpConnection

if TYPE_CHECKING:
    from penguinctl.campaigns.scheduler import Claimed
    from penguinctl.campaigns.senders import Sender
    from penguinctl.campaigns.window import Clock


@dataclass(frozen=True)
class Result:
    claimed: Claimed
    outcome: Outcome | None  # None: never handed to the server
    reason: str = ""  # why it was not sent (outcome None)


class Transmitter:
    def __init__(
        self,
        connect: Callable[[Sender], SmtpConnection],
        *,
        stopping: Callable[[], bool],
        clock: Clock,
        name: str = "smtp",
    ) -> None:
        self._connect = connect
        self._stopping = stopping
        self._clock = clock
        self._inbox: queue.SimpleQueue[Claimed | None] = queue.SimpleQueue()
        self._results: queue.SimpleQueue[Result] = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._pending = 0
        self._pool: dict[str, SmtpConnection] = {}
        self._unusable: dict[str, datetime] = {}  # mailbox -> when it failed
        self.error: BaseException | None = None  # an unexpected error ends transmission
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # -- the loop's side ----------------------------------------------------------------------
    @property
    def pending(self) -> int:
        return self._pending

    def submit(self, claimed: Claimed) -> None:
        with self._cond:
            self._pending += 1
        self._inbox.put(claimed)

    def results(self) -> list[Result]:
        out: list[Result] = []
        while True:
            try:
                out.append(self._results.get_nowait())
            except queue.Empty:
                return out

    def wait_until(self, most: int) -> None:
        with self._cond:
            while self._pending > most:
                self._cond.wait(0.2)

    def close(self) -> None:
        if self._thread.is_alive():
            self._inbox.put(None)
            while self._thread.is_alive():
                self._thread.join(0.2)  # keeps the caller responsive to signals
        for conn in self._pool.values():
            conn.close()
        self._pool.clear()

    # -- the thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            claimed = self._inbox.get()
            if claimed is None:
                return
            result = self._one(claimed)
            self._results.put(result)  # before the count drops: a waiter finds it
            with self._cond:
                self._pending -= 1
                self._cond.notify_all()

    def _one(self, claimed: Claimed) -> Result:
        address = claimed.sender.address
        if self.error is not None:
            return Result(claimed, None, "not sent: the transmitter failed")
        if self._stopping():
            return Result(claimed, None, "not sent: the worker stopped")
        if claimed.plan.problems.get("compose"):
            return Result(claimed, None, "not sent: the campaign was paused")
        failed_at = self._unusable.get(address)
        if failed_at is not None and claimed.claimed_at <= failed_at:
            return Result(claimed, None, "not sent: the mailbox is unusable")
        try:
            outcome = self._send(claimed)
        except BaseException as exc:  # a bug, not an SMTP failure: stop, report ambiguous
            self.error = exc
            return Result(claimed, Outcome("unknown", None, f"internal error: {exc}", "payload"))
        unreachable = outcome.kind == "deferred" and outcome.code is None
        if unreachable or outcome.kind == "sender_error":
            self._unusable[address] = self._clock.now()
        return Result(claimed, outcome)

    def _send(self, claimed: Claimed) -> Outcome:
        sender = claimed.sender
        conn = self._pool.get(sender.address)
        if conn is None:
            conn = self._pool[sender.address] = self._connect(sender)
        return conn.send(sender.address, claimed.recipient, claimed.payload)
