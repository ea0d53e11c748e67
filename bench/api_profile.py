"""Where one API request's time goes: the app in this process under cProfile, on the same
servers and data as bench/api.py.

    .venv/bin/python bench/api_profile.py [--endpoint post_job|get_jobs|webhook] [--requests 400]

Sets up as bench/api.py does (scratch database, private Redis, a Shopify sandbox, an org with
an owner, an operator and a store), then calls the hub's own WSGI app through Flask's test
client: 100 warm-up requests, ``--requests`` timed ones (CPU milliseconds per request, no
profiler), and as many again under cProfile. Prints the CPU per request and the profiled time
per request by package (SQLAlchemy, werkzeug, kombu, ...; "waiting" is the time in psycopg2's
and the sockets' C calls, mostly Postgres' and Redis's answers), then the
functions with the most time of their own.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import logging
import os
import pstats
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)  # as in bench/api.py: the hub's ``api`` package, not this folder's


def _api_bench() -> object:
    """bench/api.py as a module of its own name (``api`` is the hub's package)."""
    spec = importlib.util.spec_from_file_location("bench_api", ROOT / "bench" / "api.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_api"] = module
    spec.loader.exec_module(module)
    return module


def by_package(stats: pstats.Stats, requests: int) -> list[tuple[str, float]]:
    """Profiled milliseconds per request of each package's own code."""
    spent: Counter[str] = Counter()
    for (path, _line, name), (_cc, _nc, own, _cum, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if "site-packages/" in path:
            key = path.split("site-packages/")[1].split("/")[0]
        elif path.startswith(str(ROOT)):
            key = "hub: " + Path(path).relative_to(ROOT).parts[0]
        elif path == "~":
            waits = "psycopg2" in name or "socket" in name
            key = "waiting (Postgres, Redis)" if waits else "builtins"
        else:
            key = "stdlib"
        spent[key] += own
    return [(k, v / requests * 1000) for k, v in spent.most_common()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    endpoints = ("post_job", "get_jobs", "webhook")
    parser.add_argument("--endpoint", choices=endpoints, default="post_job")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    logging.disable(logging.INFO)  # the request log line is not what is measured here
    bench = _api_bench().Bench(argparse.Namespace(seconds=1.0, clients=1))  # type: ignore[attr-defined]
    try:
        bench.start()
        bench.setup()
        os.environ.update(bench.hub_env)
        from api.app import create_app
        from api.context import Serves

        client = create_app(serves=Serves.API).test_client()
        make = getattr(bench, args.endpoint)

        def one() -> None:
            method, path, body, headers = make()
            response = client.open(path, method=method, data=body, headers=headers)
            if response.status_code >= 300:
                raise RuntimeError(f"{path}: {response.status_code} {response.data[:300]!r}")

        for _ in range(100):
            one()
        cpu = time.process_time()
        for _ in range(args.requests):
            one()
        per_request = (time.process_time() - cpu) / args.requests * 1000
        print(f"{args.endpoint}: {per_request:.2f} ms of CPU per request (no profiler)")
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.requests):
            one()
        profile.disable()
        stats = pstats.Stats(profile)
        rows = by_package(stats, args.requests)
        total = sum(ms for _, ms in rows)
        print(f"profiled: {total:.2f} ms per request, by package:")
        for name, ms in rows[:15]:
            print(f"  {name:<30} {ms:6.2f} ms  {ms / total:6.1%}")
        stats.sort_stats("tottime").print_stats(args.top)
        return 0
    finally:
        bench.close()


if __name__ == "__main__":
    sys.exit(main())
