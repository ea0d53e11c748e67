"""Group commit: the writes that threads of one process ask for at about the same time go to
Postgres together, as one statement.

A thread that finds no write in flight writes its own item at once (an idle worker pays no
wait, so a job's start is not delayed). Items that arrive while a write is in flight queue up;
when it returns, the first of them writes them all in the next statement, and so on. Under
load the batches grow by themselves to what arrived during one round trip, which is what the
database's own group commit does with WAL flushes: one round trip and one commit per batch,
not per job.

Every caller blocks until its own item is written and gets its own answer, so nothing is
acknowledged before it is in the database; a failed write raises in every caller of its
batch (each then handles it as it would its own failed statement).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

I = TypeVar("I")  # noqa: E741 - the item type, as in the write's signature
R = TypeVar("R")

# More than this many waiting items are written in several statements (a bound on one
# statement's size; far above what 8-16 threads of one process produce in one round trip).
MAX_BATCH = 256


class _Slot(Generic[I, R]):
    __slots__ = ("error", "item", "promoted", "result", "wake")

    def __init__(self, item: I) -> None:
        self.item = item
        self.wake = threading.Event()
        self.promoted = False
        self.result: R | None = None
        self.error: BaseException | None = None


class GroupCommit(Generic[I, R]):
    """Runs ``write(items) -> answers`` (one answer per item, in order) for the items that
    threads :meth:`submit` concurrently, one batch at a time."""

    def __init__(
        self, write: Callable[[Sequence[I]], Sequence[R]], *, max_batch: int = MAX_BATCH
    ) -> None:
        self._write = write
        self._max = max_batch
        self._lock = threading.Lock()
        self._waiting: list[_Slot[I, R]] = []
        self._busy = False
        self.batches = 0  # statements written (for tests and the bench's evidence)
        self.items = 0

    def submit(self, item: I) -> R:
        """Write ``item`` (with whatever else is waiting) and return its answer; raises what
        the write of its batch raised."""
        slot: _Slot[I, R] = _Slot(item)
        with self._lock:
            self._waiting.append(slot)
            lead = not self._busy
            self._busy = True
        if not lead:
            slot.wake.wait()
            # Woken either with its answer (its batch was written) or to lead the next batch
            # (it was first in line when the write in flight returned).
            lead = slot.promoted
        if lead:
            self._lead()
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]

    def _lead(self) -> None:
        with self._lock:
            batch, self._waiting = self._waiting[: self._max], self._waiting[self._max :]
        try:
            answers = list(self._write([s.item for s in batch]))
            if len(answers) != len(batch):
                raise RuntimeError(f"{len(answers)} answers for {len(batch)} items")
            for s, answer in zip(batch, answers, strict=True):
                s.result = answer
        except BaseException as exc:  # every caller of the batch raises it
            for s in batch:
                s.error = exc
        with self._lock:
            self.batches += 1
            self.items += len(batch)
            successor = self._waiting[0] if self._waiting else None
            if successor is None:
                self._busy = False
            else:
                successor.promoted = True  # the write stays "in flight": it leads next
        for s in batch:
            s.wake.set()
        if successor is not None:
            successor.wake.set()
