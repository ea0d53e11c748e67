"""Benchmark: the API under sustained load, against a Flask hello-world served the same way.

    .venv/bin/python bench/api.py [--seconds 10] [--clients 8]

Starts a scratch database on the machine's Postgres (FUSION_BENCH_DATABASE_URL, else
127.0.0.1:5432, else an embedded one), a private redis-server, a Shopify sandbox in this
process, and two gunicorn servers with the API's own settings
(``fusion.runtime.services.api_server_command``: worker class, processes, threads, access
log): the hub (``api.wsgi``), a Flask hello-world (``bench/hello_wsgi.py``) and the enqueue's
floor (``bench/floor_wsgi.py``: the hello-world plus ``POST /jobs``'s own statements and
publish, without the hub's framework). An owner and
an operator sign up and join one org through the API, whose request quota is raised for the
bench (``FUSION_REQUEST_QUOTA_PER_MINUTE``); the owner connects a store of the sandbox.

Then, for ``--seconds`` each, ``--clients`` keep-alive connections send requests back to back:

- ``hello_get`` / ``hello_post``: the hello-world (the baseline);
- ``post_job``: ``POST /orgs/{org}/jobs`` as the operator (``list_products`` on the store, a
  type an operator may enqueue; each request a new job, its message published to Redis);
- ``post_job_floor``: the same request to the floor, which does the same round trips (one
  transaction of the hub's own statements, then the hub's publish) with nothing around them:
  ``post_job`` ÷ ``post_job_floor`` is what the framework costs (routing, schemas, the ORM,
  the preflight), ``post_job_floor`` ÷ ``hello_post`` what the enqueue's I/O costs;
- ``get_jobs``: ``GET /orgs/{org}/jobs?limit=20`` as the operator (a page of the jobs above);
- ``webhook``: ``POST /webhooks/shopify/{store}``, a signed ``orders/create`` delivery, a new
  delivery id each time (verified, stored, its processing job enqueued).

Then ``post_job_paced``: ``POST /jobs`` again at half the hello-world's POST rate (open loop,
one request every ``1 / rate`` seconds spread over the clients), for its latency at that rate.

Prints requests/s and p50/p99 (ms) of each, and the CPU milliseconds per request of each side
(on Linux): the server's gunicorn processes, the Postgres backends of the bench's database
(when Postgres runs on this machine) and the client (this process); the ratio of each hub
endpoint to the hello-world of the same method; writes bench/results/api.json with the
command and the load average.
No workers run: the jobs stay pending (what is measured is the API). Non-2xx answers count as
errors and are reported; a run with errors says so.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, this file's folder is first on sys.path, where this module's own name would
# hide the hub's ``api`` package: the repository's root takes its place.
if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)
RESULTS = ROOT / "bench" / "results" / "api.json"
PASSWORD = "correct horse battery staple 42"  # noqa: S105 - a throwaway bench account


@dataclass
class Run:
    """What one load of one endpoint saw."""

    name: str
    seconds: float
    latencies_s: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    # CPU seconds each side spent during the load (see Bench.cpu), when it could be read
    cpu_s: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_s)
        answered = len(lat) + sum(self.errors.values())
        return {
            "requests_per_s": round(len(lat) / self.seconds, 1),
            "p50_ms": round(_pct(lat, 50) * 1000, 2),
            "p99_ms": round(_pct(lat, 99) * 1000, 2),
            "requests": len(lat),
            "errors": dict(self.errors),
            "cpu_ms_per_request": {
                side: round(seconds / answered * 1000, 3) for side, seconds in self.cpu_s.items()
            }
            if answered
            else {},
        }


Request = Callable[[], tuple[str, str, bytes, dict[str, str]]]


def _pct(values: list[float], p: int) -> float:
    if len(values) < 2:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def load(
    name: str,
    port: int,
    make: Request,
    *,
    clients: int,
    seconds: float,
    rate: float = 0.0,
    cpu: Callable[[], dict[str, dict[int, float]]] | None = None,
) -> Run:
    """``clients`` keep-alive connections sending ``make()``'s requests for ``seconds``: back to
    back, or (``rate`` > 0) one request every ``1 / rate`` seconds in all, each on its
    schedule (latency counted from when it was due, so a server falling behind shows).
    ``cpu``: reads each side's processes' CPU seconds, before and after (``Run.cpu_s``)."""
    run = Run(name, seconds)
    before = cpu() if cpu else {}
    lock = threading.Lock()
    start = time.perf_counter() + 0.2
    stop_at = start + seconds

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        errors: dict[str, int] = {}
        k = 0
        while True:
            due = start + (k * clients + n) / rate if rate else time.perf_counter()
            if due >= stop_at:
                break
            if rate:
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
            k += 1
            method, path, body, headers = make()
            began = due if rate else time.perf_counter()
            try:
                conn.request(method, path, body=body or None, headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            if status >= 300:
                errors[str(status)] = errors.get(str(status), 0) + 1
                continue
            mine.append(time.perf_counter() - began)
        conn.close()
        with lock:
            run.latencies_s.extend(mine)
            for key, count in errors.items():
                run.errors[key] = run.errors.get(key, 0) + count

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Requests per second over the time they took: a paced load the server could not keep
    # up with ends late, and counts as the slower rate it really got.
    run.seconds = max(time.perf_counter() - start, seconds)
    if cpu:
        # A process that started during the load counts from zero; one that ended is lost.
        after = cpu()
        run.cpu_s = {
            side: sum(t - before.get(side, {}).get(pid, 0.0) for pid, t in times.items())
            for side, times in after.items()
        }
    return run


def _process_cpu_s(pid: int) -> float | None:
    """User plus system CPU seconds of process ``pid`` so far (Linux ``/proc``), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _group(pgid: int) -> list[int]:
    """The processes of process group ``pgid`` (a gunicorn master and its workers)."""
    return processes(PGRP, pgid)


PPID, PGRP = 1, 2  # fields of /proc/<pid>/stat after the name


def processes(field: int, value: int) -> list[int]:
    """The processes whose ``/proc/<pid>/stat`` ``field`` (PPID, PGRP) is ``value``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(stat[field]) == value:
                found.append(int(entry.name))
    return found


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="fusion-api-bench-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.sandbox: Any = None

    def start(self) -> None:
        import requests

        from fusion.config import Settings
        from fusion.db import migrate
        from fusion.runtime.services import api_server_command
        from fusion.sandbox import SANDBOXES, SandboxServer
        from tests.support.servers import (
            RedisServer,
            ScratchDatabase,
            admin_postgres_url,
            free_port,
        )

        self.http = requests.Session()
        self.redis_server = RedisServer()
        self.redis_server.start()
        self.database = ScratchDatabase(
            os.environ.get("FUSION_BENCH_DATABASE_URL") or admin_postgres_url()
        )
        self.database.create()
        self.hub_port, self.hello_port, self.floor_port = free_port(), free_port(), free_port()
        self.hub_env = {
            "FUSION_ENV": "test",
            "FUSION_HOME": str(self.tmp / "home"),
            "FUSION_DATABASE_URL": self.database.url,
            "FUSION_REDIS_URL": self.redis_server.url,
            "FUSION_LOG_LEVEL": "WARNING",
            "FUSION_REQUEST_QUOTA_PER_MINUTE": str(10**7),
            "FUSION_PUBLIC_URL": f"http://127.0.0.1:{self.hub_port}",
        }
        migrate.upgrade(Settings.from_env(self.hub_env))
        env = {k: v for k, v in os.environ.items() if not k.startswith("FUSION_")}
        env.update(self.hub_env)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "bench")])
        for app, port, log in (
            ("api.wsgi:app", self.hub_port, "hub.log"),
            ("hello_wsgi:app", self.hello_port, "hello.log"),
            ("floor_wsgi:app", self.floor_port, "floor.log"),
        ):
            command = api_server_command(sys.executable, app, f"127.0.0.1:{port}")
            self.procs.append(
                subprocess.Popen(
                    command,
                    cwd=ROOT,
                    env=env,
                    stdout=(self.tmp / log).open("ab"),
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        for port, path in (
            (self.hub_port, "/healthz"),
            (self.hello_port, "/hello"),
            (self.floor_port, "/healthz"),
        ):
            self._wait(f"http://127.0.0.1:{port}{path}")
        self.sandbox = SandboxServer(SANDBOXES["shopify"]()).start()
        self.hub = f"http://127.0.0.1:{self.hub_port}"

    def cpu(self, server: subprocess.Popen[bytes]) -> Callable[[], dict[str, dict[int, float]]]:
        """A meter of CPU seconds by side, for :func:`load`: ``server`` (the gunicorn master
        and workers under load), ``postgres`` (the backends connected to the bench's
        database; only when Postgres runs on this machine) and ``client`` (this process:
        the load's threads and the sandbox)."""
        import psycopg2

        dsn = self.database.url.replace("postgresql+psycopg2://", "postgresql://")

        def read() -> dict[str, dict[int, float]]:
            with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
                cur.execute(
                    "SELECT pid FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                backends = [pid for (pid,) in cur.fetchall()]
            conn.close()
            sides = {"server": _group(server.pid), "postgres": backends, "client": [os.getpid()]}
            times = {
                side: {pid: t for pid in pids if (t := _process_cpu_s(pid)) is not None}
                for side, pids in sides.items()
            }
            return {side: found for side, found in times.items() if found}

        return read

    def _wait(self, url: str, timeout: float = 60) -> None:
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.http.get(url, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{url} did not answer; logs in {self.tmp}")

    def _ok(self, response: Any, *codes: int) -> Any:
        if response.status_code not in (codes or (200, 201, 202)):
            raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text}")
        return response.json()

    def _signup(self) -> dict[str, str]:
        email = f"bench-{uuid.uuid4().hex[:10]}@example.test"
        body = self._ok(
            self.http.post(f"{self.hub}/auth/signup", json={"email": email, "password": PASSWORD}),
            201,
        )
        return {"Authorization": f"Bearer {body['access_token']}", "email": email}

    def setup(self) -> None:
        """An org with an owner and an operator, and a connected Shopify store, through the
        API as a merchant would set them up."""
        from tests.plugins.e2e import PROVISIONERS

        owner = self._signup()
        operator = self._signup()
        auth = {"Authorization": owner["Authorization"]}
        org = self._ok(self.http.post(f"{self.hub}/orgs", json={"name": "Bench"}, headers=auth))
        self.org = org["id"]
        invited = self._ok(
            self.http.post(
                f"{self.hub}/orgs/{self.org}/invitations",
                json={"email": operator["email"], "role": "operator"},
                headers=auth,
            ),
            201,
        )
        self.operator = {"Authorization": operator["Authorization"]}
        self._ok(
            self.http.post(
                f"{self.hub}/me/invitations/{invited['id']}/accept", headers=self.operator
            )
        )
        self.shop = PROVISIONERS["shopify"](self.sandbox.url, "tok" + uuid.uuid4().hex)
        store = self._ok(
            self.http.post(
                f"{self.hub}/orgs/{self.org}/stores",
                json={
                    "platform": "shopify",
                    "name": "Bench shop",
                    "external_id": self.shop.external_id,
                    "base_url": self.sandbox.url,
                    "credentials": dict(self.shop.credentials),
                    "settings": dict(self.shop.settings),
                    "webhook_secret": self.shop.webhook_secret,
                },
                headers=auth,
            ),
            201,
        )
        self.store = store["id"]

    # the requests

    def post_job(self) -> tuple[str, str, bytes, dict[str, str]]:
        body = json.dumps({"job_type": "list_products", "store_id": self.store}).encode()
        headers = {**self.operator, "Content-Type": "application/json"}
        return "POST", f"/orgs/{self.org}/jobs", body, headers

    def get_jobs(self) -> tuple[str, str, bytes, dict[str, str]]:
        return "GET", f"/orgs/{self.org}/jobs?limit=20", b"", dict(self.operator)

    def webhook(self) -> tuple[str, str, bytes, dict[str, str]]:
        from fusion.security.signing import shopify_hmac

        order_id = uuid.uuid4().int % 10**12
        body = json.dumps(
            {"id": order_id, "name": f"#{order_id}", "line_items": [], "currency": "USD"}
        ).encode()
        delivery = str(uuid.uuid4())
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Hmac-Sha256": shopify_hmac(self.shop.webhook_secret or "", body),
            "X-Shopify-Shop-Domain": self.shop.external_id,
            "X-Shopify-API-Version": "2026-07",
            "X-Shopify-Webhook-Id": delivery,
            "X-Shopify-Event-Id": str(uuid.uuid4()),
            "X-Shopify-Triggered-At": datetime.now(UTC).isoformat(),
            "X-Shopify-Order-Id": str(order_id),
        }
        return "POST", f"/webhooks/shopify/{self.store}", body, headers

    @staticmethod
    def hello(method: str) -> Request:
        headers = {"Content-Type": "application/json"} if method == "POST" else {}
        body = b'{"hello": "world"}' if method == "POST" else b""
        return lambda: (method, "/hello", body, headers)

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        if self.sandbox is not None:
            self.sandbox.stop()
        if hasattr(self, "database"):
            self.database.drop()
        if hasattr(self, "redis_server"):
            self.redis_server.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    bench = Bench(args)
    started = time.monotonic()
    try:
        bench.start()
        bench.setup()
        hub, hello = bench.hub_port, bench.hello_port
        hub_cpu, hello_cpu, floor_cpu = (bench.cpu(p) for p in bench.procs)
        opts = {"clients": args.clients, "seconds": args.seconds}
        plan: list[tuple[str, int, Request, Any]] = [
            ("hello_get", hello, bench.hello("GET"), hello_cpu),
            ("hello_post", hello, bench.hello("POST"), hello_cpu),
            ("post_job", hub, bench.post_job, hub_cpu),
            ("get_jobs", hub, bench.get_jobs, hub_cpu),
            ("webhook", hub, bench.webhook, hub_cpu),
            # Last: its thousands of jobs would otherwise be in get_jobs' org.
            ("post_job_floor", bench.floor_port, bench.post_job, floor_cpu),
        ]
        for _, port, make, _cpu in plan:  # warm every process and connection pool first
            load("warm-up", port, make, clients=args.clients, seconds=1.0)
        results: dict[str, dict[str, Any]] = {}
        for name, port, make, cpu in plan:
            results[name] = load(name, port, make, cpu=cpu, **opts).summary()
            _show(name, results[name])
        rate = results["hello_post"]["requests_per_s"] / 2
        paced = load(
            "post_job_paced", hub, bench.post_job, rate=rate, cpu=hub_cpu, **opts
        ).summary()
        paced["offered_per_s"] = round(rate, 1)
        results["post_job_paced"] = paced
        _show(f"post_job at {rate:,.0f}/s", paced)
        ratios = {
            "post_job": results["post_job"]["requests_per_s"]
            / results["hello_post"]["requests_per_s"],
            "get_jobs": results["get_jobs"]["requests_per_s"]
            / results["hello_get"]["requests_per_s"],
            "webhook": results["webhook"]["requests_per_s"]
            / results["hello_post"]["requests_per_s"],
            "post_job_floor": results["post_job_floor"]["requests_per_s"]
            / results["hello_post"]["requests_per_s"],
        }
        to_floor = (
            results["post_job"]["requests_per_s"] / results["post_job_floor"]["requests_per_s"]
        )
        print(
            "ratio to hello-world of the same method: "
            + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items())
            + " (target: post_job ≥ 0.5, p99 ≤ 25 ms at half the hello-world's rate); "
            + f"post_job ÷ its floor {to_floor:.2f}"
        )
        errors = sum(sum(r["errors"].values()) for r in results.values())
        out = {
            "endpoints": results,
            "ratio_to_hello": {k: round(v, 3) for k, v in ratios.items()},
            "post_job_to_floor": round(to_floor, 3),
            "errors": errors,
            "clients": args.clients,
            "seconds_each": args.seconds,
            "command": "python bench/api.py " + " ".join(sys.argv[1:]),
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "wall_s": round(time.monotonic() - started, 1),
        }
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {RESULTS.relative_to(ROOT)}" + (f" ({errors} errors!)" if errors else ""))
        return 0
    except RuntimeError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    finally:
        bench.close()


def _show(name: str, r: dict[str, Any]) -> None:
    errors = f", errors {r['errors']}" if r["errors"] else ""
    cpu = "  ".join(f"{side} {ms:.2f}" for side, ms in r["cpu_ms_per_request"].items())
    print(
        f"{name:>20}: {r['requests_per_s']:8,.0f} req/s  p50 {r['p50_ms']:6.1f} ms  "
        f"p99 {r['p99_ms']:6.1f} ms{errors}" + (f"  (CPU ms per request: {cpu})" if cpu else "")
    )


if __name__ == "__main__":
    sys.exit(main())
