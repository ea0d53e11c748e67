"""Running one job: claim by id, run its handler under a lease, record the outcome.

A message is only a hint: the claim is one conditional UPDATE in Postgres, so a duplicate,
late or early delivery claims nothing and is acknowledged without running anything. Every
outcome is written with a guard on (worker, attempt), so a worker whose lease was reaped
and whose job now runs elsewhere cannot complete it a second time.

Outcomes by exception: none → completed (the handler's dict is the result); RetryableError
or anything unexpected → pending again after the backoff ladder (Retry-After wins), or failed
for good after max_attempts; RateLimited → pending again at now + retry_after without
spending an attempt; PermanentError (incl. UnsupportedCapability) → failed at once;
Cancelled → cancelled.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from fusion.config import Settings
from fusion.db.session import Database, make_engine
from fusion.errors import Cancelled, PermanentError, RateLimited
from fusion.jobs import registry
from fusion.jobs.context import JobContext, LeaseLost
from fusion.jobs.lease import LeaseKeeper
from fusion.jobs.models import JobStatus, LogLevel
from fusion.jobs.retry import backoff_s
from fusion.security.redact import redact_text

log = logging.getLogger(__name__)

CLAIM = text("SELECT * FROM job_claim(:id, :worker, :lease)")
# One round trip, one implicit transaction (autocommit, two statements in one query): scope
# to the job's org, then move the job (only if this worker still holds this attempt) and log
# the move. RLS still applies; the guard makes a late finish by a reaped worker a no-op.
FINISH = text(
    """SELECT set_config('fusion.org_id', :org, true);
WITH moved AS (
    UPDATE jobs
       SET status = CAST(:status AS job_status),
           result = CASE WHEN :set_result THEN CAST(:result AS jsonb) ELSE result END,
           last_error = COALESCE(:error, last_error),
           scheduled_at = COALESCE(:scheduled_at, scheduled_at),
           dispatched_at = CASE WHEN :rescheduled THEN NULL ELSE dispatched_at END,
           finished_at = :finished_at,
           attempts = attempts - :refund,
           locked_by = NULL, lease_expires_at = NULL, updated_at = now()
     WHERE id = :id AND status = 'running' AND locked_by = :worker AND attempts = :attempt
    RETURNING id, org_id
)
INSERT INTO job_logs (id, org_id, job_id, level, message, data, created_at, updated_at)
SELECT gen_random_uuid(), org_id, id, CAST(:level AS log_level), :message, CAST(:data AS jsonb),
       clock_timestamp(), clock_timestamp()
  FROM moved
RETURNING job_id"""
)
# How long a worker keeps trying to reach Postgres (claim, or record an outcome) before it
# leaves the job to the sweeps: long enough to ride out a database restart.
DB_PATIENCE_S = 60.0
MAX_ERROR_CHARS = 2000

T = TypeVar("T")


class Outcome(enum.StrEnum):
    SKIPPED = "skipped"  # nothing to claim: duplicate, early or stale delivery
    COMPLETED = "completed"
    RETRY = "retry"
    RESCHEDULED = "rescheduled"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ABANDONED = "abandoned"  # the lease was lost; whoever holds the job now decides


@dataclass(frozen=True)
class Claimed:
    id: uuid.UUID
    org_id: uuid.UUID
    store_id: uuid.UUID | None
    job_type: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int


def new_worker_id() -> str:
    """A name for this process that no other process shares (host, pid, random tag)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Engine:
    """One worker process's job runner; threads may call :meth:`execute` concurrently."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        *,
        redis: Any = None,
        worker_id: str | None = None,
        db_patience_s: float = DB_PATIENCE_S,
    ) -> None:
        self.settings = settings
        self.database = database
        self.redis = redis
        self.worker_id = worker_id or new_worker_id()
        self.db_patience_s = db_patience_s
        self.leases = LeaseKeeper(database, worker_id=self.worker_id, lease_s=settings.lease_s)
        # The claim/finish path: autocommit, one round trip each, and no pre-ping (a dead
        # connection fails fast, is invalidated and retried by _patiently instead).
        self._fast = make_engine(
            database.engine.url.render_as_string(hide_password=False),
            pool_pre_ping=False,
            isolation_level="AUTOCOMMIT",
            pool_size=database.engine.pool.size(),  # type: ignore[attr-defined]
            max_overflow=10,
        )

    def start(self) -> None:
        self.leases.start()

    def stop(self) -> None:
        self.leases.stop()
        self._fast.dispose()

    def execute(self, job_id: uuid.UUID) -> Outcome:
        """Claim ``job_id`` and run it to an outcome. Returns SKIPPED when the job is not
        claimable (already taken, not due, cancelled, unknown); never runs a job twice at
        once. Raises only if Postgres stays unreachable longer than the worker's patience
        (the job, if claimed, is then rescued by the reaper)."""
        claimed = self._patiently(lambda: self._claim(job_id))
        if claimed is None:
            log.info("job %s not claimable (duplicate, early or stale delivery): ignored", job_id)
            return Outcome.SKIPPED
        ctx = JobContext(
            job_id=claimed.id,
            org_id=claimed.org_id,
            store_id=claimed.store_id,
            job_type=claimed.job_type,
            payload=claimed.payload,
            attempt=claimed.attempt,
            settings=self.settings,
            database=self.database,
            redis=self.redis,
            worker_id=self.worker_id,
            leases=self.leases,
        )
        self.leases.hold(ctx)
        try:
            return self._run(claimed, ctx)
        finally:
            self.leases.release(ctx)

    def _claim(self, job_id: uuid.UUID) -> Claimed | None:
        with self._fast.connect() as conn:
            row = conn.execute(
                CLAIM, {"id": job_id, "worker": self.worker_id, "lease": self.settings.lease_s}
            ).first()
        if row is None:
            return None
        return Claimed(
            id=row.id,
            org_id=row.org_id,
            store_id=row.store_id,
            job_type=row.job_type,
            payload=dict(row.payload or {}),
            attempt=row.attempts,
            max_attempts=row.max_attempts,
        )

    def _run(self, job: Claimed, ctx: JobContext) -> Outcome:
        try:
            handler = registry.get(job.job_type).handler
        except registry.UnknownJobType:
            return self._fail(job, f"no handler for job type {job.job_type!r} on this worker")
        try:
            result = handler(ctx)
            if ctx.cancel_requested:
                # Finished before its next checkpoint: the work is done, so it counts.
                log.info("job %s finished although cancel was requested", job.id)
            return self._complete(job, _jsonable(result))
        except LeaseLost:
            log.warning("job %s: lease lost mid-run; abandoning this attempt", job.id)
            return Outcome.ABANDONED
        except Cancelled as exc:
            return self._cancelled(job, str(exc))
        except RateLimited as exc:
            return self._rate_limited(job, exc)
        except PermanentError as exc:
            return self._fail(job, _describe(exc))
        except Exception as exc:  # RetryableError and anything unforeseen: retry on the ladder
            return self._retry(job, exc)

    # Outcomes: each one conditional on this worker still holding this attempt.

    def _complete(self, job: Claimed, result: dict[str, Any] | None) -> Outcome:
        return self._finish(
            job, JobStatus.COMPLETED, "completed", LogLevel.INFO, Outcome.COMPLETED,
            result=result, set_result=True, finished=True,
        )  # fmt: skip

    def _fail(self, job: Claimed, message: str) -> Outcome:
        return self._finish(
            job, JobStatus.FAILED, f"failed: {message}", LogLevel.ERROR, Outcome.FAILED,
            error=message, finished=True,
        )  # fmt: skip

    def _cancelled(self, job: Claimed, message: str) -> Outcome:
        return self._finish(
            job, JobStatus.CANCELLED, f"cancelled: {message}", LogLevel.WARNING,
            Outcome.CANCELLED, finished=True,
        )  # fmt: skip

    def _retry(self, job: Claimed, exc: Exception) -> Outcome:
        message = _describe(exc)
        if job.attempt >= job.max_attempts:
            return self._finish(
                job, JobStatus.FAILED,
                f"failed for good after {job.attempt} attempts: {message}",
                LogLevel.ERROR, Outcome.FAILED, error=message, finished=True,
            )  # fmt: skip
        retry_after = getattr(exc, "retry_after_s", None)
        delay = (
            float(retry_after)
            if retry_after is not None
            else backoff_s(job.attempt, self.settings.retry_ladder_s)
        )
        at = _now() + timedelta(seconds=delay)
        return self._finish(
            job, JobStatus.PENDING,
            f"attempt {job.attempt} of {job.max_attempts} failed: {message}; "
            f"retry at {at.isoformat()}",
            LogLevel.WARNING, Outcome.RETRY,
            error=message, scheduled_at=at, data={"retry_in_s": round(delay, 3)},
        )  # fmt: skip

    def _rate_limited(self, job: Claimed, exc: RateLimited) -> Outcome:
        delay = max(float(exc.retry_after_s), 0.0)
        at = _now() + timedelta(seconds=delay)
        # The platform said "not now", not "failed": this try does not count (refund).
        return self._finish(
            job, JobStatus.PENDING,
            f"rate limited; rescheduled for {at.isoformat()} (attempt not counted)",
            LogLevel.INFO, Outcome.RESCHEDULED,
            scheduled_at=at, refund=1, data={"retry_in_s": round(delay, 3)},
        )  # fmt: skip

    def _finish(
        self,
        job: Claimed,
        status: JobStatus,
        message: str,
        level: LogLevel,
        outcome: Outcome,
        *,
        result: dict[str, Any] | None = None,
        set_result: bool = False,
        error: str | None = None,
        scheduled_at: datetime | None = None,
        finished: bool = False,
        refund: int = 0,
        data: Mapping[str, Any] | None = None,
    ) -> Outcome:
        params = {
            "org": str(job.org_id),
            "id": job.id,
            "worker": self.worker_id,
            "attempt": job.attempt,
            "status": status.value,
            "set_result": set_result,
            "result": json.dumps(result) if result is not None else None,
            "error": error,
            "scheduled_at": scheduled_at,
            "rescheduled": scheduled_at is not None,
            "finished_at": _now() if finished else None,
            "refund": refund,
            "level": level.value,
            "message": message,
            "data": json.dumps({"status": status.value, "attempt": job.attempt, **(data or {})}),
        }

        def write() -> bool:
            with self._fast.connect() as conn:
                return conn.execute(FINISH, params).first() is not None

        if self._patiently(write):
            return outcome
        log.warning("job %s: attempt %s was taken over before it finished", job.id, job.attempt)
        return Outcome.ABANDONED

    def _patiently(self, fn: Callable[[], T]) -> T:
        """``fn()``, retried while Postgres is unreachable, up to the worker's patience."""
        deadline = time.monotonic() + self.db_patience_s
        pause = 0.2
        while True:
            try:
                return fn()
            except (OperationalError, DBAPIError) as exc:
                if not _connection_trouble(exc) or time.monotonic() > deadline:
                    raise
                log.warning("database unreachable (%s); retrying", type(exc.orig).__name__)
                time.sleep(pause)
                pause = min(pause * 2, 2.0)


def _connection_trouble(exc: SQLAlchemyError) -> bool:
    return isinstance(exc, OperationalError) or bool(getattr(exc, "connection_invalidated", False))


def _now() -> datetime:
    return datetime.now(UTC)


def _describe(exc: BaseException) -> str:
    text_ = str(exc) or type(exc).__name__
    if (
        not isinstance(exc, PermanentError | RateLimited)
        and type(exc).__module__ != "fusion.errors"
    ):
        text_ = f"{type(exc).__name__}: {text_}"
    # The error is kept on the job and shown by the API: no credential may ride along.
    return redact_text(text_)[:MAX_ERROR_CHARS]


def _jsonable(result: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if result is None:
        return None
    try:
        return dict(json.loads(json.dumps(dict(result))))
    except (TypeError, ValueError) as exc:
        raise PermanentError(f"the handler's result is not JSON: {exc}") from None
