"""Where a job with a message of its own spends its time: CPU per job of each side, raw
Celery beside it, and the engine's statements in Postgres.

    .venv/bin/python bench/engine_profile.py [--jobs 10000] [--concurrency 8]

Starts the servers as bench/engine.py does (the embedded Postgres and Redis when no URLs are
given; the embedded Postgres is restarted once with ``pg_stat_statements`` loaded). Then,
after a warm-up round of each, raw Celery (2 workers x ``--concurrency`` threads, acks_late,
prefetch 1) and the engine with one message per job (the path of single enqueues) each
drain ``--jobs`` no-op jobs. Prints the rate; the CPU milliseconds per job of each side, read
from Linux's ``/proc``: the worker processes, Postgres' backends of the bench's database and
the rest of Postgres (WAL writer, checkpointer, autovacuum and closed backends, the exited
ones from the postmaster's reaped children), Redis, and this process (the enqueue and the
publish); and the statements that took most of Postgres' time, per job. On two cores every
side shares the same CPUs: the rate is at most about 2 / (CPU per job of all sides).
Nothing is written; this explains bench/engine.py's figure.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PG_STATEMENTS = "pg_stat_statements"
STATEMENTS = """
SELECT calls, total_exec_time, rows, left(regexp_replace(query, '\\s+', ' ', 'g'), 80)
  FROM pg_stat_statements
 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
 ORDER BY total_exec_time DESC
"""
SHOWN = 12


def _load(name: str, file: str) -> ModuleType:
    """A bench script as a module of its own name (``api`` and ``engine`` are taken)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / file)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


Meter = Callable[[], float]  # CPU seconds of one side so far


def _cpu_of(pids: Callable[[], list[int]], cpu_s: Callable[[int], float | None]) -> Meter:
    return lambda: sum(cpu_s(p) or 0.0 for p in pids())


def _reaped_s(pid: int) -> float:
    """CPU seconds of ``pid``'s children that have exited (Linux ``/proc``: cutime + cstime),
    such as a postmaster's autovacuum workers and closed backends."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def _backends(admin: Any) -> list[int]:
    """The server processes of the other connections to the bench's database."""
    from sqlalchemy import text

    with admin.connect() as conn:
        query = (
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return list(conn.execute(text(query)).scalars())


def _per_job(sides: dict[str, Meter], run: Callable[[], float], n: int) -> float:
    before = {side: read() for side, read in sides.items()}
    rate = run()
    after = {side: read() for side, read in sides.items()}
    for side, seconds in after.items():
        print(f"  {side:<34} {(seconds - before[side]) / n * 1000:6.3f} ms CPU per job")
    total = sum(after.values()) - sum(before.values())
    print(f"  {'all sides':<34} {total / n * 1000:6.3f} ms")
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8, help="threads per worker")
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
    engine = _load("bench_engine", "engine.py")
    api = _load("bench_api", "api.py")
    from sqlalchemy import text

    shape = f"2 workers x {args.concurrency} threads"
    bench = engine.Bench(
        argparse.Namespace(jobs=args.jobs, workers=2, concurrency=args.concurrency)
    )
    try:
        bench.start_servers()
        servers = bench.servers
        embedded = servers is not None and servers.postgres is not None
        if embedded:  # load pg_stat_statements: one restart, the data kept
            servers.postgres.stop()
            with (servers.postgres.data / "postgresql.conf").open("a") as conf:
                conf.write(f"\nshared_preload_libraries = '{PG_STATEMENTS}'\n")
            servers.postgres.start()
        try:
            with bench.admin.begin() as conn:
                conn.execute(text(f"CREATE EXTENSION IF NOT EXISTS {PG_STATEMENTS}"))
            statements = True
        except Exception as exc:  # not loaded in a Postgres this script did not start
            print(f"no statement figures: {str(exc).splitlines()[0]}")
            statements = False
        engine.raw_app.conf.broker_url = bench.settings.redis_url
        import boot
        from fusion.jobs import dispatch
        from workers.dispatcher import CeleryDispatcher, producer_app

        boot.load_jobs()
        publisher = producer_app()
        publisher.conf.broker_url = bench.settings.redis_url
        dispatch.install(CeleryDispatcher(publisher, bulk_chunk=1))
        redis = servers.redis if servers is not None else None
        cpu_s = api._process_cpu_s
        shared = {
            "Redis": _cpu_of(lambda: [redis.pid] if redis is not None and redis.pid else [], cpu_s),
            "this process (enqueue, publish)": _cpu_of(lambda: [os.getpid()], cpu_s),
        }

        raw = bench.workers("engine:raw_app", "raw")
        groups = {"workers": _cpu_of(lambda: [p for w in raw for p in api._group(w.pid)], cpu_s)}
        bench.celery_throughput()  # warm-up
        print(f"raw Celery, {args.jobs} no-op tasks, {shape}:")
        rate = _per_job({**groups, **shared}, bench.celery_throughput, args.jobs)
        print(f"  {rate:,.0f} tasks/s")
        bench.stop(raw)

        beat = bench.celery(
            "workers.app", "beat", "-l", "INFO", "-s", str(bench.tmp / "beat"), log="beat.log"
        )
        workers = bench.workers("workers.app", "engine")
        sides = {"workers": _cpu_of(lambda: [p for w in workers for p in api._group(w.pid)], cpu_s)}
        if embedded:
            postmaster = servers.postgres.pid
            everything = _cpu_of(lambda: [postmaster, *api.processes(api.PPID, postmaster)], cpu_s)
            backends = _cpu_of(lambda: _backends(bench.admin), cpu_s)
            sides["Postgres backends (the hub's connections)"] = backends
            sides["Postgres, the rest (WAL, vacuum, closed backends)"] = lambda: (
                everything() + _reaped_s(postmaster) - backends()
            )
        sides.update(shared)
        bench.engine_throughput()  # warm-up
        if statements:
            with bench.admin.begin() as conn:
                conn.execute(text("SELECT pg_stat_statements_reset()"))
        print(f"engine, one message per job, {args.jobs} no-op jobs, {shape}:")
        rate = _per_job(sides, bench.engine_throughput, args.jobs)
        print(f"  {rate:,.0f} jobs/s")
        bench.stop([*workers, beat])
        if statements:
            with bench.admin.connect() as conn:
                found = conn.execute(text(STATEMENTS)).all()
            calls = sum(row[0] for row in found)
            print(
                f"Postgres ran {calls / args.jobs:.2f} statements per job; executor time per job"
                " (waits included) of the costliest:"
            )
            for calls, ms, rows, query in found[:SHOWN]:
                print(f"  {ms / args.jobs:6.3f} ms  {calls:>6} calls {rows:>6} rows  {query}")
        return 0
    finally:
        bench.close()


if __name__ == "__main__":
    sys.exit(main())
