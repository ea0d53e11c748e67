"""Benchmark: the job engine against raw Celery, on the same broker, pool and concurrency.

    .venv/bin/python bench/engine.py [--jobs 5000] [--workers 2] [--concurrency 8] [--rounds 3]
        [--out bench/results/engine.json]

Starts what it needs (embedded Postgres and Redis under a temp home unless FUSION_DATABASE_URL
and FUSION_REDIS_URL are set), real ``celery worker`` processes (threads pool) and beat, and
measures, in one run:

- engine_jobs_per_s: N no-op jobs enqueued (enqueue_many, 1,000 per call, so the bulk lane:
  up to 16 ids per Celery message) and run through the whole engine (publish → claim → run →
  complete, job_logs for every transition, each job claimed and finished on its own), from
  the first enqueue to the last completion; engine_jobs_per_s_one_message_per_job is the
  same with one Celery message per job (bulk chunking off);
- celery_tasks_per_s: N no-op Celery tasks (task_acks_late, prefetch 1) sent one by one to the
  same broker and drained by the same number of worker processes and threads;
- dramatiq_jobs_per_s: N no-op Dramatiq messages (bench/dramatiq_peer.py, the ``bench`` extra)
  sent one by one to the same Redis and drained by ``dramatiq`` with the same processes and
  threads: the fastest Python job queue measured here, which keeps no durable record;
- start_latency_ms_p50/p99: enqueue-to-start of 200 jobs enqueued one at a time on idle workers
  (started_at - created_at, both Postgres clocks);
- rescue_s: a worker SIGKILLed mid-job with default lease and sweep settings; seconds until
  the job starts again on another worker;
- fairness_p95_s: org A has a 10,000-job backlog on the queue; p95 start latency of 50 jobs
  org B enqueues one at a time meanwhile.

The four throughput figures are measured ``--rounds`` times, interleaved (raw Celery,
Dramatiq, engine, engine one message per job, then again), each round on freshly started
workers; the medians are reported (every round's figure is kept in the JSON too), so a noisy
moment on the machine does not decide the ratio. The load average is kept with the figures.

Prints every figure and writes them to bench/results/engine.json (or ``--out``) with the
command. This module
is also imported by the benchmark's workers (PYTHONPATH=bench): it registers ``bench.noop`` and
``bench.sleep`` and defines ``raw_app`` for the raw Celery side.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from celery import Celery
from marshmallow import Schema, fields

import boot
import celeryconfig
import schemas.jobs
from fusion.errors import FusionError
from fusion.jobs.context import JobContext
from fusion.jobs.registry import JobType, register
from fusion.runtime import extras

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "engine.json"


def _noop(ctx: JobContext) -> None:
    return None


def _sleep(ctx: JobContext) -> None:
    deadline = time.monotonic() + float(ctx.payload.get("s", 0))
    while time.monotonic() < deadline:
        time.sleep(min(0.05, max(deadline - time.monotonic(), 0)))


class _NoPayload(Schema):
    pass


class _SleepPayload(Schema):
    s = fields.Float()


for _job_type, _schema in (
    (JobType("bench.noop", _noop, needs_store=False), _NoPayload),
    (JobType("bench.sleep", _sleep, needs_store=False), _SleepPayload),
):
    register(_job_type)
    schemas.jobs.register_payload_schema(_job_type.name, _schema)

# The raw side: the same broker and transport settings, a task that only counts itself, and
# Celery's usual at-least-once on Redis: acks_late with kombu's ack emulation (each delivered
# message copied into Redis until acknowledged). The hub turns the emulation off because
# Postgres holds its jobs (workers/broker.py); a raw task has nothing else to come back from.
raw_app = Celery("bench-raw")
raw_app.config_from_object(celeryconfig)
raw_app.conf.broker_transport_options = {
    **celeryconfig.broker_transport_options,
    "ack_emulation": True,
}


@raw_app.task(name="bench.raw_noop", ignore_result=True)
def raw_noop() -> None:
    import redis

    client = _raw_redis()
    client.pipeline().incr("bench:raw:done").set("bench:raw:last", time.time()).execute()
    del redis


_client: Any = None


def _raw_redis() -> Any:
    global _client
    if _client is None:
        import redis

        _client = redis.Redis.from_url(raw_app.conf.broker_url)
    return _client


# ---------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="fusion-bench-"))
        self.tmp.chmod(0o755)  # the embedded Postgres may run as another user
        self.procs: list[subprocess.Popen[bytes]] = []
        self.servers: Any = None

    # servers and processes

    def start_servers(self) -> None:
        from fusion.config import Settings
        from fusion.db import migrate
        from fusion.db.session import Database, make_engine

        base = Settings.from_env({**os.environ, "FUSION_HOME": str(self.tmp / "home")})
        if base.database_url is None or base.redis_url is None:
            from fusion.runtime.embedded import EmbeddedServers

            self.servers = EmbeddedServers(base)
            self.settings = self.servers.start()
        else:
            self.settings = base
        migrate.upgrade(self.settings)
        assert self.settings.database_url and self.settings.app_database_url
        self.admin = make_engine(self.settings.database_url, pool_size=2)
        self.database = Database(self.settings.app_database_url)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("FUSION_")},
            "FUSION_HOME": str(self.settings.home),
            "FUSION_DATABASE_URL": self.settings.database_url,
            "FUSION_APP_DATABASE_URL": self.settings.app_database_url,
            "FUSION_REDIS_URL": self.settings.redis_url or "",
            "FUSION_JOB_MODULES": "engine",
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "bench")]),
            "FUSION_WORKER_SOFT_SHUTDOWN_S": "0",
        }

    def celery(self, app: str, *args: str, log: str, **env: str) -> subprocess.Popen[bytes]:
        out = (self.tmp / log).open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", app, *args],
            cwd=ROOT,
            env={**self.env, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def workers(self, app: str, tag: str, **env: str) -> list[subprocess.Popen[bytes]]:
        procs = []
        for i in range(self.args.workers):
            log = f"{tag}{i}.log"
            args = [
                "worker", "-Q", "default", "--pool", "threads",
                "-c", str(self.args.concurrency), "-n", f"{tag}{i}@%h", "-l", "INFO",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
            ]  # fmt: skip
            procs.append(self.celery(app, *args, log=log, **env))
            self.wait_log(log, "ready.")
        return procs

    def wait_log(self, log: str, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in (self.tmp / log).read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{log}: {text!r} not seen")
            time.sleep(0.1)

    def stop(self, procs: list[subprocess.Popen[bytes]], sig: int = signal.SIGTERM) -> None:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, sig)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)

    def close(self) -> None:
        self.stop(self.procs)
        if getattr(self, "database", None) is not None:
            self.database.dispose()
            self.admin.dispose()
        if self.servers is not None:
            self.servers.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # helpers

    def org(self, name: str) -> uuid.UUID:
        from sqlalchemy import text

        org = uuid.uuid4()
        with self.admin.begin() as conn:
            conn.execute(
                text("INSERT INTO orgs (id, name, slug) VALUES (:id, :n, :s)"),
                {"id": org, "n": name, "s": f"{name.lower()}-{org.hex[:8]}"},
            )
        return org

    def scalar(self, sql: str, **params: Any) -> Any:
        from sqlalchemy import text

        with self.admin.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def latencies(self, ids: list[uuid.UUID]) -> list[float]:
        from sqlalchemy import text

        with self.admin.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT extract(epoch FROM started_at - created_at) FROM jobs "
                    "WHERE id = ANY(:ids) AND started_at IS NOT NULL"
                ),
                {"ids": ids},
            ).scalars()
            return sorted(float(r) for r in rows)

    def wait_sql(self, sql: str, target: int, timeout: float, **params: Any) -> None:
        deadline = time.monotonic() + timeout
        while int(self.scalar(sql, **params) or 0) < target:
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {sql}")
            time.sleep(0.05)

    # measurements

    def engine_throughput(self) -> float:
        from fusion.jobs import service
        from fusion.jobs.service import JobSpec

        n = self.args.jobs
        org = self.org("Throughput")
        t0 = time.time()
        for start in range(0, n, 1000):
            with self.database.org_session(org) as session:
                service.enqueue_many(
                    session,
                    org_id=org,
                    specs=[JobSpec("bench.noop")] * min(1000, n - start),
                )
        done = "SELECT count(*) FROM jobs WHERE org_id = :o AND status = 'completed'"
        self.wait_sql(done, n, 600, o=org)
        last = self.scalar("SELECT max(finished_at) FROM jobs WHERE org_id = :o", o=org)
        return n / (last.timestamp() - t0)

    def celery_throughput(self) -> float:
        client = _raw_redis()
        client.delete("bench:raw:done", "bench:raw:last")
        n = self.args.jobs
        t0 = time.time()
        with raw_app.producer_or_acquire() as producer:
            for _ in range(n):
                raw_app.send_task("bench.raw_noop", queue="default", producer=producer)
        deadline = time.monotonic() + 600
        while int(client.get("bench:raw:done") or 0) < n:
            if time.monotonic() > deadline:
                raise RuntimeError("raw celery tasks did not finish")
            time.sleep(0.05)
        return n / (float(client.get("bench:raw:last")) - t0)

    def dramatiq_workers(self, tag: str) -> subprocess.Popen[bytes]:
        """``dramatiq`` with --workers processes x --concurrency threads, ready to consume."""
        log = f"{tag}.log"
        out = (self.tmp / log).open("ab")
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "dramatiq", "dramatiq_peer",
                "--processes", str(self.args.workers), "--threads", str(self.args.concurrency),
                "--path", str(ROOT / "bench"),
            ],
            cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.procs.append(proc)
        deadline = time.monotonic() + 60
        while (self.tmp / log).read_text(errors="replace").count("is ready for action") < (
            self.args.workers
        ):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{log}: dramatiq workers did not start")
            time.sleep(0.1)
        return proc

    def dramatiq_throughput(self) -> float:
        import dramatiq_peer

        client = _raw_redis()
        client.delete(dramatiq_peer.DONE, dramatiq_peer.LAST)
        n = self.args.jobs
        t0 = time.time()
        for _ in range(n):
            dramatiq_peer.noop.send()
        deadline = time.monotonic() + 600
        while int(client.get(dramatiq_peer.DONE) or 0) < n:
            if time.monotonic() > deadline:
                raise RuntimeError("dramatiq messages did not finish")
            time.sleep(0.05)
        return n / (float(client.get(dramatiq_peer.LAST)) - t0)

    def start_latency(self, count: int = 200) -> list[float]:
        from fusion.jobs import service

        org = self.org("Latency")
        ids = []
        for _ in range(count):
            with self.database.org_session(org) as session:
                ids.append(service.enqueue(session, org_id=org, job_type="bench.noop").id)
            time.sleep(0.02)
        self.wait_sql(
            "SELECT count(*) FROM jobs WHERE id = ANY(:ids) AND status = 'completed'",
            count, 60, ids=ids,
        )  # fmt: skip
        return self.latencies(ids)

    def rescue(self) -> float:
        from fusion.jobs import service

        org = self.org("Rescue")
        doomed = self.celery(
            "workers.app", "worker", "-Q", "default", "--pool", "threads", "-c", "2",
            "-n", "doomed@%h", "-l", "INFO", "--without-gossip", "--without-mingle",
            "--without-heartbeat", log="doomed.log", FUSION_JOB_MODULES="engine",
        )  # fmt: skip
        self.wait_log("doomed.log", "ready.")
        # Only the doomed worker serves the queue when the job starts.
        with self.database.org_session(org) as session:
            job = service.enqueue(session, org_id=org, job_type="bench.sleep", payload={"s": 60}).id
        self.wait_sql(
            "SELECT count(*) FROM jobs WHERE id = :j AND status = 'running'", 1, 30, j=job
        )
        survivors = self.workers("workers.app", "survivor")
        os.killpg(doomed.pid, signal.SIGKILL)
        killed = datetime.now(UTC)
        doomed.wait(10)
        self.wait_sql(
            "SELECT count(*) FROM jobs WHERE id = :j AND attempts = 2 AND started_at > :k",
            1, 120, j=job, k=killed,
        )  # fmt: skip
        restarted = self.scalar("SELECT started_at FROM jobs WHERE id = :j", j=job)
        self.stop(survivors, signal.SIGKILL)  # the re-run sleeps on; not worth waiting for
        return float((restarted - killed).total_seconds())

    def fairness(self, backlog: int = 10_000, probes: int = 50) -> list[float]:
        from fusion.jobs import service
        from fusion.jobs.service import JobSpec

        org_a, org_b = self.org("BacklogA"), self.org("NewcomerB")
        for _ in range(0, backlog, 1000):
            with self.database.org_session(org_a) as session:
                service.enqueue_many(
                    session,
                    org_id=org_a,
                    # 0.1 s each: the backlog outlasts the probes (16 threads: ~60 s of work)
                    specs=[JobSpec("bench.sleep", payload={"s": 0.1})] * 1000,
                )
        pending = "SELECT count(*) FROM jobs WHERE org_id = :o AND status = 'pending'"
        print(f"  org A has {self.scalar(pending, o=org_a)} jobs waiting when B starts")
        ids = []
        for _ in range(probes):
            with self.database.org_session(org_b) as session:
                ids.append(service.enqueue(session, org_id=org_b, job_type="bench.noop").id)
            time.sleep(0.05)
        self.wait_sql(
            "SELECT count(*) FROM jobs WHERE id = ANY(:ids) AND status = 'completed'",
            probes, 120, ids=ids,
        )  # fmt: skip
        print(f"  org A still had {self.scalar(pending, o=org_a)} waiting when B's were done")
        with self.admin.begin() as conn:  # the rest of A's backlog is of no further interest
            from sqlalchemy import text

            conn.execute(
                text(
                    "UPDATE jobs SET status = 'cancelled' WHERE org_id = :o AND status = 'pending'"
                ),
                {"o": org_a},
            )
        return self.latencies(ids)


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


def _load() -> list[float]:
    """The 1, 5 and 15 minute load averages (``uptime``): the machine is shared, so every
    figure is kept with how busy it was."""
    return [round(x, 2) for x in os.getloadavg()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="where to write the figures (JSON)"
    )
    args = parser.parse_args()
    extras.require("bench", "bench/engine.py's Dramatiq baseline")
    bench = Bench(args)
    started = time.monotonic()
    try:
        bench.start_servers()
        raw_app.conf.broker_url = bench.settings.redis_url
        os.environ["FUSION_REDIS_URL"] = bench.settings.redis_url or ""  # for dramatiq_peer
        sys.path.insert(0, str(ROOT / "bench"))
        from fusion.jobs import dispatch
        from workers.dispatcher import CeleryDispatcher, producer_app

        boot.load_jobs()
        publisher = producer_app()
        publisher.conf.broker_url = bench.settings.redis_url
        dispatch.install(CeleryDispatcher(publisher))
        print(f"{args.jobs} no-op jobs, {args.workers} workers x {args.concurrency} threads")

        rounds: dict[str, list[float]] = {"celery": [], "dramatiq": [], "engine": [], "single": []}
        beat_args = ("beat", "-l", "INFO", "-s", str(bench.tmp / "beat-schedule"))
        for r in range(args.rounds):
            raw = bench.workers("engine:raw_app", f"raw{r}-")
            rounds["celery"].append(bench.celery_throughput())
            bench.stop(raw)
            peer = bench.dramatiq_workers(f"dramatiq{r}")
            rounds["dramatiq"].append(bench.dramatiq_throughput())
            bench.stop([peer])
            beat = bench.celery("workers.app", *beat_args, log="beat.log")
            engine_workers = bench.workers("workers.app", f"engine{r}-")
            rounds["engine"].append(bench.engine_throughput())
            # The same with bulk chunking off: one Celery message per job, as for single
            # enqueues.
            dispatch.install(CeleryDispatcher(publisher, bulk_chunk=1))
            rounds["single"].append(bench.engine_throughput())
            dispatch.install(CeleryDispatcher(publisher))
            bench.stop([*engine_workers, beat])
            print(
                f"round {r + 1}: raw Celery {rounds['celery'][-1]:,.0f} tasks/s, Dramatiq "
                f"{rounds['dramatiq'][-1]:,.0f} jobs/s, engine "
                f"{rounds['engine'][-1]:,.0f} jobs/s, one message per job "
                f"{rounds['single'][-1]:,.0f} jobs/s"
            )
        celery_rate = statistics.median(rounds["celery"])
        dramatiq_rate = statistics.median(rounds["dramatiq"])
        engine_rate = statistics.median(rounds["engine"])
        single_rate = statistics.median(rounds["single"])
        print(f"medians of {args.rounds} interleaved rounds:")
        print(f"raw Celery (acks_late, prefetch 1): {celery_rate:,.0f} tasks/s")
        peer = f"{args.workers} processes x {args.concurrency} threads"
        print(f"Dramatiq ({peer}): {dramatiq_rate:,.0f} jobs/s")
        print(f"engine (enqueue → claim → run → complete): {engine_rate:,.0f} jobs/s")
        print(f"engine, one message per job: {single_rate:,.0f} jobs/s")
        print(f"ratio engine / raw Celery: {engine_rate / celery_rate:.2f}")
        print(
            f"ratio engine / Dramatiq: {engine_rate / dramatiq_rate:.2f} (target ≥ 1.0); one "
            f"message per job: {single_rate / dramatiq_rate:.2f} of Dramatiq, "
            f"{single_rate / celery_rate:.2f} of raw Celery (target ≥ 1.0)"
        )

        beat = bench.celery("workers.app", *beat_args, log="beat.log")
        engine_workers = bench.workers("workers.app", "engine")
        latency = bench.start_latency()
        p50, p99 = _pct(latency, 50) * 1000, _pct(latency, 99) * 1000
        print(f"enqueue-to-start, idle: p50 {p50:.1f} ms, p99 {p99:.1f} ms (target p50 ≤ 10)")

        fair = bench.fairness()
        fair_p95 = _pct(fair, 95)
        print(f"fairness: org B's start latency behind A's 10,000 backlog, p95 {fair_p95:.3f} s")
        bench.stop(engine_workers)

        rescue_s = bench.rescue()
        lease_s, sweep_s = bench.settings.lease_s, bench.settings.sweep_interval_s
        print(
            f"rescue after SIGKILL (lease {lease_s} s, sweeps every {sweep_s} s): {rescue_s:.1f} s"
        )
        bench.stop([beat])

        results = {
            "engine_jobs_per_s": round(engine_rate, 1),
            "celery_tasks_per_s": round(celery_rate, 1),
            "engine_jobs_per_s_one_message_per_job": round(single_rate, 1),
            "ratio_one_message_per_job": round(single_rate / celery_rate, 3),
            "ratio": round(engine_rate / celery_rate, 3),
            "dramatiq_jobs_per_s": round(dramatiq_rate, 1),
            "ratio_to_dramatiq": round(engine_rate / dramatiq_rate, 3),
            "ratio_to_dramatiq_one_message_per_job": round(single_rate / dramatiq_rate, 3),
            "start_latency_ms_p50": round(p50, 2),
            "start_latency_ms_p99": round(p99, 2),
            "rescue_s": round(rescue_s, 2),
            "rescue_settings": {"lease_s": lease_s, "sweep_interval_s": sweep_s},
            "fairness_p95_s": round(fair_p95, 3),
            "throughput_rounds": args.rounds,
            "throughput_figures_are": "medians of interleaved rounds",
            "celery_tasks_per_s_rounds": [round(x, 1) for x in rounds["celery"]],
            "dramatiq_jobs_per_s_rounds": [round(x, 1) for x in rounds["dramatiq"]],
            "engine_jobs_per_s_rounds": [round(x, 1) for x in rounds["engine"]],
            "engine_jobs_per_s_one_message_per_job_rounds": [round(x, 1) for x in rounds["single"]],
            "jobs": args.jobs,
            "workers": args.workers,
            "concurrency": args.concurrency,
            "pool": "threads",
            "command": "python bench/engine.py " + " ".join(sys.argv[1:]),
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "wall_s": round(time.monotonic() - started, 1),
            "load_average": _load(),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.out} in {results['wall_s']} s")
        return 0
    except (FusionError, RuntimeError) as exc:
        print(f"bench failed: {exc}; logs in {bench.tmp}", file=sys.stderr)
        bench.tmp = Path(tempfile.mkdtemp())  # keep the logs for a look
        return 1
    finally:
        bench.close()


if __name__ == "__main__":
    sys.exit(main())
