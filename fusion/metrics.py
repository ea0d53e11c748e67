"""Prometheus figures for the hub (every series: docs/operations.md).

Gauges of state are read from Postgres (the truth) through narrow database functions: jobs
by status and queue, per active store when its inventory was last synced and its orders
last pulled, approvals pending. Whatever happens in a process (a job run, a webhook, a push,
a stock movement, a rate-limit wait, a heartbeat) is counted in Redis by that process
(``fusion.telemetry``, ``fusion.ratelimit.waits``) and rendered here, job run time and queue
wait as real histograms. So every API process reports the same numbers; a process reads its
sources at most once per ``FUSION_METRICS_CACHE_S`` and answers scrapes in between from what
it read.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import text

from fusion import telemetry
from fusion.db.session import Database
from fusion.jobs.models import JobStatus
from fusion.jobs.queues import ALL_QUEUES
from fusion.ratelimit.waits import RATE_LIMIT_SECONDS_KEY, RATE_LIMIT_WAITS_KEY

log = logging.getLogger(__name__)
# A worker not heard of for this long is forgotten (its field dropped): a worker retired
# or renamed must not keep an alert firing forever.
FORGET_WORKER_S = 24 * 3600


class HubCollector(Collector):
    """Reads job and queue figures at scrape time, at most once per ``cache_s`` seconds
    (scrapes in between get the figures last read; concurrent scrapes wait for one read). A
    source that is down is skipped (and ``fusion_metrics_source_up`` says so) rather than
    failing the whole scrape."""

    def __init__(self, database: Database, redis_client: Any, *, cache_s: float = 0) -> None:
        self.database = database
        self.redis = redis_client
        self.cache_s = cache_s
        self.reads = 0  # how many times the sources were read
        self._lock = threading.Lock()
        self._read_at = 0.0
        self._figures: list[Metric] | None = None

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = time.monotonic()
            if self._figures is None or now - self._read_at >= self.cache_s:
                self._figures = list(self._read())
                self._read_at = now
                self.reads += 1
            figures = self._figures
        yield from figures

    def _read(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "fusion_metrics_source_up", "Whether a source answered.", labels=["source"]
        )
        try:
            yield from self._postgres()
            up.add_metric(["database"], 1)
        except Exception:
            log.warning("metrics: database unavailable")
            up.add_metric(["database"], 0)
        try:
            yield from self._redis()
            up.add_metric(["broker"], 1)
        except Exception:
            log.warning("metrics: redis unavailable")
            up.add_metric(["broker"], 0)
        yield up

    def _postgres(self) -> Iterator[Metric]:
        with self.database.system_session() as session:
            counts = session.execute(
                text("SELECT queue, status, jobs FROM metrics_job_counts()")
            ).all()
            stores = session.execute(
                text(
                    "SELECT store_id, platform, last_synced_at, orders_pulled_at "
                    "FROM metrics_stores()"
                )
            ).all()
            approvals = session.execute(
                text("SELECT pending, oldest FROM metrics_approvals()")
            ).first()
        jobs = GaugeMetricFamily(
            "fusion_jobs", "Jobs by queue and status.", labels=["queue", "status"]
        )
        depth = GaugeMetricFamily(
            "fusion_queue_depth_jobs", "Pending jobs per queue (in Postgres).", labels=["queue"]
        )
        seen = {(q, s): n for q, s, n in counts}
        for queue in sorted({*ALL_QUEUES, *(q for q, _ in seen)}):
            for status in JobStatus:
                jobs.add_metric([queue, status.value], seen.get((queue, status.value), 0))
            depth.add_metric([queue], seen.get((queue, JobStatus.PENDING.value), 0))
        synced = GaugeMetricFamily(
            "fusion_store_last_inventory_sync_timestamp_seconds",
            "When an active store's inventory sync last completed (Unix time).",
            labels=["store_id", "platform"],
        )
        pulled = GaugeMetricFamily(
            "fusion_store_last_order_pull_timestamp_seconds",
            "When an active store's last successful order pull started (Unix time).",
            labels=["store_id", "platform"],
        )
        for store_id, platform, synced_at, pulled_at in stores:
            if synced_at is not None:
                synced.add_metric([str(store_id), platform], synced_at.timestamp())
            if pulled_at is not None:
                pulled.add_metric([str(store_id), platform], pulled_at.timestamp())
        pending = GaugeMetricFamily("fusion_approvals_pending", "Approvals waiting for a decision.")
        oldest = GaugeMetricFamily(
            "fusion_approvals_oldest_pending_timestamp_seconds",
            "When the oldest approval still pending was asked for (Unix time; absent if none).",
        )
        pending.add_metric([], approvals.pending if approvals else 0)
        if approvals is not None and approvals.oldest is not None:
            oldest.add_metric([], approvals.oldest.timestamp())
        yield from (jobs, depth, synced, pulled, pending, oldest)

    def _redis(self) -> Iterator[Metric]:
        pipe = self.redis.pipeline(transaction=False)
        for queue in ALL_QUEUES:
            pipe.llen(queue)
        pipe.hgetall(RATE_LIMIT_WAITS_KEY)
        pipe.hgetall(RATE_LIMIT_SECONDS_KEY)
        for series in (*telemetry.COUNTERS, *telemetry.HISTOGRAMS):
            pipe.hgetall(series.key)
        pipe.hgetall(telemetry.WORKER_HEARTBEAT_KEY)
        pipe.get(telemetry.BEAT_HEARTBEAT_KEY)
        answers = iter(pipe.execute())  # one round trip for every Redis-kept series
        broker = GaugeMetricFamily(
            "fusion_broker_queue_depth_messages",
            "Messages waiting in each Celery queue.",
            labels=["queue"],
        )
        for queue in ALL_QUEUES:
            broker.add_metric([queue], int(next(answers)))
        waits = CounterMetricFamily(
            "fusion_rate_limit_waits",
            "Times a job waited for a platform's rate limit.",
            labels=["platform"],
        )
        seconds = CounterMetricFamily(
            "fusion_rate_limit_wait_seconds",
            "Seconds jobs waited for a platform's rate limit.",
            labels=["platform"],
        )
        for platform, n in sorted(next(answers).items()):
            waits.add_metric([_text(platform)], float(n))
        for platform, s in sorted(next(answers).items()):
            seconds.add_metric([_text(platform)], float(s))
        yield from (broker, waits, seconds)
        for counter in telemetry.COUNTERS:
            yield _counter(counter, next(answers))
        for histogram in telemetry.HISTOGRAMS:
            yield _histogram(histogram, next(answers))
        yield from self._heartbeats(next(answers), next(answers))

    def _heartbeats(self, workers: dict[Any, Any], beat: Any) -> Iterator[Metric]:
        worker = GaugeMetricFamily(
            "fusion_worker_heartbeat_timestamp_seconds",
            "When a worker (by Celery node name) last said it was alive (Unix time).",
            labels=["worker"],
        )
        forgotten = []
        for name, at in sorted(workers.items()):
            if time.time() - float(at) > FORGET_WORKER_S:
                forgotten.append(name)
            else:
                worker.add_metric([_text(name)], float(at))
        if forgotten:
            self.redis.hdel(telemetry.WORKER_HEARTBEAT_KEY, *forgotten)
        scheduler = GaugeMetricFamily(
            "fusion_beat_heartbeat_timestamp_seconds",
            "When beat last sent a sweep (Unix time; absent if it never did).",
        )
        if beat is not None:
            scheduler.add_metric([], float(beat))
        yield from (worker, scheduler)


def _counter(counter: telemetry.Counter, fields: dict[Any, Any]) -> Metric:
    family = CounterMetricFamily(counter.name, counter.help, labels=list(counter.labels))
    for key, value in sorted((_text(k), v) for k, v in fields.items()):
        family.add_metric(json.loads(key), float(value))
    if not counter.labels and not fields:
        family.add_metric([], 0)  # a counter without labels is there from the start
    return family


def _histogram(histogram: telemetry.Histogram, fields: dict[Any, Any]) -> Metric:
    """The workers count each observation in the one bucket it falls in (and sum and count,
    in the same MULTI); here the buckets are made cumulative, as Prometheus expects."""
    width = len(histogram.labels)
    per_labels: dict[tuple[str, ...], dict[str, float]] = {}
    for key, value in fields.items():
        parts = json.loads(_text(key))
        labels, what = tuple(parts[:width]), parts[width:]
        slot = per_labels.setdefault(labels, {})
        name = what[1] if what[0] == "le" else what[0]
        slot[name] = float(value)
    family = HistogramMetricFamily(histogram.name, histogram.help, labels=list(histogram.labels))
    bounds = [*(repr(b) for b in histogram.buckets), "+Inf"]
    for labels, slot in sorted(per_labels.items()):
        running = 0.0
        buckets = []
        for bound in bounds:
            running += slot.get(bound, 0.0)
            buckets.append((bound, running))
        family.add_metric(list(labels), buckets, sum_value=slot.get("sum", 0.0))
    return family


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ApiMetrics:
    """The API process's own collectors, in a registry of their own (one per app)."""

    def __init__(self, database: Database, redis_client: Any, *, cache_s: float = 0) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "fusion_http_requests",
            "HTTP requests answered.",
            ["method", "endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "fusion_http_request_duration_seconds",
            "Time to answer HTTP requests.",
            ["method", "endpoint"],
            registry=self.registry,
        )
        self.hub = HubCollector(database, redis_client, cache_s=cache_s)
        self.registry.register(self.hub)
