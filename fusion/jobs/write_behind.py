"""Write-behind: threads hand their writes to one writer thread and go on; the writer sends
whatever has been handed over since its last write, as one statement.

A worker thread that has run its job gives the outcome to the writer and takes its next
message at once, instead of waiting a round trip (more, on a busy machine) for its own write.
The writer writes in batches of what arrived during the previous write, so a busy process
pays one statement for many outcomes. The guarantee this trades is the one a job queue with
acknowledgements late can afford: an outcome handed over but not yet written when the process
dies is lost, and its job, still running in the database under a lease nobody renews, is given
back by the reaper and runs again (its handler at least once, as after any crash; the (worker,
attempt) guard keeps the lost attempt from ever finishing). A graceful stop (:meth:`stop`)
writes everything handed over first.

A caller that must know its write happened (tests, a CLI) uses :meth:`put_and_wait`: the same
writer and batches, and the answer of its own item.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

I = TypeVar("I")  # noqa: E741 - the item type, as in the write's signature
R = TypeVar("R")

# One statement takes at most this many items; more than BACKLOG handed over and not yet
# written makes :meth:`WriteBehind.put` wait (the database is slower than the handlers: the
# threads slow down rather than hold ever more unwritten outcomes in memory).
MAX_BATCH = 256
BACKLOG = 4 * MAX_BATCH


class _Ticket(Generic[R]):
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: R | None = None
        self.error: BaseException | None = None


class WriteBehind(Generic[I, R]):
    """Runs ``write(items) -> answers`` (one answer per item, in order) on a thread of its
    own for the items handed to :meth:`put`, one batch at a time, in the order handed over.

    ``write`` deals with its own failures as far as it can (the engine's retries while
    Postgres is away, then logs); what it raises is logged here, and raised in the callers of
    :meth:`put_and_wait` whose items were in that batch."""

    def __init__(
        self,
        write: Callable[[Sequence[I]], Sequence[R]],
        *,
        name: str,
        max_batch: int = MAX_BATCH,
        backlog: int = BACKLOG,
    ) -> None:
        self._write = write
        self._name = name
        self._max = max_batch
        self._backlog = backlog
        self._cond = threading.Condition()
        self._queue: list[tuple[I, _Ticket[R] | None]] = []
        self._handed = 0  # items handed over so far
        self._written = 0  # items whose write has returned (or failed)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.batches = 0  # statements written (for tests and the bench's evidence)
        self.items = 0

    def put(self, item: I) -> None:
        """Hand ``item`` over to be written soon; returns at once (unless BACKLOG items are
        waiting already)."""
        self._hand_over(item, None)

    def put_and_wait(self, item: I) -> R:
        """Hand ``item`` over and wait until its batch is written; its answer, or what the
        write raised."""
        ticket: _Ticket[R] = _Ticket()
        self._hand_over(item, ticket)
        ticket.done.wait()
        if ticket.error is not None:
            raise ticket.error
        return ticket.result  # type: ignore[return-value]

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every item handed over before this call is written; False if that took
        longer than ``timeout``."""
        with self._cond:
            target = self._handed
            return self._cond.wait_for(lambda: self._written >= target, timeout)

    def stop(self, timeout: float = 30.0) -> bool:
        """Write what was handed over, then end the writer thread; False if the writes took
        longer than ``timeout`` (what is left is lost, and its jobs are rescued)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        if thread.is_alive():
            log.error("%s: outcomes still unwritten after %.0f s at shutdown", self._name, timeout)
            return False
        return True

    def pending(self) -> int:
        with self._cond:
            return self._handed - self._written

    def _hand_over(self, item: I, ticket: _Ticket[R] | None) -> None:
        with self._cond:
            self._cond.wait_for(lambda: len(self._queue) < self._backlog)
            self._queue.append((item, ticket))
            self._handed += 1
            # Started on first use, and again if it ever ended (a fork, a stop and reuse).
            if self._thread is None or not self._thread.is_alive():
                self._stopping = False
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue) or self._stopping)
                if not self._queue:
                    return  # stopping, and everything is written
                batch, self._queue = self._queue[: self._max], self._queue[self._max :]
                self._cond.notify_all()  # room in the backlog
            self._write_batch(batch)

    def _write_batch(self, batch: list[tuple[I, _Ticket[R] | None]]) -> None:
        answers: Sequence[R] = ()
        error: BaseException | None = None
        try:
            answers = list(self._write([item for item, _ in batch]))
            if len(answers) != len(batch):
                raise RuntimeError(f"{len(answers)} answers for {len(batch)} items")
        except Exception as exc:  # the writer thread lives on; the batch's callers learn it
            error = exc
            # The type only: a database error's text can carry the statement's parameters.
            log.error(
                "%s: a write of %d item(s) failed: %s", self._name, len(batch), type(exc).__name__
            )
        for n, (_, ticket) in enumerate(batch):
            if ticket is not None:
                ticket.error = error
                ticket.result = answers[n] if error is None else None
                ticket.done.set()
        with self._cond:
            self.batches += 1
            self.items += len(batch)
            self._written += len(batch)
            self._cond.notify_all()
