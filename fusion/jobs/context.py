"""What a job handler gets: its job's identity and payload, a log, checkpoints, a session."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from fusion.config import Settings
from fusion.db.session import Database
from fusion.errors import Cancelled, JobError
from fusion.jobs import log as joblog
from fusion.jobs.models import LogLevel
from fusion.security.redact import redact, redact_text

if TYPE_CHECKING:
    from fusion.jobs.lease import LeaseKeeper


class LeaseLost(JobError):
    """This worker no longer holds the job's lease (it was reaped); the attempt is abandoned."""


@dataclass
class JobContext:
    """One attempt of one job, as its handler sees it.

    ``checkpoint()`` is where a long handler lets the engine in: it renews the lease and
    raises Cancelled when cancellation was requested (or LeaseLost when the job was given to
    another worker). Handlers should call it between units of work.
    """

    job_id: uuid.UUID
    org_id: uuid.UUID
    store_id: uuid.UUID | None
    job_type: str
    payload: Mapping[str, Any]
    attempt: int
    settings: Settings
    database: Database
    redis: Any = None
    worker_id: str = ""
    leases: LeaseKeeper | None = field(default=None, repr=False)
    _cancelled: threading.Event = field(default_factory=threading.Event, repr=False)
    _lost: threading.Event = field(default_factory=threading.Event, repr=False)

    def log(self, message: str, level: str = "info", **data: Any) -> None:
        """Append ``message`` to the job's log (its own small transaction, so it is kept even
        if the attempt later fails). ``data`` must be JSON-able; anything that looks like a
        secret (by key or by shape) is redacted before it is stored."""
        with self.database.org_session(self.org_id) as session:
            joblog.write(
                session, self.org_id, self.job_id, redact_text(message), LogLevel(level),
                redact(data),
            )  # fmt: skip

    def checkpoint(self) -> None:
        """Renew the lease now; raise Cancelled if cancellation was requested, LeaseLost if
        the job is no longer this worker's."""
        if self.leases is not None:
            self.leases.renew_one(self)
        if self._lost.is_set():
            raise LeaseLost(f"job {self.job_id} is no longer held by {self.worker_id}")
        if self._cancelled.is_set():
            raise Cancelled("cancelled at a checkpoint")

    @property
    def cancel_requested(self) -> bool:
        """Whether cancellation has been seen (by the heartbeat or a checkpoint)."""
        return self._cancelled.is_set()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """An org-scoped transaction for the handler's own reads and writes; commits when the
        block ends, rolls back if it raises."""
        with self.database.org_session(self.org_id) as session:
            yield session
