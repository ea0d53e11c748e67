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

A bulk message's ids (:meth:`Engine.execute_many`) are claimed a few per statement as they
are needed (``job_claim_many``: same conditions, same log rows) and their outcomes, when the
jobs end close together, recorded in one statement (``job_finish_many``: same guard, same log
rows) before the method returns, so before the message is acknowledged.

Single messages (:meth:`Engine.execute`, one per thread): the claims that threads of the
process ask for while another claim is in flight go together in the next statement
(``fusion.jobs.group_commit``; ``job_claim`` for each id), and each thread waits for its own
claim before it runs the job. Their outcomes go to one writer thread
(``fusion.jobs.write_behind``), which writes what has been handed over since its last write in
one statement (``job_finish_many``), releases those jobs' leases and publishes the retries due
soon. A worker's engine (``write_behind=True``) returns as soon as the outcome is handed
over, so its thread takes the next message a round trip sooner and the writes batch larger; a
worker that dies with an outcome not yet written leaves the job running under a lease nobody
renews, the reaper gives it back to run again, and the (worker, attempt) guard keeps the dead
attempt from ever finishing. Otherwise (tests, scripts) :meth:`Engine.execute` waits for its
outcome's write and returns what was written.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from fusion import logs, telemetry
from fusion.config import Settings
from fusion.db.session import Database, make_engine
from fusion.errors import Cancelled, PermanentError, RateLimited
from fusion.jobs import dispatch, lanes, registry
from fusion.jobs.context import JobContext, LeaseLost
from fusion.jobs.group_commit import GroupCommit
from fusion.jobs.lease import LeaseKeeper
from fusion.jobs.models import JobStatus, LogLevel
from fusion.jobs.retry import backoff_s
from fusion.jobs.write_behind import WriteBehind
from fusion.security.redact import redact_text

log = logging.getLogger(__name__)

# The claims that threads of this process ask for at about the same time, in one statement:
# job_claim for each id (the same conditional UPDATE and log rows as one claim alone, waiting
# for a row another transaction holds rather than skipping it), ids in sorted order so that
# two workers claiming overlapping ids (duplicate messages) lock them in the same order.
# Only the columns a run needs (_claimed), not the whole row: a claim's rows are read on the
# worker's busiest path.
CLAIM_EACH = text(
    "SELECT c.id, c.org_id, c.store_id, c.job_type, c.payload, c.attempts, c.max_attempts, "
    "c.queue, c.claimed_at, c.scheduled_at, c.priority "
    "FROM unnest(CAST(:ids AS uuid[])) AS i(id) "
    "CROSS JOIN LATERAL job_claim(i.id, :worker, :lease) AS c"
)
CLAIM_MANY = text(
    "SELECT c.id, c.org_id, c.store_id, c.job_type, c.payload, c.attempts, c.max_attempts, "
    "c.queue, c.claimed_at, c.scheduled_at, c.priority "
    "FROM job_claim_many(CAST(:ids AS uuid[]), :worker, :lease) AS c"
)
# Outcomes, one or several in one statement: each moves its job only if this worker still
# holds that attempt (status running, locked_by, attempts), and logs the move.
FINISH_MANY = text("SELECT id FROM job_finish_many(:worker, CAST(:outcomes AS jsonb))")
# How long a worker keeps trying to reach Postgres (claim, or record an outcome) before it
# leaves the job to the sweeps: long enough to ride out a database restart.
DB_PATIENCE_S = 60.0
MAX_ERROR_CHARS = 2000
# Outcomes of a bulk message are written together unless the first of them has waited this
# long: short jobs share one round trip, a slow batch does not sit on finished outcomes.
FLUSH_WINDOW_S = 0.05
# A bulk message's first claim takes this many of its ids; the pace of those decides how many
# of the rest the next claim takes (see Engine.execute_many).
FIRST_CLAIM = 2

T = TypeVar("T")


class Outcome(enum.StrEnum):
    SKIPPED = "skipped"  # nothing to claim: duplicate, early or stale delivery
    COMPLETED = "completed"
    RETRY = "retry"
    RESCHEDULED = "rescheduled"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ABANDONED = "abandoned"  # the lease was lost; whoever holds the job now decides
    PASSED_ON = "passed_on"  # claimed in a batch, not started in its slice: pending again


@dataclass(frozen=True)
class Claimed:
    id: uuid.UUID
    org_id: uuid.UUID
    store_id: uuid.UUID | None
    job_type: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int
    queue: str = ""
    waited_s: float = 0.0  # from due (scheduled_at) to claimed, by Postgres' clock
    priority: int = 0


@dataclass(frozen=True, kw_only=True)
class Finish:
    """An outcome decided for one claimed attempt, not yet written."""

    job: Claimed
    status: JobStatus
    message: str
    level: LogLevel
    outcome: Outcome
    result: dict[str, Any] | None = None
    set_result: bool = False
    error: str | None = None
    scheduled_at: datetime | None = None
    finished_at: datetime | None = None
    refund: int = 0
    redispatched: bool = False
    eta: datetime | None = None  # published again with this ETA once written (due soon)
    data: Mapping[str, Any] | None = None

    def log_data(self) -> dict[str, Any]:
        return {"status": self.status.value, "attempt": self.job.attempt, **(self.data or {})}

    def row(self) -> dict[str, Any]:
        """This outcome as ``job_finish_many`` reads one (the guard: id and attempt)."""
        return {
            "id": str(self.job.id),
            "attempt": self.job.attempt,
            "status": self.status.value,
            "set_result": self.set_result,
            "result": self.result,
            "error": self.error,
            "scheduled_at": _iso(self.scheduled_at),
            "redispatched": self.redispatched,
            "finished_at": _iso(self.finished_at),
            "refund": self.refund,
            "level": self.level.value,
            "message": self.message,
            "data": self.log_data(),
        }


@dataclass
class BatchRun:
    """What :meth:`Engine.execute_many` did: outcome counts, and the ids it put back to
    pending unstarted (the caller publishes them again)."""

    outcomes: dict[str, int]
    passed_on: list[uuid.UUID]


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
        write_behind: bool = False,
    ) -> None:
        self.settings = settings
        self.database = database
        self.redis = redis
        self.worker_id = worker_id or new_worker_id()
        self.db_patience_s = db_patience_s
        self.write_behind = write_behind
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
        # Single messages: claims group-committed across this process's threads, outcomes
        # written behind by one thread, so a busy worker pays one round trip per batch of
        # claims and one per batch of outcomes, not two per job.
        self.claims: GroupCommit[uuid.UUID, Claimed | None] = GroupCommit(self._claim_each)
        self.finishes: WriteBehind[Finish, bool] = WriteBehind(
            self._write_outcomes, name="fusion-outcome-writer"
        )

    def start(self) -> None:
        self.leases.start()

    def stop(self) -> None:
        """Write the outcomes handed over, then stop renewing leases (a graceful shutdown)."""
        self.finishes.stop(timeout=self.db_patience_s)
        self.leases.stop()
        self._fast.dispose()

    def execute(self, job_id: uuid.UUID) -> Outcome:
        """Claim ``job_id`` and run it to an outcome. Returns SKIPPED when the job is not
        claimable (already taken, not due, cancelled, unknown); never runs a job twice at
        once. With ``write_behind`` the outcome returned is the one handed to the writer (an
        attempt taken over meanwhile is logged by the writer as abandoned); otherwise the one
        written. Raises only if Postgres stays unreachable longer than the worker's patience
        (the job, if claimed, is then rescued by the reaper)."""
        claimed = self._patiently(lambda: self._claim(job_id))
        if claimed is None:
            log.info("job %s not claimable (duplicate, early or stale delivery): ignored", job_id)
            return Outcome.SKIPPED
        ctx = self._context(claimed)
        try:
            decided = self._run(claimed, ctx)
        except BaseException:
            self.leases.release(claimed.id)
            raise
        if isinstance(decided, Outcome):
            self.leases.release(claimed.id)
            return decided
        # The writer releases the lease once the outcome is written: until then the job is
        # running in the database, and its lease is renewed as any running job's.
        decided = self._with_eta(decided)
        if self.write_behind:
            self.finishes.put(decided)
            return decided.outcome
        return decided.outcome if self.finishes.put_and_wait(decided) else Outcome.ABANDONED

    def execute_many(self, job_ids: list[uuid.UUID], *, slice_s: float) -> BatchRun:
        """Run the claimable ids of ``job_ids`` in turn, claiming them as the batch goes.

        The first ``FIRST_CLAIM`` ids are claimed in one statement; then, each time those
        are run, as many of the rest as the pace so far says fit in what is left of
        ``slice_s`` (at least one while the slice lasts), in one statement. Ids not
        claimable (duplicate, early, stale, cancelled, unknown) count as SKIPPED and run
        nothing. Once ``slice_s`` has passed, the ids not yet claimed, and claimed jobs not
        yet started (back to pending, attempt not counted, logged), are returned in
        ``passed_on`` for the caller to publish. Every outcome is written, under the
        (worker, attempt) guard, before this returns. Raises only if Postgres stays
        unreachable longer than the worker's patience (claimed jobs are then rescued by the
        reaper)."""
        rest = list(dict.fromkeys(job_ids))
        run = BatchRun(outcomes={}, passed_on=[])
        started = time.monotonic()
        deadline = started + slice_s
        held: list[Claimed] = []
        decided: list[Finish] = []
        first_at = 0.0
        tried = begun = 0  # ids claimed or found not claimable; claimed jobs taken in hand
        size = FIRST_CLAIM
        try:
            while rest and not (begun and time.monotonic() > deadline):
                wanted, rest = rest[:size], rest[size:]
                claimed = self._patiently(lambda: self._claim_many(wanted))  # noqa: B023
                held += claimed
                if skipped := len(wanted) - len(claimed):
                    log.info("%d job(s) of a batch not claimable: ignored", skipped)
                    self._count(run, Outcome.SKIPPED, skipped)
                contexts = [self._context(job) for job in claimed]  # their leases kept
                for n, (job, ctx) in enumerate(zip(claimed, contexts, strict=True)):
                    if begun and time.monotonic() > deadline:
                        decided += [self._pass_on(later) for later in claimed[n:]]
                        break
                    begun += 1
                    outcome = self._run_in_batch(job, ctx)
                    if isinstance(outcome, Outcome):
                        self._count(run, outcome)
                        continue
                    if not decided:
                        first_at = time.monotonic()
                    decided.append(outcome)
                    if time.monotonic() - first_at >= FLUSH_WINDOW_S:
                        self._write_many(decided, run)
                        decided = []
                tried += len(wanted)
                pace = (time.monotonic() - started) / tried
                size = max(1, int((deadline - time.monotonic()) / pace))
            self._write_many(decided, run)
        finally:
            for job in held:
                self.leases.release(job.id)
        run.passed_on += rest
        return run

    def _run_in_batch(self, job: Claimed, ctx: JobContext) -> Finish | Outcome:
        if ctx.lease_lost:
            return Outcome.ABANDONED
        if ctx.cancel_requested:
            return self._cancelled(job, "cancel requested before it started")
        return self._run(job, ctx)

    @staticmethod
    def _count(run: BatchRun, outcome: Outcome, n: int = 1) -> None:
        run.outcomes[outcome.value] = run.outcomes.get(outcome.value, 0) + n

    def _context(self, claimed: Claimed) -> JobContext:
        return JobContext(
            job_id=claimed.id,
            org_id=claimed.org_id,
            store_id=claimed.store_id,
            job_type=claimed.job_type,
            payload=claimed.payload,
            attempt=claimed.attempt,
            max_attempts=claimed.max_attempts,
            settings=self.settings,
            database=self.database,
            redis=self.redis,
            worker_id=self.worker_id,
            leases=self.leases,
            flags=self.leases.hold(claimed.id),
        )

    def _claim_many(self, job_ids: list[uuid.UUID]) -> list[Claimed]:
        with self._fast.connect() as conn:
            rows = conn.execute(
                CLAIM_MANY,
                {
                    "ids": [str(i) for i in job_ids],
                    "worker": self.worker_id,
                    "lease": self.settings.lease_s,
                },
            ).all()
        by_id = {row.id: row for row in rows}
        # Run in the message's order (the dispatcher's order: priority, then age).
        return [_claimed(by_id[i]) for i in job_ids if i in by_id]

    def _claim(self, job_id: uuid.UUID) -> Claimed | None:
        return self.claims.submit(job_id)

    def _claim_each(self, job_ids: Sequence[uuid.UUID]) -> list[Claimed | None]:
        """One statement claiming each of ``job_ids``; an id given twice (two deliveries of
        one message at once) is claimed for the first of them only."""
        with self._fast.connect() as conn:
            rows = conn.execute(
                CLAIM_EACH,
                {
                    "ids": sorted({str(i) for i in job_ids}),
                    "worker": self.worker_id,
                    "lease": self.settings.lease_s,
                },
            ).all()
        by_id = {row.id: row for row in rows}
        answers: list[Claimed | None] = []
        for job_id in job_ids:
            row = by_id.pop(job_id, None)
            answers.append(None if row is None else _claimed(row))
        return answers

    def _run(self, job: Claimed, ctx: JobContext) -> Finish | Outcome:
        """Run the job's handler with the job bound to the log context (``fusion.logs``), and
        log the outcome decided in one line (a failure or an abandoned attempt as a warning)."""
        with logs.bound(
            job_id=job.id,
            job_type=job.job_type,
            org_id=job.org_id,
            store_id=job.store_id,
            attempt=job.attempt,
        ):
            telemetry.JOB_QUEUE_WAIT_SECONDS.observe(job.waited_s, job.job_type, job.queue)
            started = time.perf_counter()
            decided = self._decide(job, ctx)
            ran_s = time.perf_counter() - started
            outcome = decided if isinstance(decided, Outcome) else None
            status = decided.status.value if isinstance(decided, Finish) else None
            label = decided.value if isinstance(decided, Outcome) else decided.outcome.value
            telemetry.JOB_RUN_SECONDS.observe(ran_s, job.job_type, job.queue, label)
            failed = status == JobStatus.FAILED.value or outcome is Outcome.ABANDONED
            level = logging.WARNING if failed else logging.INFO
            log.log(
                level,
                "job %s %s: %s",
                job.job_type,
                job.id,
                decided.message if isinstance(decided, Finish) else decided.value,
                extra={"duration_ms": round(ran_s * 1000, 1)},
            )
            return decided

    def _decide(self, job: Claimed, ctx: JobContext) -> Finish | Outcome:
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

    # Outcomes: decided here, written by _write_outcomes / _write_many, each one conditional on this
    # worker still holding this attempt.

    def _complete(self, job: Claimed, result: dict[str, Any] | None) -> Finish:
        return Finish(
            job=job,
            status=JobStatus.COMPLETED,
            message="completed",
            level=LogLevel.INFO,
            outcome=Outcome.COMPLETED,
            result=result,
            set_result=True,
            finished_at=_now(),
        )

    def _fail(self, job: Claimed, message: str, *, prefix: str = "failed") -> Finish:
        return Finish(
            job=job,
            status=JobStatus.FAILED,
            message=f"{prefix}: {message}",
            level=LogLevel.ERROR,
            outcome=Outcome.FAILED,
            error=message,
            finished_at=_now(),
        )

    def _cancelled(self, job: Claimed, message: str) -> Finish:
        return Finish(
            job=job,
            status=JobStatus.CANCELLED,
            message=f"cancelled: {message}",
            level=LogLevel.WARNING,
            outcome=Outcome.CANCELLED,
            finished_at=_now(),
        )

    def _retry(self, job: Claimed, exc: Exception) -> Finish:
        message = _describe(exc)
        if job.attempt >= job.max_attempts:
            return self._fail(job, message, prefix=f"failed for good after {job.attempt} attempts")
        retry_after = getattr(exc, "retry_after_s", None)
        delay = (
            float(retry_after)
            if retry_after is not None
            else backoff_s(job.attempt, self.settings.retry_ladder_s)
        )
        at = _now() + timedelta(seconds=delay)
        return Finish(
            job=job,
            status=JobStatus.PENDING,
            message=f"attempt {job.attempt} of {job.max_attempts} failed: {message}; "
            f"retry at {at.isoformat()}",
            level=LogLevel.WARNING,
            outcome=Outcome.RETRY,
            error=message,
            scheduled_at=at,
            data={"retry_in_s": round(delay, 3)},
        )

    def _rate_limited(self, job: Claimed, exc: RateLimited) -> Finish:
        delay = max(float(exc.retry_after_s), 0.0)
        at = _now() + timedelta(seconds=delay)
        # The platform said "not now", not "failed": this try does not count (refund).
        return Finish(
            job=job,
            status=JobStatus.PENDING,
            message=f"rate limited; rescheduled for {at.isoformat()} (attempt not counted)",
            level=LogLevel.INFO,
            outcome=Outcome.RESCHEDULED,
            scheduled_at=at,
            refund=1,
            data={"retry_in_s": round(delay, 3)},
        )

    def _pass_on(self, job: Claimed) -> Finish:
        # Published again by the caller right after the write, hence dispatched now.
        return Finish(
            job=job,
            status=JobStatus.PENDING,
            message="not started within its batch's time slice; back to pending "
            "(attempt not counted)",
            level=LogLevel.INFO,
            outcome=Outcome.PASSED_ON,
            scheduled_at=_now(),
            refund=1,
            redispatched=True,
        )

    def _with_eta(self, f: Finish) -> Finish:
        """``f``, to be published again once written if it is rescheduled for within
        ``dispatch.NEAR_S``: its new due time as the message's ETA, so it starts on time
        rather than at the next sweep (a sweep that sends it again as well makes a message
        that claims nothing)."""
        at = f.scheduled_at
        if (
            at is not None
            and f.status is JobStatus.PENDING
            and not f.redispatched
            and dispatch.installed() is not None
            and dispatch.is_near(at, _now())
        ):
            return replace(f, redispatched=True, eta=at)
        return f

    def _write_outcomes(self, decided: Sequence[Finish]) -> list[bool]:
        """The writer's one statement for ``decided`` under the (worker, attempt) guard; then
        their leases released and the retries due soon published. Whether each was written
        (False: this worker no longer holds that attempt). If Postgres stays away past the
        worker's patience, the leases are released all the same: the reaper gives the jobs
        back once they expire."""
        try:
            written = self._patiently(lambda: self._finish(decided))
        except SQLAlchemyError:
            log.error(
                "%d outcome(s) not written (database unreachable): their jobs run again once "
                "their leases expire",
                len(decided),
            )
            raise
        finally:
            for f in decided:
                self.leases.release(f.job.id)
        for f in decided:
            if f.job.id not in written:
                log.warning(
                    "job %s: attempt %s was taken over before it finished", f.job.id, f.job.attempt
                )
            elif f.eta is not None:
                lane = lanes.lane_for(priority=f.job.priority, backlog=0)
                dispatch.publish_now([(f.job.id, f.job.queue)], lane, eta=f.eta)
        return [f.job.id in written for f in decided]

    def _finish(self, decided: Sequence[Finish]) -> set[uuid.UUID]:
        outcomes = json.dumps([f.row() for f in decided])
        with self._fast.connect() as conn:
            rows = conn.execute(FINISH_MANY, {"worker": self.worker_id, "outcomes": outcomes})
            return {row.id for row in rows}

    def _write_many(self, decided: list[Finish], run: BatchRun) -> None:
        """Write ``decided`` in one statement; count each outcome in ``run`` (ABANDONED for a
        job this worker no longer holds in that attempt)."""
        if not decided:
            return
        written = self._patiently(lambda: self._finish(decided))
        for f in decided:
            outcome = f.outcome if f.job.id in written else Outcome.ABANDONED
            if outcome is Outcome.ABANDONED:
                log.warning(
                    "job %s: attempt %s was taken over before it finished", f.job.id, f.job.attempt
                )
            elif outcome is Outcome.PASSED_ON:
                run.passed_on.append(f.job.id)
            self._count(run, outcome)

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


def _claimed(row: Any) -> Claimed:
    waited = (
        (row.claimed_at - row.scheduled_at).total_seconds()
        if row.claimed_at is not None and row.scheduled_at is not None
        else 0.0
    )
    return Claimed(
        id=row.id,
        org_id=row.org_id,
        store_id=row.store_id,
        job_type=row.job_type,
        payload=dict(row.payload or {}),
        attempt=row.attempts,
        max_attempts=row.max_attempts,
        queue=row.queue,
        waited_s=max(waited, 0.0),
        priority=int(row.priority or 0),
    )


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


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
