"""The Celery app: ``celery -A workers.app worker`` / ``beat``. Tasks are thin wrappers.

``run_job`` claims and runs one job through ``fusion.jobs.engine``; the sweeps call
``fusion.jobs.sweeps``; the beat housekeeping tasks call ``fusion.jobs.recurring``,
``fusion.jobs.retention``, ``fusion.approvals.expiry`` and ``fusion.notifications.checks``.
Nothing here decides a retry: Celery never retries a task, the engine reschedules the job
in Postgres (delays live in ``scheduled_at``). Workers and beat note their heartbeats in
Redis for ``/metrics`` (``fusion.telemetry``).
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import redis
from celery import Celery
from celery.signals import (
    after_setup_logger,
    beat_init,
    before_task_publish,
    worker_ready,
    worker_shutdown,
)

import celeryconfig
from fusion import logs, telemetry
from fusion.approvals import expiry
from fusion.inventory.service import SYNC_INVENTORY_JOB
from fusion.jobs import retention, sweeps
from fusion.jobs.lanes import Lane
from fusion.jobs.recurring import enqueue_for_due_stores
from fusion.notifications import checks
from fusion.orders.service import RECONCILE_JOB
from fusion.security import redact
from fusion.webhooks.service import CONSUME_JOB, order_queue_stores
from workers.runtime import runtime, shutdown

log = logging.getLogger(__name__)

# The recurring processes whose lateness and failures notify (fusion.notifications.checks).
WATCHED = {"inventory_sync": SYNC_INVENTORY_JOB, "order_pull": RECONCILE_JOB}

# How long one bulk message may hold a worker thread before it passes the rest on.
BULK_SLICE_S = 0.5

app = Celery("fusion")
app.config_from_object(celeryconfig)

# Celery's two INFO lines about every task ("received", "succeeded in"): a job's own line (the
# engine's, with its org, type and outcome) and its job log say more, and the two cost a
# worker a tenth of its time on one-job messages. Celery's warnings and errors still show.
CELERY_TASK_LOGGERS = ("celery.worker.strategy", "celery.app.trace")

# The sweeps run every few seconds: beat's INFO line about sending each would drown everything
# else. Their own lines say when they did work.
QUIET_TASKS = (celeryconfig.REAP, celeryconfig.DISPATCH_DUE)


class QuietSweeps(logging.Filter):
    """Drops INFO-and-below records that name a sweep task; warnings and errors pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        message = record.getMessage()
        return not any(name in message for name in QUIET_TASKS)


@after_setup_logger.connect
def _set_up_logging(logger: logging.Logger, **_: object) -> None:
    """Celery's handlers (worker and beat) in ``FUSION_LOG_FORMAT``, with the job context,
    redaction, no per-task INFO lines and the quiet sweeps. (Before the worker builds its
    task strategies and tracers, which read their logger's level once.)"""
    logs.use(logger.handlers, celeryconfig.LOG_FORMAT)
    for name in CELERY_TASK_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    redact.install(logger)
    for handler in logger.handlers:
        handler.addFilter(QuietSweeps())


@worker_shutdown.connect
def _write_outcomes_at_shutdown(**_: object) -> None:
    """After a warm shutdown has let the running jobs end: their outcomes, handed to the
    engine's writer, are written before the process exits (a cold one loses them, and the
    reaper gives their jobs back)."""
    shutdown()


@app.task(name=celeryconfig.RUN_JOB, ignore_result=True)
def run_job(job_id: str) -> str:
    """Claim and run job ``job_id``; a malformed id is dropped (nothing could claim it)."""
    try:
        parsed = uuid.UUID(job_id)
    except (ValueError, TypeError):
        log.error("dropping a run_job message with a malformed id")
        return "malformed"
    return runtime(app).engine.execute(parsed).value


@app.task(name=celeryconfig.RUN_JOBS, ignore_result=True)
def run_jobs(job_ids: list[str], queue: str) -> dict[str, int]:
    """Claim the claimable ones of ``job_ids`` as they are needed and run them in turn (a bulk
    lane message); their outcomes are written before this returns (so before the ack). After
    ``BULK_SLICE_S`` the ids not yet claimed, and claimed jobs not yet started (back to
    pending), go on to the queue as two new messages (one if a single id), so no thread is
    held by a batch for long (a new job of another org waits for a free slot, not for a whole
    batch) and a slow batch spreads over more slots each slice. Malformed ids are dropped."""
    engine = runtime(app).engine
    parsed: list[uuid.UUID] = []
    for job_id in job_ids if isinstance(job_ids, list) else []:
        try:
            parsed.append(uuid.UUID(str(job_id)))
        except ValueError:
            log.error("dropping a malformed id from a run_jobs message")
    run = engine.execute_many(parsed, slice_s=BULK_SLICE_S)
    if rest := [str(i) for i in run.passed_on]:
        half = (len(rest) + 1) // 2
        with app.producer_or_acquire() as producer:
            for part in filter(None, (rest[:half], rest[half:])):
                app.send_task(
                    celeryconfig.RUN_JOBS,
                    args=[part, queue],
                    queue=queue,
                    routing_key=queue,
                    priority=int(Lane.BULK),
                    producer=producer,
                )
    return run.outcomes


@app.task(name=celeryconfig.REAP, ignore_result=True)
def reap() -> dict[str, int]:
    """Return expired leases to pending (or fail them); publish the rescued ones."""
    counts = sweeps.reap(runtime(app).database)
    if counts:
        log.info("reaped: %s", counts)
    return counts


@app.task(name=celeryconfig.DISPATCH_DUE, ignore_result=True)
def dispatch_due() -> int:
    """Publish due pending jobs whose message is missing or stale."""
    published = sweeps.dispatch_due(runtime(app).database, stale_s=celeryconfig.DISPATCH_STALE_S)
    if published:
        log.info("dispatched %d due job(s)", published)
    return published


@app.task(name=celeryconfig.SYNC_INVENTORY, ignore_result=True)
def sync_all_stores() -> dict[str, int]:
    """Enqueue this slot's sync_inventory job for every active store (beat, every 15 min)."""
    run = enqueue_for_due_stores(runtime(app).database, job_type=SYNC_INVENTORY_JOB)
    log.info(
        "inventory sync for slot %s: %d store(s) due, %d job(s) enqueued, %d org(s) failed",
        run.slot.isoformat(),
        run.due,
        run.enqueued,
        run.failed_orgs,
    )
    return {"due": run.due, "enqueued": run.enqueued, "failed_orgs": run.failed_orgs}


@app.task(name=celeryconfig.RECONCILE_ORDERS, ignore_result=True)
def reconcile_all_stores() -> dict[str, int]:
    """Enqueue this slot's reconcile_orders pull for every active store (beat, every 15 min):
    webhooks get lost, the pull finds what they missed."""
    run = enqueue_for_due_stores(runtime(app).database, job_type=RECONCILE_JOB)
    return {"due": run.due, "enqueued": run.enqueued, "failed_orgs": run.failed_orgs}


@app.task(name=celeryconfig.CONSUME_ORDER_QUEUES, ignore_result=True)
def consume_order_queues() -> dict[str, int]:
    """The safety net of the order queue listeners (beat, every ``FUSION_ORDER_QUEUE_POLL_S``):
    enqueue a consume_order_queue listener for every store with an order notification queue
    that has none pending or running (its chain of listeners broke: failed for good, or the
    store was resumed). Amazon sends its order events only there."""
    run = enqueue_for_due_stores(
        runtime(app).database,
        job_type=CONSUME_JOB,
        every=timedelta(seconds=max(1, celeryconfig.ORDER_QUEUE_POLL_S)),
        stores=order_queue_stores(),
    )
    return {"due": run.due, "enqueued": run.enqueued, "failed_orgs": run.failed_orgs}


@app.task(name=celeryconfig.PRUNE_JOBS, ignore_result=True)
def prune_finished_jobs() -> int:
    """Delete finished jobs past their retention (beat, hourly)."""
    hub = runtime(app)
    deleted = retention.prune_finished_jobs(hub.database, hub.settings)
    if deleted:
        log.info("pruned %d finished job(s)", deleted)
    return deleted


@app.task(name=celeryconfig.EXPIRE_APPROVALS, ignore_result=True)
def expire_approvals() -> int:
    """Announce the pending approvals about to expire, then mark those past their expiry as
    expired (beat, every 5 min)."""
    hub = runtime(app)
    announced = expiry.announce_expiring(hub.database, hub.settings)
    if announced:
        log.info("announced %d approval(s) about to expire", announced)
    expired = expiry.expire_due(hub.database)
    if expired:
        log.info("expired %d approval(s)", len(expired))
    return len(expired)


@app.task(name=celeryconfig.CHECK_NOTIFICATIONS, ignore_result=True)
def check_notifications() -> dict[str, int]:
    """Queue the notifications of late or failing stores, throttling and failed jobs (beat,
    every 5 min); each condition notifies a channel once per FUSION_NOTIFY_REPEAT_S."""
    hub = runtime(app)
    run = checks.run_checks(hub.database, hub.settings, processes=WATCHED, redis=hub.redis)
    return {**run.queued, "failed_orgs": run.failed_orgs}


@beat_init.connect
def _beat_telemetry(**_: object) -> None:
    # Beat holds no runtime: its heartbeat goes to the broker, which is the hub's Redis.
    # A heartbeat must never hold up the schedule: short timeouts, and it never raises.
    telemetry.install(redis.Redis.from_url(app.conf.broker_url, socket_timeout=2.0))


@before_task_publish.connect
def _beat_heartbeat(sender: object = None, **_: object) -> None:
    # Only beat sends the sweeps, every FUSION_SWEEP_INTERVAL_S: each one sent proves its
    # schedule is running (and, with several beats, that the one sending is alive).
    if sender in QUIET_TASKS:
        telemetry.beat_heartbeat()


@worker_ready.connect
def _warm_up(sender: object = None, **_: object) -> None:
    # Connect and start the lease keeper before the first message, not during it.
    runtime(app)
    # Under the Celery node name (stable across restarts), not the engine's per-process id.
    name = str(getattr(sender, "hostname", None) or runtime(app).engine.worker_id)
    telemetry.Heartbeat(name).start()
