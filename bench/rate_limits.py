"""Rate-limit utilisation: 500 inventory updates per platform through 4 worker processes.

For each platform: a sandbox with its default limits, a store in a fresh org, 500 SKUs (50
products of 10 variants; Printify 167 of 3, its template's variant count) published through
``create_product`` jobs (setup, not measured), then 500
inventory updates as 50 jobs of 10 SKUs each (``real_time_inventory`` where the platform has
it, else ``bulk_operations``), run by 4 Celery worker processes (threads pool, 4 each) that
share the store's token bucket. Measured over that phase:

- requests: API calls the sandbox received (control endpoints excluded)
- throttled: 429 / THROTTLED answers it gave
- elapsed_s: first enqueue to last job finished
- utilisation: what was used / what the platform allowed in that time. Requests for Etsy,
  Amazon and Printify (allowed = burst + rate x elapsed); cost points for Shopify, read from
  the sandbox's own bucket (allowed = points available at the start + restore x elapsed).

Starts everything itself (scratch database on FUSION_BENCH_DATABASE_URL, else the machine's
127.0.0.1:5432 or an embedded Postgres; a private redis-server; sandboxes; workers; beat) and
writes ``bench/results/rate_limits.json``. Run: ``.venv/bin/python bench/rate_limits.py``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from fusion.config import Settings  # noqa: E402
from fusion.db import migrate  # noqa: E402
from fusion.db.session import Database, make_engine  # noqa: E402
from fusion.plugins.base import Capability  # noqa: E402
from fusion.plugins.models import ContractLevel  # noqa: E402
from fusion.plugins.registry import get_plugin  # noqa: E402
from tests.plugins.e2e import Hub, Processes, Store, sandboxes, worker_env  # noqa: E402
from tests.support.servers import RedisServer, ScratchDatabase, admin_postgres_url  # noqa: E402

PLATFORMS = ("shopify", "etsy", "amazon_sc", "printify")
UPDATES, JOB_SIZE = 500, 10
VARIANTS = {"printify": 3}  # Printify's default design template has three variant ids
# Defaults of the sandboxes (PLATFORMS.md): (rate per second, burst) in the unit counted.
ALLOWED = {"etsy": (10.0, 10.0), "amazon_sc": (5.0, 10.0), "printify": (10.0, 10.0)}


def _catalog(hub: Hub, store: Store) -> tuple[list[uuid.UUID], list[str]]:
    listings, skus = [], []
    variants = VARIANTS.get(store.platform, 10)
    with hub.admin.begin() as conn:
        for p in range(-(-UPDATES // variants)):
            product_id, listing_id = uuid.uuid4(), uuid.uuid4()
            conn.execute(
                text("INSERT INTO products (id, org_id, title) VALUES (:id, :o, :t)"),
                {"id": product_id, "o": hub.org_id, "t": f"Bench product {p}"},
            )
            for v in range(variants):
                sku = f"B{p:03d}-{v:02d}-{uuid.uuid4().hex[:4]}"
                conn.execute(
                    text(
                        "INSERT INTO product_variants (id, org_id, product_id, sku, title, price,"
                        " available_quantity) VALUES (:id, :o, :p, :s, :t, :price, 5)"
                    ),
                    {"id": uuid.uuid4(), "o": hub.org_id, "p": product_id, "s": sku,
                     "t": f"Size {v}", "price": Decimal("9.99")},
                )  # fmt: skip
                skus.append(sku)
            conn.execute(
                text(
                    "INSERT INTO listings (id, org_id, product_id, store_id) "
                    "VALUES (:id, :o, :p, :s)"
                ),
                {"id": listing_id, "o": hub.org_id, "p": product_id, "s": store.id},
            )
            listings.append(listing_id)
    return listings, skus[:UPDATES]


class ShopifyPoints:
    """Points spent, read from the sandbox's bucket every 50 ms (restores included)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.spent = 0.0
        self.start_available = 0.0
        self.rate = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _bucket(self) -> dict[str, float]:
        state = self.store.sandbox_state()["state"][self.store.shop.external_id]["bucket"]
        return {k: float(v) for k, v in state.items()}

    def start(self) -> None:
        first = self._bucket()
        self.start_available, self.rate = first["currentlyAvailable"], first["restoreRate"]
        self._thread.start()

    def _poll(self) -> None:
        prev, at = self._bucket(), time.monotonic()
        while not self._stop.is_set():
            time.sleep(0.05)
            cur, now = self._bucket(), time.monotonic()
            expected = min(
                prev["maximumAvailable"], prev["currentlyAvailable"] + self.rate * (now - at)
            )
            self.spent += max(0.0, expected - cur["currentlyAvailable"])
            prev, at = cur, now

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def run_platform(hub: Hub, platform: str, server: Any) -> dict[str, Any]:
    store = hub.connect(platform, server)
    listings, skus = _catalog(hub, store)
    setup = [hub.enqueue("create_product", store, {"listing_id": str(i)}) for i in listings]
    rows = hub.wait(setup, timeout=600)
    failed = [r.last_error for r in rows.values() if r.status != "completed"]
    if failed:
        raise RuntimeError(f"{platform}: setup failed: {failed[:3]}")
    time.sleep(2.0)  # let the platform's allowance refill: measure from a rested store
    plugin = get_plugin(platform)
    job_type = (
        "real_time_inventory"
        if plugin.level(Capability.REAL_TIME_INVENTORY) != ContractLevel.UNSUPPORTED
        else "bulk_operations"
    )
    before = store.sandbox_state()["knobs"]
    points = ShopifyPoints(store) if platform == "shopify" else None
    if points:
        points.start()
    started = time.monotonic()
    jobs = []
    for n in range(0, len(skus), JOB_SIZE):
        updates = [{"sku": s, "quantity": 7} for s in skus[n : n + JOB_SIZE]]
        jobs.append(hub.enqueue(job_type, store, {"updates": updates}))
    rows = hub.wait(jobs, timeout=600)
    elapsed = time.monotonic() - started
    if points:
        points.stop()
    after = store.sandbox_state()["knobs"]
    requests_ = after["request_count"] - before["request_count"]
    throttled = after["throttled_count"] - before["throttled_count"]
    if points:
        allowed = points.start_available + points.rate * elapsed
        used = points.spent
    else:
        rate, burst = ALLOWED[platform]
        allowed, used = burst + rate * elapsed, float(requests_)
    not_done = [r.status for r in rows.values() if r.status != "completed"]
    return {
        "requests": requests_,
        "throttled": throttled,
        "elapsed_s": round(elapsed, 2),
        "utilisation": round(used / allowed, 3),
        "job_type": job_type,
        "updates": len(skus),
        "jobs_not_completed": len(not_done),
    }


def main() -> int:
    only = sys.argv[1:] or list(PLATFORMS)
    redis_server = RedisServer()
    redis_server.start()
    database = ScratchDatabase(os.environ.get("FUSION_BENCH_DATABASE_URL") or admin_postgres_url())
    database.create()
    home = Path(tempfile.mkdtemp(prefix="fusion-bench-"))
    hub_env = {
        "FUSION_ENV": "test",
        "FUSION_HOME": str(home),
        "FUSION_DATABASE_URL": database.url,
        "FUSION_REDIS_URL": redis_server.url,
    }
    procs = Processes(worker_env(hub_env, FUSION_LOG_LEVEL="WARNING"))
    results: dict[str, Any] = {}
    try:
        settings = Settings.from_env(hub_env)
        migrate.upgrade(settings)
        assert settings.app_database_url and settings.database_url
        db = Database(settings.app_database_url)
        admin = make_engine(settings.database_url)
        for _ in range(4):
            procs.worker("shopify,etsy,amazon_sc,printify,default", concurrency=4)
        procs.beat()
        with sandboxes(only) as servers:
            for platform in only:
                org = uuid.uuid4()
                with admin.begin() as conn:
                    conn.execute(
                        text("INSERT INTO orgs (id, name, slug) VALUES (:id, :n, :s)"),
                        {"id": org, "n": f"bench {platform}", "s": f"bench-{org.hex[:8]}"},
                    )
                hub = Hub(settings, db, admin, org)
                t0 = time.monotonic()
                try:
                    results[platform] = run_platform(hub, platform, servers[platform])
                except Exception as exc:  # report the platform as not measured, go on
                    results[platform] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
                print(f"{platform}: {results[platform]} ({time.monotonic() - t0:.0f}s)")
        db.dispose()
        admin.dispose()
    finally:
        procs.stop()
        database.drop()
        redis_server.close()
    out = ROOT / "bench" / "results" / "rate_limits.json"
    existing = json.loads(out.read_text()) if out.exists() else {}
    command = " ".join([".venv/bin/python bench/rate_limits.py", *sys.argv[1:]])
    for result in results.values():
        result["command"] = command
    existing.pop("_command", None)
    existing.update(results)
    out.write_text(json.dumps(existing, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
