"""Stock fan-out: from a sale on one channel to every other channel showing the new figure.

    .venv/bin/python bench/fanout.py [--skus 200] [--rates 1,4,10] [--seconds 30]

One org with four stores (Shopify, Etsy, Amazon, Printify), each on its sandbox, and a catalog
of ``--skus`` SKUs (products of 3 variants: Printify's design template has three) published to
all four through the HTTP API, ``--start`` units each. Then, for each rate in ``--rates``,
sales arrive at that steady rate for ``--seconds``: sale *i* is placed on channel *i mod 4*
(``POST /_sandbox/orders``, so the channel takes its own stock at once) for one unit of a
random SKU, and reaches the hub the way that platform sends orders: Shopify, Etsy and Printify
by signed webhook to the API's receiver (Printify's event names only the order: the hub reads
it back), Amazon by its SQS order queue, which beat has the workers poll every
``FUSION_ORDER_QUEUE_POLL_S``. The hub's own path does the rest: ``process_webhook`` takes the
stock and ``fan_out_stock`` enqueues a ``real_time_inventory`` push to Shopify, Amazon and
Printify and a ``push_inventory`` to Etsy due in ``PUSH_DEBOUNCE_S`` (its message published at
once with that delay as its ETA; the dispatcher sweep, ``FUSION_SWEEP_INTERVAL_S``, only
republishes lost ones); pushes pending for a store take in later SKUs.

What is measured, per rate:

- latency_s: for each sale and each *other* channel, the time from just before the sale was
  placed to the first moment that channel shows the SKU at or below the figure the sale left
  (read from the sandbox's own in-memory state every ``--poll-ms``, not through its API, so the
  reading costs no platform call). A SKU is chosen only while no earlier sale of it is still in
  flight, so the figure each sale leaves is exact (``overlapping_sales`` counts the sales that
  found no free SKU and share one; then the first channel reading at or below the figure is
  taken). p50 / p95 / max per channel; ``latency_by_origin_s`` is the same by the channel the
  sale came from (Amazon's include the read of its order queue), and
  ``latency_by_route_s`` by origin and then destination channel. A sale not seen on a
  channel within ``--settle-timeout`` counts in ``not_seen``.
- calls: API requests each sandbox answered from the start of the sales to the moment every
  sale has settled and no push is pending (control endpoints excluded; Amazon's SQS calls go to
  moto and are not counted); ``calls_per_sale`` divides by the sales of that rate. Everything
  the hub did in the window counts: the pushes, Printify's order read-back, and any beat-driven
  ``sync_inventory`` / ``reconcile_orders`` that fell in it (``jobs`` lists them).
- throttled: 429 / THROTTLED answers per sandbox; ``rate_limit_waits``: the times a worker
  waited for its own bucket (``fusion.ratelimit.waits``).
- jobs: the jobs created in the window, per store platform and type (push jobs per sale fall
  when coalescing works).

Targets (reported, not asserted): real-time channels p95 <= 1 s, the others (Etsy) p95 <= 10 s,
zero throttled answers, calls per sale falling as the rate rises.

Everything is real and started here: Postgres (FUSION_BENCH_DATABASE_URL, else the machine's
127.0.0.1:5432, else an embedded one; a scratch database), a private redis-server, the API as it is
deployed (gunicorn with the hub's worker class, processes and threads, on a loopback port: its
public URL, which the sandboxes call; the setup's own requests use a test client of the app in
this process), one Celery worker per
queue (shopify, etsy, amazon_sc, printify, default; threads, ``--concurrency``) as
docker-compose runs them, beat, and the four sandboxes in this process. Hub settings are the
hub's defaults unless ``--sweep-s`` / ``--order-queue-poll-s`` say otherwise (the JSON records
them). Writes ``bench/results/fanout.json`` as ``{"runs": {label: run}}``, the label being
"hub defaults" or the settings overridden (``--label`` to choose); a run replaces only its own
label. Each run keeps its command, the machine's cores and load average, the CPU seconds of the
bench's own processes and how busy the whole machine was (other sessions included), and, as
evidence for the latencies, the jobs' stages (queue wait and run time per job type and platform)
and every platform call by operation and status.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "fanout.json"

PLATFORMS = ("shopify", "etsy", "amazon_sc", "printify")
VARIANTS = 3  # Printify's default design template has three variant ids
PUSH_TYPES = ("real_time_inventory", "push_inventory")


# -- reading what a channel shows, from its sandbox's memory ----------------------------------


def shown(platform: str, app: Any, shop: str) -> dict[str, int | None]:
    """Every SKU's quantity as the channel shows it now (under the sandbox's lock)."""
    for _ in range(5):
        try:
            with app.lock:
                return _shown(platform, app, shop)
        except RuntimeError:  # a dict changed under us by a handler not holding the lock
            time.sleep(0.001)
    with app.lock:
        return _shown(platform, app, shop)


def _shown(platform: str, app: Any, shop: str) -> dict[str, int | None]:
    if platform == "shopify":
        s = app.shops[shop]
        return {
            v["sku"]: s.levels.get(v["inventoryItem"]["id"])
            for p in list(s.products.values())
            for v in p["variants"]
            if v.get("sku")
        }
    if platform == "etsy":
        s = app.shops[int(shop)]
        return {
            p["sku"]: p["offerings"][0]["quantity"]
            for inv in list(s.inventories.values())
            for p in inv["products"]
            if p.get("sku")
        }
    if platform == "amazon_sc":
        return {sku: li.quantity() for sku, li in list(app.sellers[shop].listings.items())}
    s = app.shops[int(shop)]
    return {
        v["sku"]: v.get("quantity")
        for p in list(s.products.values())
        for v in p["variants"]
        if v.get("sku") and not str(v["sku"]).startswith("TEMPLATE-")
    }


class CallLog:
    """Every API request a sandbox answers, counted by operation and status (a wrapper around
    the sandbox's dispatch: the sandbox itself counts only totals). A Shopify THROTTLED answer
    (HTTP 200 with the error code) counts as status 429."""

    def __init__(self, platform: str, app: Any) -> None:
        self.platform = platform
        self.counts: Counter[tuple[str, int]] = Counter()
        self._lock = threading.Lock()
        self._dispatch = app.dispatch
        app.dispatch = self.dispatch  # the instance attribute wins over the method

    def dispatch(self, request: Any) -> Any:
        response = self._dispatch(request)
        if request.path.startswith("/_sandbox/"):
            return response
        status = response.status_code
        if self.platform == "shopify" and status == 200 and b'"THROTTLED"' in response.get_data():
            status = 429
        key = (_operation(self.platform, request), status)
        with self._lock:
            self.counts[key] += 1
        return response

    def snapshot(self) -> Counter[tuple[str, int]]:
        with self._lock:
            return Counter(self.counts)


def _operation(platform: str, request: Any) -> str:
    segments = [
        s if re.fullmatch(r"\d{4}-\d{2}(-\d{2})?|v\d+", s) or not re.search(r"\d", s) else "{id}"
        for s in request.path.split("/")
    ]
    name = f"{request.method} {'/'.join(segments)}"
    if platform == "shopify" and request.path.endswith("graphql.json"):
        with contextlib.suppress(ValueError):
            name += " " + str(json.loads(request.get_data() or b"{}").get("operationName"))
    return name


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree_cpu_s(pid: int) -> float:
    """:func:`_cpu_s` of a process and its live children (gunicorn's workers)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return _cpu_s(pid) + sum(_cpu_s(int(child)) for child in children)


def _wait_http(url: str, timeout_s: float = 60) -> None:
    import requests

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f} s")


def _machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, every session included."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


@dataclasses.dataclass
class Sale:
    n: int
    origin: str
    sku: str
    expected: int  # the figure this sale leaves (START - units sold of the SKU so far)
    placed: float  # monotonic, just before the POST
    overlapping: bool
    seen: dict[str, float] = dataclasses.field(default_factory=dict)  # platform -> latency


class Watcher:
    """Reads every channel's figures every ``poll_s`` and settles the sales in flight."""

    def __init__(self, readers: dict[str, Any], poll_s: float) -> None:
        self.readers = readers  # platform -> () -> {sku: qty}
        self.poll_s = poll_s
        self.lock = threading.Lock()
        self.in_flight: list[Sale] = []
        self.busy_skus: Counter[str] = Counter()
        self.done: list[Sale] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watcher", daemon=True)
        self.timeout_s = 120.0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def add(self, sale: Sale) -> None:
        with self.lock:
            self.in_flight.append(sale)
            self.busy_skus[sale.sku] += 1

    def free(self, sku: str) -> bool:
        with self.lock:
            return self.busy_skus[sku] == 0

    def pending(self) -> int:
        with self.lock:
            return len(self.in_flight)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            figures = {p: read() for p, read in self.readers.items()}
            now = time.monotonic()
            with self.lock:
                still = []
                for sale in self.in_flight:
                    for platform, figs in figures.items():
                        if platform == sale.origin or platform in sale.seen:
                            continue
                        q = figs.get(sale.sku)
                        if q is not None and q <= sale.expected:
                            sale.seen[platform] = now - sale.placed
                    settled = len(sale.seen) == len(self.readers) - 1
                    if settled or now - sale.placed > self.timeout_s:
                        self.done.append(sale)
                        self.busy_skus[sale.sku] -= 1
                    else:
                        still.append(sale)
                self.in_flight = still
            self._stop.wait(max(0.0, self.poll_s - (time.monotonic() - started)))


# -- figures ----------------------------------------------------------------------------------


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


def _summary(values: list[float], not_seen: int) -> dict[str, Any]:
    r = lambda v: None if v is None else round(v, 3)  # noqa: E731
    return {
        "p50": r(_pct(values, 50)),
        "p95": r(_pct(values, 95)),
        "max": r(max(values) if values else None),
        "n": len(values),
        "not_seen": not_seen,
    }


# -- the run ----------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.keep_logs = False

    def setup_servers(self) -> None:
        from tests.support.servers import RedisServer, ScratchDatabase, admin_postgres_url

        self.redis_server = RedisServer()
        self.redis_server.start()
        self.database = ScratchDatabase(
            os.environ.get("FUSION_BENCH_DATABASE_URL") or admin_postgres_url()
        )
        self.database.create()
        self.home = Path(tempfile.mkdtemp(prefix="fusion-fanout-"))
        self.hub_env = {
            "FUSION_ENV": "test",
            "FUSION_HOME": str(self.home),
            "FUSION_DATABASE_URL": self.database.url,
            "FUSION_REDIS_URL": self.redis_server.url,
            "FUSION_LOG_LEVEL": "WARNING",
        }
        if self.args.sweep_s is not None:
            self.hub_env["FUSION_SWEEP_INTERVAL_S"] = str(self.args.sweep_s)
        if self.args.order_queue_poll_s is not None:
            self.hub_env["FUSION_ORDER_QUEUE_POLL_S"] = str(self.args.order_queue_poll_s)
        # This process publishes jobs too (the API): celeryconfig reads the environment.
        os.environ.update(self.hub_env)

    def start_hub(self) -> None:
        from sqlalchemy import text

        from api.app import create_app
        from fusion.config import Settings
        from fusion.db import migrate
        from fusion.db.session import make_engine
        from fusion.sandbox import SANDBOXES, SandboxServer
        from tests.plugins.e2e import Processes
        from tests.support.servers import free_port

        self.text = text
        settings = Settings.from_env(self.hub_env)
        migrate.upgrade(settings)
        assert settings.database_url
        self.admin = make_engine(settings.database_url, pool_size=4)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.settings = dataclasses.replace(
            settings, public_url=self.url, request_quota_per_minute=10**6
        )
        # The setup's own requests go through this process's app (a test client); everything
        # the sandboxes and the bench send during the sales reaches the API as deployed.
        self.app = create_app(self.settings)
        self.servers = {p: SandboxServer(SANDBOXES[p]()).start() for p in PLATFORMS}
        self.calls = {p: CallLog(p, s.app) for p, s in self.servers.items()}
        # Amazon's sandbox starts its SQS server (moto) on the first shop; start it here, where
        # a slow start on a loaded machine meets no 10 s HTTP timeout.
        amazon: Any = self.servers["amazon_sc"].app
        amazon._sqs_client()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FUSION_")}
        env.update(self.hub_env)
        env.update({"PYTHONPATH": str(ROOT), "FUSION_PUBLIC_URL": self.url})
        env["FUSION_REQUEST_QUOTA_PER_MINUTE"] = str(10**6)
        self.procs = Processes(env)
        self.procs.api(port)
        _wait_http(f"{self.url}/healthz")
        for queue in (*PLATFORMS, "default"):
            self.procs.worker(queue, concurrency=self.args.concurrency)
        self.procs.beat()
        self.proc_names = ["API (gunicorn)"] + [f"worker {q}" for q in (*PLATFORMS, "default")]
        self.proc_names.append("beat")
        self.effective = {
            "sweep_interval_s": settings.sweep_interval_s,
            "order_queue_poll_s": settings.order_queue_poll_s,
            "dispatch_stale_s": settings.dispatch_stale_s,
            "lease_s": settings.lease_s,
        }

    def close(self) -> None:
        if not hasattr(self, "redis_server"):
            return
        steps: list[Any] = []
        if hasattr(self, "procs"):
            steps += [self.procs.stop, *(s.stop for s in self.servers.values())]
            steps += [self.app.extensions["fusion"].database.dispose, self.admin.dispose]
            if not self.keep_logs:
                steps.append(lambda: shutil.rmtree(self.procs.dir, ignore_errors=True))
        steps += [self.database.drop, self.redis_server.close]
        steps.append(lambda: shutil.rmtree(self.home, ignore_errors=True))
        for step in steps:
            try:
                step()
            except Exception as exc:  # tear down the rest regardless
                print(f"  (teardown: {type(exc).__name__}: {exc})", file=sys.stderr)

    # setup through the API, as a merchant would

    def _ok(self, response: Any, *codes: int) -> Any:
        if response.status_code not in (codes or (200, 201, 202)):
            raise RuntimeError(f"API said {response.status_code}: {response.json}")
        return response.json

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.admin.connect() as conn:
            return conn.execute(self.text(sql), params).scalar()

    def wait_for(self, sql: str, target: int, timeout: float, what: str, **params: Any) -> None:
        deadline = time.monotonic() + timeout
        while (got := int(self.scalar(sql, **params) or 0)) < target:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: {got} of {target} after {timeout:.0f} s")
            time.sleep(0.5)

    def setup_catalog(self) -> None:

        from tests.api.conftest import signup
        from tests.plugins.e2e import PROVISIONERS, point_etsy_webhooks

        client = self.app.test_client()
        owner = signup(client)
        org = self._ok(owner.post("/orgs", json={"name": "Fan-out bench"}), 201)
        self.org_id = uuid.UUID(org["id"])
        base = f"/orgs/{self.org_id}"
        self.shops: dict[str, Any] = {}
        self.store_ids: dict[str, str] = {}
        for p in PLATFORMS:
            shop = PROVISIONERS[p](self.servers[p].url, "tok" + uuid.uuid4().hex)
            body: dict[str, Any] = {
                "platform": p,
                "name": f"{p} shop",
                "external_id": shop.external_id,
                "base_url": self.servers[p].url,
                "credentials": dict(shop.credentials),
                "settings": dict(shop.settings),
            }
            if shop.webhook_secret:
                body["webhook_secret"] = shop.webhook_secret
            if shop.catalog_rules:  # Etsy and Amazon need the product's category mapped
                body["catalog_rules"] = dict(shop.catalog_rules)
            store = self._ok(owner.post(f"{base}/stores", json=body), 201)
            self.shops[p], self.store_ids[p] = shop, store["id"]
        # Etsy has no webhook API: the merchant points the portal's order events at the hub.
        point_etsy_webhooks(
            self.servers["etsy"].url,
            self.shops["etsy"],
            f"{self.url}/webhooks/etsy/{self.store_ids['etsy']}",
        )
        self.skus: list[str] = []
        listings = 0
        for n in range(-(-self.args.skus // VARIANTS)):
            product = self._ok(owner.post(f"{base}/products", json={"title": f"Tee {n}"}), 201)
            for v in range(min(VARIANTS, self.args.skus - n * VARIANTS)):
                sku = f"FAN-{n:03d}-{v}"
                self._ok(
                    owner.post(
                        f"{base}/products/{product['id']}/variants",
                        json={"sku": sku, "price": "25.00", "available_quantity": self.args.start},
                    ),
                    201,
                )
                self.skus.append(sku)
            for p in PLATFORMS:
                listing = self._ok(
                    owner.post(
                        f"{base}/listings",
                        json={"product_id": product["id"], "store_id": self.store_ids[p]},
                    ),
                    201,
                )
                self._ok(owner.post(f"{base}/listings/{listing['id']}/publish"), 202)
                listings += 1
        self.wait_for(
            "SELECT count(*) FROM listings WHERE org_id = :o AND status = 'published'",
            listings, 900, "listings published", o=self.org_id,
        )  # fmt: skip
        failed = self.scalar(
            "SELECT count(*) FROM jobs WHERE org_id = :o AND status = 'failed'", o=self.org_id
        )
        if failed:
            raise RuntimeError(f"{failed} setup jobs failed")
        subscribed = (
            "SELECT count(*) FROM jobs WHERE org_id = :o AND job_type = 'subscribe_order_events'"
            " AND status = 'completed'"
        )
        self.wait_for(subscribed, 3, 120, "order events subscribed", o=self.org_id)

    def readers(self) -> dict[str, Any]:
        return {
            p: (lambda p=p: shown(p, self.servers[p].app, self.shops[p].external_id))
            for p in PLATFORMS
        }

    def check_start(self) -> None:
        for p, read in self.readers().items():
            figs = read()
            wrong = {s: figs.get(s) for s in self.skus if figs.get(s) != self.args.start}
            if wrong:
                raise RuntimeError(
                    f"{p} does not show {self.args.start} of: {dict(list(wrong.items())[:5])}"
                )

    # counters

    def counters(self) -> dict[str, Any]:
        import redis

        from fusion.ratelimit.waits import RATE_LIMIT_WAITS_KEY

        knobs = {p: s.app.knobs.as_dict() for p, s in self.servers.items()}
        with redis.Redis.from_url(self.redis_server.url) as r:
            raw = r.hgetall(RATE_LIMIT_WAITS_KEY)
        waits = {k.decode(): int(float(v)) for k, v in raw.items()}
        cpu = {"bench (sandboxes, watcher)": _cpu_s(os.getpid())}
        for (proc, _log), name in zip(self.procs.procs, self.proc_names, strict=True):
            cpu[name] = _tree_cpu_s(proc.pid)
        if self.redis_server.proc is not None:
            cpu["redis"] = _cpu_s(self.redis_server.proc.pid)
        return {
            "ops": {p: c.snapshot() for p, c in self.calls.items()},
            "cpu": cpu,
            "machine": _machine_busy(),
            "requests": {p: k["request_count"] for p, k in knobs.items()},
            "throttled": {p: k["throttled_count"] for p, k in knobs.items()},
            "errors": {p: k["error_count"] for p, k in knobs.items()},
            "waits": waits,
        }

    def busy_jobs(self) -> int:
        return int(
            self.scalar(
                "SELECT count(*) FROM jobs WHERE org_id = :o AND status IN ('pending', 'running')"
                " AND job_type IN ('real_time_inventory', 'push_inventory', 'process_webhook')",
                o=self.org_id,
            )
            or 0
        )

    def jobs_between(self, since: datetime, until: datetime) -> dict[str, dict[str, int]]:
        with self.admin.connect() as conn:
            rows = conn.execute(
                self.text(
                    "SELECT coalesce(s.platform, 'none'), j.job_type, j.status, count(*)"
                    " FROM jobs j LEFT JOIN stores s ON s.id = j.store_id WHERE j.org_id = :o"
                    " AND j.created_at >= :a AND j.created_at < :b GROUP BY 1, 2, 3"
                ),
                {"o": self.org_id, "a": since, "b": until},
            ).all()
        out: dict[str, dict[str, int]] = {}
        for platform, job_type, status, n in rows:
            key = job_type if status == "completed" else f"{job_type} ({status})"
            out.setdefault(platform, {})[key] = int(n)
        return out

    def stages(self, since: datetime, until: datetime) -> dict[str, dict[str, Any]]:
        """Per store platform and job type: created → started (queue, debounce, sweep and
        reschedules) and started → finished (the run), p50 / p95 / max in seconds."""
        sql = """
            SELECT coalesce(s.platform, 'none') AS platform, j.job_type, count(*) AS n,
              {stats}
            FROM jobs j LEFT JOIN stores s ON s.id = j.store_id
            WHERE j.org_id = :o AND j.created_at >= :a AND j.created_at < :b
              AND j.status = 'completed'
            GROUP BY 1, 2 ORDER BY 1, 2
        """
        parts = []
        for name, expr in (
            ("wait", "extract(epoch FROM j.started_at - j.created_at)"),
            ("run", "extract(epoch FROM j.finished_at - j.started_at)"),
        ):
            for label, q in (("p50", 0.5), ("p95", 0.95)):
                parts.append(
                    f"percentile_cont({q}) WITHIN GROUP (ORDER BY {expr}) AS {name}_{label}"
                )
            parts.append(f"max({expr}) AS {name}_max")
        with self.admin.connect() as conn:
            rows = conn.execute(
                self.text(sql.format(stats=", ".join(parts))),
                {"o": self.org_id, "a": since, "b": until},
            ).mappings()
            out: dict[str, dict[str, Any]] = {}
            for row in rows:
                out.setdefault(row["platform"], {})[row["job_type"]] = {
                    "n": row["n"],
                    **{
                        f"{stage}_s": {
                            k: round(float(row[f"{stage}_{k}"]), 3) for k in ("p50", "p95", "max")
                        }
                        for stage in ("wait", "run")
                    },
                }
        return out

    # one rate

    def run_rate(self, rate: float, sold: Counter[str]) -> dict[str, Any]:
        import requests

        session = requests.Session()
        watcher = Watcher(self.readers(), self.args.poll_ms / 1000)
        watcher.timeout_s = self.args.settle_timeout
        watcher.start()
        before = self.counters()
        since = datetime.now(UTC)
        load_before = os.getloadavg()
        count = int(rate * self.args.seconds)
        t0 = time.monotonic()
        overlapping = 0
        late = 0.0
        for n in range(count):
            due = t0 + n / rate
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            else:
                late = max(late, -wait)
            origin = PLATFORMS[n % len(PLATFORMS)]
            free = [s for s in self.skus if watcher.free(s)]
            sku = self.rng.choice(free or self.skus)
            overlapping += not free
            sold[sku] += 1
            sale = Sale(n, origin, sku, self.args.start - sold[sku], time.monotonic(), not free)
            watcher.add(sale)
            resp = session.post(
                f"{self.servers[origin].url}/_sandbox/orders",
                json={**self.shops[origin].order_body, "lines": [{"sku": sku, "quantity": 1}]},
                timeout=10,
            )
            if resp.status_code not in (200, 201):
                raise RuntimeError(
                    f"{origin} refused an order: {resp.status_code} {resp.text[:200]}"
                )
        placing_s = time.monotonic() - t0
        deadline = time.monotonic() + self.args.settle_timeout + 5
        while watcher.pending() and time.monotonic() < deadline:
            time.sleep(0.2)
        settle_deadline = time.monotonic() + 60
        while self.busy_jobs() and time.monotonic() < settle_deadline:
            time.sleep(0.2)
        watcher.stop()
        window_s = time.monotonic() - t0
        until = datetime.now(UTC)
        after = self.counters()
        load_after = os.getloadavg()
        sales = watcher.done + watcher.in_flight
        latency: dict[str, Any] = {}
        by_origin: dict[str, Any] = {}
        by_route: dict[str, Any] = {}  # origin -> destination -> summary
        for p in PLATFORMS:
            others = [s for s in sales if s.origin != p]
            values = sorted(s.seen[p] for s in others if p in s.seen)
            latency[p] = _summary(values, len(others) - len(values))
            mine = [s for s in sales if s.origin == p]
            seen = sorted(v for s in mine for v in s.seen.values())
            by_origin[p] = _summary(seen, len(mine) * (len(PLATFORMS) - 1) - len(seen))
            by_route[p] = {}
            for q in PLATFORMS:
                if q != p:
                    route = sorted(s.seen[q] for s in mine if q in s.seen)
                    by_route[p][q] = _summary(route, len(mine) - len(route))
        calls = {p: after["requests"][p] - before["requests"][p] for p in PLATFORMS}
        operations = {}
        for p in PLATFORMS:
            delta = after["ops"][p] - before["ops"][p]
            operations[p] = {f"{op} -> {status}": n for (op, status), n in sorted(delta.items())}
        busy = after["machine"][0] - before["machine"][0]
        total = after["machine"][1] - before["machine"][1]
        platforms_waits = set(after["waits"]) | set(before["waits"])
        return {
            "rate_per_s": rate,
            "seconds": self.args.seconds,
            "sales": len(sales),
            "placing_s": round(placing_s, 2),
            "placing_fell_behind_s": round(late, 3),
            "overlapping_sales": overlapping,
            "window_s": round(window_s, 1),
            "latency_s": latency,
            "latency_by_origin_s": by_origin,
            "latency_by_route_s": by_route,
            "calls": calls,
            "calls_per_sale": {
                **{p: round(c / len(sales), 3) for p, c in calls.items()},
                "all": round(sum(calls.values()) / len(sales), 3),
            },
            "throttled": {p: after["throttled"][p] - before["throttled"][p] for p in PLATFORMS},
            "sandbox_errors": {p: after["errors"][p] - before["errors"][p] for p in PLATFORMS},
            "rate_limit_waits": {
                p: after["waits"].get(p, 0) - before["waits"].get(p, 0) for p in platforms_waits
            },
            "operations": operations,
            "jobs": self.jobs_between(since, until),
            "job_stages": self.stages(since, until),
            "cpu_s": {k: round(after["cpu"][k] - v, 1) for k, v in before["cpu"].items()},
            "machine_cpu_busy": round(busy / total, 3) if total else None,
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in load_after],
        }


def _table(results: list[dict[str, Any]]) -> str:
    lines = [
        f"{'rate/s':>6} {'platform':<10} {'p50 s':>7} {'p95 s':>7} {'max s':>7} "
        f"{'unseen':>6} {'calls/sale':>10} {'429s':>5} {'push jobs':>9}"
    ]
    for r in results:
        for p in PLATFORMS:
            lat = r["latency_s"][p]
            jobs = r["jobs"].get(p, {})
            pushes = sum(n for k, n in jobs.items() if k.split(" ")[0] in PUSH_TYPES)
            f = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
            lines.append(
                f"{r['rate_per_s']:>6g} {p:<10} {f(lat['p50']):>7} {f(lat['p95']):>7} "
                f"{f(lat['max']):>7} {lat['not_seen']:>6} {r['calls_per_sale'][p]:>10.2f} "
                f"{r['throttled'][p]:>5} {pushes:>9}"
            )
        lines.append(
            f"{'':>6} {'all':<10} {'':>7} {'':>7} {'':>7} {'':>6} "
            f"{r['calls_per_sale']['all']:>10.2f}   ({r['sales']} sales, load "
            f"{r['loadavg_after'][0]:.2f})"
        )
    return "\n".join(lines)


def main() -> int:
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--skus", type=int, default=200)
    parser.add_argument("--rates", default="1,4,10", help="sales per second, comma-separated")
    parser.add_argument("--seconds", type=float, default=30, help="of sales at each rate")
    parser.add_argument("--start", type=int, default=10_000, help="units of each SKU at start")
    parser.add_argument("--concurrency", type=int, default=8, help="threads per worker")
    parser.add_argument("--poll-ms", type=float, default=50, help="channel reading interval")
    parser.add_argument("--settle-timeout", type=float, default=120, help="s per sale")
    parser.add_argument("--rest", type=float, default=5, help="s between rates")
    parser.add_argument("--sweep-s", type=float, default=None, help="FUSION_SWEEP_INTERVAL_S")
    parser.add_argument(
        "--order-queue-poll-s", type=int, default=None, help="FUSION_ORDER_QUEUE_POLL_S"
    )
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--label", default=None, help="the run's key in the JSON")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's access log (Amazon's SQS)
    bench = Bench(args)
    started = time.monotonic()
    load_start = os.getloadavg()
    results: list[dict[str, Any]] = []
    try:
        bench.setup_servers()
        bench.start_hub()
        print(f"hub settings: {bench.effective}")
        t = time.monotonic()
        bench.setup_catalog()
        took = time.monotonic() - t
        print(f"{len(bench.skus)} SKUs published to {len(PLATFORMS)} stores in {took:.0f} s")
        bench.check_start()
        sold: Counter[str] = Counter()
        for rate in rates:
            time.sleep(args.rest)  # let the platforms' allowances refill between rates
            t = time.monotonic()
            results.append(bench.run_rate(rate, sold))
            print(f"rate {rate:g}/s done in {time.monotonic() - t:.0f} s")
            print(_table(results[-1:]), flush=True)
    except (RuntimeError, AssertionError) as exc:
        logs = bench.procs.dir if hasattr(bench, "procs") else None
        print(f"bench failed: {exc}; worker logs in {logs}", file=sys.stderr)
        bench.keep_logs = True  # the worker logs stay for a look
        return 1
    finally:
        bench.close()
    if len(results) > 1:
        print(_table(results))
    out = {
        "what": "time from a sale on one channel to every other channel showing the new figure; "
        "platform calls and throttled answers per sale (bench/fanout.py docstring)",
        "targets": {
            "real_time_p95_s": 1.0,
            "other_p95_s": 10.0,
            "throttled": 0,
            "calls_per_sale": "falling as the rate rises",
        },
        "real_time_channels": ["shopify", "amazon_sc", "printify"],
        "skus": len(bench.skus),
        "stores": list(PLATFORMS),
        "start_quantity": args.start,
        "hub_settings": bench.effective,
        "workers": f"one per queue ({', '.join([*PLATFORMS, 'default'])}), threads x "
        f"{args.concurrency}; beat; API (werkzeug, threaded) and sandboxes in the bench process",
        "poll_ms": args.poll_ms,
        "rates": results,
        "machine": {
            "cores": os.cpu_count(),
            "loadavg_start": [round(x, 2) for x in load_start],
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        },
        "command": "python bench/fanout.py " + " ".join(sys.argv[1:]),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_s": round(time.monotonic() - started, 1),
    }
    label = args.label or (
        "hub defaults"
        if args.sweep_s is None and args.order_queue_poll_s is None
        else f"sweep {bench.effective['sweep_interval_s']:g} s, "
        f"order queue poll {bench.effective['order_queue_poll_s']} s"
    )
    # One file, a run per setting: a run replaces only the one of its label.
    existing = json.loads(args.out.read_text()) if args.out.exists() else {}
    runs = existing.get("runs", {})
    runs[label] = out
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    print(f"wrote {args.out} (run {label!r})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
