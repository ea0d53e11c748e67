"""Prometheus figures for the hub: requests, jobs by status and queue, queue depth, job run
time and rate-limit waits.

Job figures are read from Postgres (the truth) through aggregate-only database functions, so
every API process reports the same numbers; a process reads them at most once per
``FUSION_METRICS_CACHE_S`` and answers scrapes in between from what it read. Rate-limit
waits happen in worker processes; they are counted in Redis (``fusion.ratelimit.waits``) and
read back here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text

from fusion.db.session import Database
from fusion.jobs.models import JobStatus
from fusion.jobs.queues import ALL_QUEUES
from fusion.ratelimit.waits import RATE_LIMIT_SECONDS_KEY, RATE_LIMIT_WAITS_KEY

log = logging.getLogger(__name__)
DURATION_WINDOW_S = 3600


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
            yield from self._jobs()
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

    def _jobs(self) -> Iterator[Metric]:
        with self.database.system_session() as session:
            counts = session.execute(
                text("SELECT queue, status, jobs FROM metrics_job_counts()")
            ).all()
            durations = session.execute(
                text(
                    "SELECT queue, status, finished, seconds_sum, seconds_max "
                    "FROM metrics_job_durations(:w)"
                ),
                {"w": DURATION_WINDOW_S},
            ).all()
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
        count = GaugeMetricFamily(
            "fusion_job_duration_seconds_count",
            f"Jobs finished in the last {DURATION_WINDOW_S}s.",
            labels=["queue", "status"],
        )
        total = GaugeMetricFamily(
            "fusion_job_duration_seconds_sum",
            f"Run time of jobs finished in the last {DURATION_WINDOW_S}s.",
            labels=["queue", "status"],
        )
        longest = GaugeMetricFamily(
            "fusion_job_duration_seconds_max",
            f"Longest run time in the last {DURATION_WINDOW_S}s.",
            labels=["queue", "status"],
        )
        for queue, status, finished, seconds_sum, seconds_max in durations:
            count.add_metric([queue, status], finished)
            total.add_metric([queue, status], seconds_sum)
            longest.add_metric([queue, status], seconds_max)
        yield from (jobs, depth, count, total, longest)

    def _redis(self) -> Iterator[Metric]:
        broker = GaugeMetricFamily(
            "fusion_broker_queue_depth_messages",
            "Messages waiting in each Celery queue.",
            labels=["queue"],
        )
        for queue in ALL_QUEUES:
            broker.add_metric([queue], int(self.redis.llen(queue)))
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
        for platform, n in sorted(self.redis.hgetall(RATE_LIMIT_WAITS_KEY).items()):
            waits.add_metric([_text(platform)], float(n))
        for platform, s in sorted(self.redis.hgetall(RATE_LIMIT_SECONDS_KEY).items()):
            seconds.add_metric([_text(platform)], float(s))
        yield from (broker, waits, seconds)


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
