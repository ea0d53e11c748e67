"""Every Celery setting of the hub, in one module (``app.config_from_object("celeryconfig")``).

Postgres is the truth and Celery the transport (docs/jobs.md): a message carries a job id, the
claim in Postgres makes duplicates harmless, the sweeps make lost messages only a delay. The
settings below make the transport itself as safe as it can be (docs/jobs.md).

The knobs for operators and tests (``FUSION_SWEEP_INTERVAL_S``, reaper and dispatcher,
default 2; ``FUSION_DISPATCH_STALE_S``, default 30;
``FUSION_WORKER_SOFT_SHUTDOWN_S``, default 10; ``FUSION_ORDER_QUEUE_POLL_S``, default 60;
``FUSION_CHECK_INTERVAL_S``, notification checks and approval expiry, default 300) are
``Settings`` fields, read and checked in ``fusion/config.py`` like every other variable.

This module reads them through ``BrokerSettings``, which reads nothing else: Flower (which
loads this module and no other hub code) never holds the JWT secret, the encryption keys or
the database URLs, and never generates the dev secrets.
"""

from __future__ import annotations

from celery.schedules import crontab
from kombu import Queue

from fusion.config import BrokerSettings
from fusion.jobs.lanes import Lane
from fusion.jobs.queues import ALL_QUEUES, DEFAULT_QUEUE

RUN_JOB = "fusion.run_job"
RUN_JOBS = "fusion.run_jobs"  # a bulk lane message: several job ids, run one after another
DISPATCH_DUE = "fusion.sweep.dispatch_due"
REAP = "fusion.sweep.reap"
# Recurring work of other parts of the hub, sent by name so beat needs none of their code.
SYNC_INVENTORY = "fusion.inventory.sync_all_stores"
EXPIRE_APPROVALS = "fusion.approvals.expire"
RECONCILE_ORDERS = "fusion.orders.reconcile_all_stores"
CONSUME_ORDER_QUEUES = "fusion.orders.consume_order_queues"
PRUNE_JOBS = "fusion.jobs.prune_finished"
CHECK_NOTIFICATIONS = "fusion.notifications.check"


_settings = BrokerSettings.from_env()
SWEEP_INTERVAL_S = _settings.sweep_interval_s
DISPATCH_STALE_S = _settings.dispatch_stale_s
# How often every store's order notification queue (Amazon's SQS) is read; 0 turns it off.
ORDER_QUEUE_POLL_S = _settings.order_queue_poll_s
CHECK_INTERVAL_S = _settings.check_interval_s
LOG_FORMAT = _settings.log_format  # workers/app.py sets Celery's handlers up with it

broker_url = _settings.redis_url or "redis://127.0.0.1:6379/0"
broker_connection_retry_on_startup = True
broker_connection_max_retries = None  # keep trying through a broker restart
broker_transport_options = {
    # Unacknowledged messages in the worker's memory, not copied into Redis (no visibility
    # timeout): Postgres and the sweeps bring back what a killed worker held (workers/broker.py).
    "ack_emulation": False,
    # Lanes (fusion.jobs.lanes) are Redis priority lists; 0 is served first.
    "queue_order_strategy": "priority",
    "priority_steps": sorted({0, *(int(lane) for lane in Lane), 9}),
}

# Results live in the jobs table, not in Redis.
result_backend = None
task_ignore_result = True

task_serializer = "json"
accept_content = ["json"]
event_serializer = "json"

task_acks_late = True
task_reject_on_worker_lost = True
# Failures are the engine's business (it reschedules in Postgres); the message is done.
task_acks_on_failure = True
task_acks_on_timeout = True
worker_prefetch_multiplier = 1
worker_cancel_long_running_tasks_on_connection_loss = True
worker_soft_shutdown_timeout = _settings.worker_soft_shutdown_s
worker_enable_soft_shutdown_on_idle = True
worker_max_memory_per_child = 512_000  # KiB; prefork only, a guard against leaks

task_default_queue = DEFAULT_QUEUE
task_queues = [Queue(name, routing_key=name) for name in ALL_QUEUES]
task_create_missing_queues = False
# run_job is sent to its job's queue explicitly (the store's platform); the rest is default.
task_routes = {
    DISPATCH_DUE: {"queue": DEFAULT_QUEUE},
    REAP: {"queue": DEFAULT_QUEUE},
    SYNC_INVENTORY: {"queue": DEFAULT_QUEUE},
    EXPIRE_APPROVALS: {"queue": DEFAULT_QUEUE},
    RECONCILE_ORDERS: {"queue": DEFAULT_QUEUE},
    CONSUME_ORDER_QUEUES: {"queue": DEFAULT_QUEUE},
    PRUNE_JOBS: {"queue": DEFAULT_QUEUE},
    CHECK_NOTIFICATIONS: {"queue": DEFAULT_QUEUE},
}

_sweep = {"queue": DEFAULT_QUEUE, "priority": int(Lane.URGENT), "expires": SWEEP_INTERVAL_S * 2}
beat_schedule = {
    "reap-expired-leases": {"task": REAP, "schedule": SWEEP_INTERVAL_S, "options": _sweep},
    "dispatch-due-jobs": {"task": DISPATCH_DUE, "schedule": SWEEP_INTERVAL_S, "options": _sweep},
    "sync-inventory-every-store": {
        "task": SYNC_INVENTORY,
        "schedule": crontab(minute="*/15"),
        "options": {"queue": DEFAULT_QUEUE, "expires": 15 * 60},
    },
    # Offset from the inventory sync so the two fan-outs do not land on the same minute.
    "reconcile-orders-every-store": {
        "task": RECONCILE_ORDERS,
        "schedule": crontab(minute="7-59/15"),
        "options": {"queue": DEFAULT_QUEUE, "expires": 15 * 60},
    },
    "prune-finished-jobs": {
        "task": PRUNE_JOBS,
        "schedule": crontab(minute=41),
        "options": {"queue": DEFAULT_QUEUE, "expires": 60 * 60},
    },
    # Late or failing stores, throttling, failed jobs (fusion/notifications/checks.py).
    "check-notification-conditions": {
        "task": CHECK_NOTIFICATIONS,
        "schedule": CHECK_INTERVAL_S,
        "options": {"queue": DEFAULT_QUEUE, "expires": CHECK_INTERVAL_S},
    },
    "expire-approvals": {
        "task": EXPIRE_APPROVALS,
        "schedule": CHECK_INTERVAL_S,
        "options": {"queue": DEFAULT_QUEUE, "expires": CHECK_INTERVAL_S},
    },
}
if ORDER_QUEUE_POLL_S > 0:
    beat_schedule["consume-order-queues"] = {
        "task": CONSUME_ORDER_QUEUES,
        "schedule": ORDER_QUEUE_POLL_S,
        "options": {"queue": DEFAULT_QUEUE, "expires": ORDER_QUEUE_POLL_S},
    }
timezone = "UTC"
enable_utc = True

# Only the beat holding the lease in Redis sends the schedule; a second beat stands by
# (workers/beat.py, fusion/runtime/beat.py).
beat_scheduler = "workers.beat:SingleBeatScheduler"

# kombu's Redis transport with the in-memory acknowledgements, the shared client and the
# reconnect fix of workers/broker.py (redis:// only).
if broker_url.startswith("redis://"):
    broker_transport = "workers.broker:Transport"
