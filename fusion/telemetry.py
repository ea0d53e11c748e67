"""Counters, histograms and heartbeats that hub processes keep in Redis for ``/metrics``.

Jobs run in worker processes, webhooks arrive in API processes, and any of them may restart
at any time; what they count is kept in Redis (one hash per series, ``HINCRBY`` per label
set, as the rate-limit waits are, ``fusion.ratelimit.waits``) and rendered by the API's
collector (``fusion.metrics``). So every API process serves the same figures, and a counter
outlives the process that counted it: it resets only when Redis loses its data (a restart
without persistence, a flush), which ``rate()`` reads as an ordinary counter reset.

The Redis client is installed once per process (:func:`install`: the worker runtime, the
API app); until then, and whenever Redis is down, recording does nothing. Recording never
raises: a metric must not fail the job, the delivery or the movement it counts.

Histogram observations (two per job attempt) are not a Redis round trip each: they are summed
in memory by hash field and written every ``FLUSH_S`` by a daemon thread (and at exit), in
one MULTI/EXEC, so a worker thread never waits on Redis to finish a job. A bench profile of
no-op jobs found two thirds of a worker's time in those round trips before. The price: a
scrape sees an observation up to ``FLUSH_S`` late, and a process killed outright (SIGKILL)
loses at most its last ``FLUSH_S`` of observations. Counters stay one round trip each: they
count rarer things (webhooks, pushes, throttles) whose callers already pay a network call.
"""

from __future__ import annotations

import atexit
import bisect
import functools
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

PREFIX = "fusion:metrics:"
WORKER_HEARTBEAT_KEY = f"{PREFIX}worker_heartbeat"
BEAT_HEARTBEAT_KEY = f"{PREFIX}beat_heartbeat"
HEARTBEAT_S = 15.0
# How long a histogram observation may wait in memory before it is written to Redis.
FLUSH_S = 1.0
# Counts kept on a session until its transaction commits (dropped if it rolls back).
_PENDING = "fusion_telemetry_pending"

_client: Any = None


def install(redis_client: Any) -> None:
    """Record into ``redis_client`` from now on in this process (None: record nothing)."""
    global _client
    _client = redis_client


def installed() -> Any:
    return _client


def _run(commands: Any) -> None:
    client = _client
    if client is None:
        return
    try:
        pipe = client.pipeline()  # MULTI/EXEC: a scrape never sees half an observation
        commands(pipe)
        pipe.execute()
    except Exception:
        log.debug("metric not recorded (redis unavailable)")


def field_of(values: Sequence[str]) -> str:
    """The hash field of one label set (a JSON list of the label values)."""
    return json.dumps([str(v) for v in values])


@dataclass(frozen=True)
class Counter:
    """A counter series ``name`` + ``_total`` with ``labels``, kept in the hash ``key``."""

    name: str
    help: str
    labels: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{PREFIX}{self.name}"

    def inc(self, *values: object, n: int = 1) -> None:
        """Add ``n`` to the label set ``values`` now (one value per label, in order)."""
        if n <= 0 or len(values) != len(self.labels):
            return
        fld = field_of([str(v) for v in values])
        _run(lambda pipe: pipe.hincrby(self.key, fld, n))

    def inc_on_commit(self, session: Session, *values: object, n: int = 1) -> None:
        """Add ``n`` once ``session``'s transaction commits; nothing if it rolls back (what
        is counted is what happened, not what was tried)."""
        if n > 0:
            session.info.setdefault(_PENDING, []).append((self, values, n))


@dataclass(frozen=True)
class Histogram:
    """A histogram series with ``labels`` and upper ``buckets`` (+Inf is implied), kept in
    the hash ``key``: one field per label set and bucket (``[*values, "le", bound]``, the
    bucket the value falls in, not cumulative), one for the sum and one for the count."""

    name: str
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = field(default=())

    @property
    def key(self) -> str:
        return f"{PREFIX}{self.name}"

    def observe(self, seconds: float, *values: object) -> None:
        """Count one observation of ``seconds`` (below 0 counts as 0) for ``values``."""
        if len(values) != len(self.labels):
            return
        seconds = max(float(seconds), 0.0)
        at = bisect.bisect_left(self.buckets, seconds)
        bound = "+Inf" if at == len(self.buckets) else repr(self.buckets[at])
        bucket, count, total = _histogram_fields(tuple(str(v) for v in values), bound)
        _pending.add(
            counts=((self.key, bucket), (self.key, count)), sum_=((self.key, total), seconds)
        )


@functools.lru_cache(maxsize=4096)
def _histogram_fields(labels: tuple[str, ...], bound: str) -> tuple[str, str, str]:
    """The bucket, count and sum fields of one label set (cached: a worker observes the same
    few label sets on every job)."""
    return (
        field_of([*labels, "le", bound]),
        field_of([*labels, "count"]),
        field_of([*labels, "sum"]),
    )


class _Pending:
    """This process's histogram observations not yet in Redis, summed by (key, field), and
    the daemon thread that writes them every ``FLUSH_S``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}
        self._sums: dict[tuple[str, str], float] = {}
        self._pid = 0  # the process whose flusher runs: a forked child starts its own

    def add(
        self, *, counts: Sequence[tuple[str, str]], sum_: tuple[tuple[str, str], float]
    ) -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._start()
            for at in counts:
                self._counts[at] = self._counts.get(at, 0) + 1
            at, seconds = sum_
            self._sums[at] = self._sums.get(at, 0.0) + seconds

    def flush(self) -> None:
        """Write what is pending in one MULTI/EXEC (a scrape never sees half of it); lost,
        like any recording, if Redis is unreachable."""
        with self._lock:
            counts, self._counts = self._counts, {}
            sums, self._sums = self._sums, {}
        if not counts and not sums:
            return

        def commands(pipe: Any) -> None:
            for (key, fld), n in counts.items():
                pipe.hincrby(key, fld, n)
            for (key, fld), seconds in sums.items():
                pipe.hincrbyfloat(key, fld, seconds)

        _run(commands)

    def _start(self) -> None:
        # Called with the lock held. A forked child drops what its parent had pending (the
        # parent writes it) and flushes its own from a thread of its own.
        self._pid = os.getpid()
        self._counts, self._sums = {}, {}
        threading.Thread(target=self._loop, name="fusion-telemetry-flush", daemon=True).start()

    def _loop(self) -> None:
        while True:
            time.sleep(FLUSH_S)
            self.flush()


_pending = _Pending()
atexit.register(_pending.flush)


def flush() -> None:
    """Write this process's pending histogram observations to Redis now."""
    _pending.flush()


JOB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
WAIT_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)

JOB_RUN_SECONDS = Histogram(
    "fusion_job_run_seconds",
    "Run time of job attempts (the handler, claim to outcome decided), by outcome.",
    ("job_type", "queue", "outcome"),
    JOB_BUCKETS,
)
JOB_QUEUE_WAIT_SECONDS = Histogram(
    "fusion_job_queue_wait_seconds",
    "Time from a job being due (scheduled_at) to a worker claiming it.",
    ("job_type", "queue"),
    WAIT_BUCKETS,
)
STORE_PUSHES = Counter(
    "fusion_store_pushes",
    "Stock pushes to a store's platform that it accepted (bulk or per item).",
    ("store_id", "platform"),
)
STORE_THROTTLES = Counter(
    "fusion_store_throttles",
    "Calls to a store throttled: the platform answered 429, or the store's rate-limit bucket "
    "was too short for a brief wait.",
    ("store_id", "platform"),
)
WEBHOOK_DELIVERIES = Counter(
    "fusion_webhook_deliveries",
    "Webhook deliveries received, by outcome (accepted, ignored, duplicate, refused, malformed).",
    ("platform", "outcome"),
)
ORDERS_INGESTED = Counter(
    "fusion_orders_ingested", "Orders stored for the first time (webhook or pull).", ("platform",)
)
ORDER_LINES_UNKNOWN_SKU = Counter(
    "fusion_order_lines_unknown_sku",
    "Order lines whose SKU the hub does not know (no stock taken for them).",
    ("platform",),
)
STOCK_HIT_ZERO = Counter(
    "fusion_stock_hit_zero", "Stock movements that took a SKU's available quantity to 0."
)

COUNTERS = (
    STORE_PUSHES,
    STORE_THROTTLES,
    WEBHOOK_DELIVERIES,
    ORDERS_INGESTED,
    ORDER_LINES_UNKNOWN_SKU,
    STOCK_HIT_ZERO,
)
HISTOGRAMS = (JOB_RUN_SECONDS, JOB_QUEUE_WAIT_SECONDS)


@event.listens_for(Session, "after_commit")
def _count_committed(session: Session) -> None:
    for counter, values, n in session.info.pop(_PENDING, ()):
        counter.inc(*values, n=n)


@event.listens_for(Session, "after_rollback")
def _drop_rolled_back(session: Session) -> None:
    session.info.pop(_PENDING, None)


THROTTLE_LOG_PREFIX = f"{PREFIX}store_throttles_by_minute:"
THROTTLE_LOG_TTL_S = 8 * 24 * 3600  # the console's charts reach back 7 days


def _throttle_key(store_id: object, hour: int) -> str:
    return f"{THROTTLE_LOG_PREFIX}{store_id}:{hour}"


def store_throttled(store_id: object) -> None:
    """Count one throttle of ``store_id`` by minute: one hash per store and clock hour (a
    field per minute of it, so at most 60), each kept ``THROTTLE_LOG_TTL_S``. What the
    store's "throttles in the last hour" and the hourly charts read
    (:func:`throttle_minutes`); ``fusion_store_throttles`` is the running total."""
    now = time.time()
    hour = int(now // 3600) * 3600
    key, minute = _throttle_key(store_id, hour), str(int((now - hour) // 60))

    def commands(pipe: Any) -> None:
        pipe.hincrby(key, minute, 1)
        pipe.expire(key, THROTTLE_LOG_TTL_S)

    _run(commands)


def throttle_minutes(
    client: Any, store_ids: Sequence[object], *, since: float, until: float
) -> dict[str, dict[int, int]]:
    """Throttles per store (by id as text) and minute (its start, Unix time) with
    ``since <= minute < until``, from the hashes :func:`store_throttled` keeps. Raises the
    client's error when Redis cannot be read."""
    hours = range(int(since // 3600) * 3600, int(until // 3600) * 3600 + 1, 3600)
    keys = [(str(store), hour) for store in store_ids for hour in hours]
    found: dict[str, dict[int, int]] = {str(store): {} for store in store_ids}
    if not keys:
        return found
    pipe = client.pipeline(transaction=False)
    for store, hour in keys:
        pipe.hgetall(_throttle_key(store, hour))
    for (store, hour), fields in zip(keys, pipe.execute(), strict=True):
        for minute, count in fields.items():
            at = hour + 60 * int(minute)
            if since <= at < until:
                found[store][at] = int(count)
    return found


def worker_heartbeat(worker: str) -> None:
    """Note that worker ``worker`` (its Celery node name) is alive now."""
    _run(lambda pipe: pipe.hset(WORKER_HEARTBEAT_KEY, worker, repr(time.time())))


def beat_heartbeat() -> None:
    """Note that beat sent its schedule now (called as it sends each sweep)."""
    _run(lambda pipe: pipe.set(BEAT_HEARTBEAT_KEY, repr(time.time())))


class Heartbeat(threading.Thread):
    """Calls :func:`worker_heartbeat` for ``worker`` every ``every_s`` seconds until the
    process ends (a daemon thread): the process is up and reaches Redis."""

    def __init__(self, worker: str, *, every_s: float = HEARTBEAT_S) -> None:
        super().__init__(name="fusion-heartbeat", daemon=True)
        self.worker = worker
        self.every_s = every_s
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.is_set():
            worker_heartbeat(self.worker)
            self._stopping.wait(self.every_s)

    def stop(self) -> None:
        self._stopping.set()
