"""For tests of writers that batch (group commit, write-behind): a write that blocks until the
test releases it, and a short poll for what other threads do meanwhile."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence


class Gate:
    """A write that blocks until :attr:`release` is set, recording each batch it was given;
    it answers ``i * 10`` for each item ``i``."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = threading.Event()

    def write(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        assert self.release.wait(10), "the test never released the write"
        return [i * 10 for i in items]


def wait_until(condition: Callable[[], object], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never met"
        time.sleep(0.005)
