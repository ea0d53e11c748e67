"""What a job handler gets: its job's identity and payload, a log, checkpoints, a session.

A :class:`JobContext` is a frozen view of the claimed attempt; nothing writes into it. What
the lease renewals learn (cancel asked, lease lost) arrives through its :class:`LeaseFlags`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from fusion.config import Settings
from fusion.db.session import Database
from fusion.errors import Cancelled, JobError, PermanentError
from fusion.jobs import log as joblog
from fusion.jobs.lease import LeaseFlags, LeaseKeeper
from fusion.jobs.models import Job, JobStatus, LogLevel
from fusion.security.redact import redact, redact_text


class LeaseLost(JobError):
    """This worker no longer holds the job's lease (it was reaped); the attempt is abandoned."""


# A long job's progress is written at most this often (the first and the final report always):
# a row update per item would cost more than the items.
PROGRESS_EVERY_S = 1.0


@dataclass
class _ProgressClock:
    """When this attempt last wrote its progress (the one mutable part of a context)."""

    written_at: float | None = None


@dataclass(frozen=True, kw_only=True)
class JobContext:
    """One attempt of one job, as its handler sees it: ``attempt`` of ``max_attempts``.

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
    max_attempts: int
    settings: Settings
    database: Database
    redis: Any = None
    worker_id: str = ""
    leases: LeaseKeeper | None = field(default=None, repr=False)
    flags: LeaseFlags = field(default_factory=LeaseFlags, repr=False)
    progress_clock: _ProgressClock = field(default_factory=_ProgressClock, repr=False)

    @property
    def last_attempt(self) -> bool:
        """Whether a retryable failure now fails the job for good."""
        return self.attempt >= self.max_attempts

    def payload_uuid(self, key: str) -> uuid.UUID:
        """The payload's ``key`` as a UUID; raises PermanentError when it is missing or not
        a UUID (a retry would not mend the payload)."""
        try:
            return uuid.UUID(str(self.payload[key]))
        except (KeyError, ValueError):
            raise PermanentError(f"the payload needs {key} (a UUID)") from None

    def require_store(self) -> uuid.UUID:
        """The job's store; raises PermanentError for a job that names none."""
        if self.store_id is None:
            raise PermanentError("this job names no store")
        return self.store_id

    def log(self, message: str, level: str = "info", **data: Any) -> None:
        """Append ``message`` to the job's log (its own small transaction, so it is kept even
        if the attempt later fails). ``data`` must be JSON-able; anything that looks like a
        secret (by key or by shape) is redacted before it is stored."""
        with self.database.org_session(self.org_id) as session:
            joblog.write(
                session, self.org_id, self.job_id, redact_text(message), LogLevel(level),
                redact(data),
            )  # fmt: skip

    def progress(self, done: int, total: int) -> None:
        """Record that ``done`` of ``total`` units of work are done (``jobs.progress``, shown
        by the jobs API). Written at most once per ``PROGRESS_EVERY_S``: the first report and
        the final one (``done >= total``) always, the ones in between when that long has
        passed, so a handler may call it for every item. Only while this worker runs the
        job. Raises ValueError for a negative figure."""
        if done < 0 or total < 0:
            raise ValueError("progress figures must not be negative")
        now = time.monotonic()
        last = self.progress_clock.written_at
        if last is not None and done < total and now - last < PROGRESS_EVERY_S:
            return
        self.progress_clock.written_at = now
        mine = Job.locked_by == self.worker_id if self.worker_id else Job.id == self.job_id
        with self.database.org_session(self.org_id) as session:
            session.execute(
                update(Job)
                .where(Job.id == self.job_id, Job.status == JobStatus.RUNNING, mine)
                .values(progress={"done": done, "total": total})
            )

    def checkpoint(self) -> None:
        """Renew the lease now; raise Cancelled if cancellation was requested, LeaseLost if
        the job is no longer this worker's."""
        if self.leases is not None:
            self.leases.renew_one(self.job_id)
        if self.flags.lost:
            raise LeaseLost(f"job {self.job_id} is no longer held by {self.worker_id}")
        if self.flags.cancelled:
            raise Cancelled("cancelled at a checkpoint")

    @property
    def cancel_requested(self) -> bool:
        """Whether cancellation has been seen (by the heartbeat or a checkpoint)."""
        return self.flags.cancelled

    @property
    def lease_lost(self) -> bool:
        """Whether a renewal found the job no longer this worker's."""
        return self.flags.lost

    @contextmanager
    def session(self) -> Iterator[Session]:
        """An org-scoped transaction for the handler's own reads and writes; commits when the
        block ends, rolls back if it raises."""
        with self.database.org_session(self.org_id) as session:
            yield session
