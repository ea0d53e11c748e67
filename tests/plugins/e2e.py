"""The generic end-to-end harness: sandboxes, real Celery workers, a hub org with stores.

Every plugin-by-capability test drives real jobs: rows enqueued through ``fusion.jobs.service``,
Celery messages on the private Redis, worker processes (``celery -A workers.app worker``) and
``beat`` (the dispatcher sweep that republishes rescheduled jobs), the plugin speaking HTTP to
its sandbox over loopback. Nothing is mocked.

Each platform needs a *provisioner* here: how to create a shop on its sandbox and which
credentials / settings the hub's store then holds. The platform engineers' plugins read them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import Engine, text

import boot
from fusion.config import Settings
from fusion.db.session import Database
from fusion.jobs import dispatch
from fusion.jobs import service as jobs
from fusion.sandbox import SANDBOXES, SandboxServer
from fusion.stores.service import connect_store
from tests.support.egress import LOOPBACK
from workers.dispatcher import CeleryDispatcher, producer_app

TERMINAL = ("completed", "failed", "cancelled")
ROOT = Path(__file__).resolve().parents[2]


# -- shops on the sandboxes -----------------------------------------------------------------
@dataclass(frozen=True)
class ShopSpec:
    """A shop created on a sandbox, and how the hub's store must be set up to reach it."""

    external_id: str
    credentials: Mapping[str, str]
    settings: Mapping[str, Any] = field(default_factory=dict)
    webhook_secret: str | None = None
    order_body: Mapping[str, Any] = field(default_factory=dict)  # identifies the shop
    # The store's catalog rules: Etsy and Amazon need a category mapped to publish.
    catalog_rules: Mapping[str, Any] = field(default_factory=dict)


def _post(url: str, body: Mapping[str, Any]) -> dict[str, Any]:
    resp = requests.post(url, json=dict(body), timeout=10)
    assert resp.status_code in (200, 201), f"{url}: {resp.status_code} {resp.text[:300]}"
    data: dict[str, Any] = resp.json()
    return data


# Etsy requires a taxonomy_id and Amazon a product type: the tests' stores map every category
# to one (the catalog rules' "*").
ANY_CATEGORY: dict[str, Mapping[str, Any]] = {
    "etsy": {"categories": {"*": "1"}},
    "amazon_sc": {"categories": {"*": "PRODUCT"}},
}


def _shopify(url: str, secret: str) -> ShopSpec:
    domain = f"s{uuid.uuid4().hex[:10]}.myshopify.com"
    token = f"shpat_{secret}"
    _post(f"{url}/_sandbox/shops", {"shop": domain, "token": token, "webhook_secret": "whsec_x"})
    return ShopSpec(domain, {"access_token": token}, {}, "whsec_x", {"shop": domain})


def _etsy(url: str, secret: str) -> ShopSpec:
    shop_id = int(uuid.uuid4().int % 10**8) + 1000
    user_id = int(uuid.uuid4().int % 10**6) + 10
    keys = {"keystring": "ks" + uuid.uuid4().hex[:16], "shared_secret": "ss" + uuid.uuid4().hex}
    _post(
        f"{url}/_sandbox/shops",
        {"shop_id": shop_id, "user_id": user_id, "access_token": secret, **keys,
         "webhook_secret": "whsec_etsy"},
    )  # fmt: skip
    # Etsy's OAuth tokens are "<user id>.<token>"; the hub stores the whole of it.
    creds = {**keys, "access_token": f"{user_id}.{secret}"}
    return ShopSpec(
        str(shop_id), creds, {}, "whsec_etsy", {"shop_id": shop_id}, ANY_CATEGORY["etsy"]
    )


def point_etsy_webhooks(sandbox_url: str, shop: ShopSpec, webhook_url: str) -> None:
    """Etsy has no webhook API: the merchant points the portal's order events at the hub. The
    sandbox's shop is made again, with its webhook URL."""
    requests.post(
        f"{sandbox_url}/_sandbox/shops",
        json={
            "shop_id": int(shop.external_id),
            "user_id": int(shop.credentials["access_token"].split(".")[0]),
            "keystring": shop.credentials["keystring"],
            "shared_secret": shop.credentials["shared_secret"],
            "access_token": shop.credentials["access_token"].split(".", 1)[1],
            "webhook_secret": shop.webhook_secret,
            "webhook_url": webhook_url,
        },
        timeout=10,
    ).raise_for_status()


def _amazon(url: str, secret: str) -> ShopSpec:
    seller = "A" + uuid.uuid4().hex[:12].upper()
    creds = {
        "client_id": "amzn1.application-oa2-client.x",
        "client_secret": "cs-" + uuid.uuid4().hex,
        "refresh_token": f"Atzr|{secret}",
    }
    info = _post(f"{url}/_sandbox/shops", {"shop": seller, **creds})
    creds |= {
        "aws_access_key_id": info["aws_access_key_id"],
        "aws_secret_access_key": info["aws_secret_access_key"],
    }
    settings = {
        "sqs_queue_url": info["sqs_queue_url"],
        "sqs_endpoint_url": info["sqs_endpoint_url"],
        "feed_poll_interval_s": 0.05,
        "feed_poll_attempts": 20,
    }
    return ShopSpec(seller, creds, settings, None, {"shop": seller}, ANY_CATEGORY["amazon_sc"])


def _printify(url: str, secret: str) -> ShopSpec:
    info = _post(f"{url}/_sandbox/shops", {"token": secret, "webhook_secret": "pfy-secret"})
    shop_id = str(info.get("shop_id") or info.get("id") or info.get("shop"))
    return ShopSpec(
        shop_id,
        {"access_token": secret},
        {},
        "pfy-secret",
        {"shop_id": info.get("shop_id", shop_id)},
    )


PROVISIONERS: dict[str, Callable[[str, str], ShopSpec]] = {
    "shopify": _shopify,
    "etsy": _etsy,
    "amazon_sc": _amazon,
    "printify": _printify,
}


@contextmanager
def sandboxes(platforms: Iterable[str]) -> Iterator[dict[str, SandboxServer]]:
    """Every named sandbox on a loopback port, stopped at the end."""
    started: dict[str, SandboxServer] = {}
    try:
        for platform in platforms:
            started[platform] = SandboxServer(SANDBOXES[platform]()).start()
        yield started
    finally:
        for server in started.values():
            server.stop()


# -- worker processes -----------------------------------------------------------------------
def worker_env(hub_env: Mapping[str, str], **extra: str) -> dict[str, str]:
    """The environment of a worker in these tests: fast ladders and sweeps, same database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUSION_")}
    env.update(hub_env)
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "FUSION_RETRY_LADDER": "1,1,1,2",
            "FUSION_MAX_ATTEMPTS": "6",
            "FUSION_SWEEP_INTERVAL_S": "0.3",
            "FUSION_DISPATCH_STALE_S": "3",
            "FUSION_LEASE_SECONDS": "10",
            "FUSION_BROKER_RESTORE_INTERVAL_S": "1",
        }
    )
    env.update(extra)
    return env


class Processes:
    """Celery worker and beat processes; their combined output is kept for leak checks."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.dir = Path(tempfile.mkdtemp(prefix="fusion-e2e-"))
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def _spawn(self, name: str, args: list[str]) -> None:
        self._start(name, [sys.executable, "-m", "celery", "-A", "workers.app", *args])

    def _start(self, name: str, argv: Sequence[str]) -> None:
        log = self.dir / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                list(argv),
                env=self.env,
                cwd=str(ROOT),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.procs.append((proc, log))

    def worker(self, queues: str, *, concurrency: int = 4) -> None:
        n = len(self.procs)
        self._spawn(
            f"worker{n}",
            ["worker", "-Q", queues, "--pool", "threads", "-c", str(concurrency), "-n",
             f"e2e{n}-{uuid.uuid4().hex[:6]}@%h", "--without-gossip", "--without-mingle",
             "-l", "INFO"],
        )  # fmt: skip

    def beat(self) -> None:
        self._spawn("beat", ["beat", "-s", str(self.dir / "beat-schedule"), "-l", "INFO"])

    def api(self, port: int) -> None:
        """The API on 127.0.0.1:``port`` as it is deployed: gunicorn with the hub's worker
        class, processes and threads (``fusion.runtime.services.api_server_command``)."""
        from fusion.runtime.services import api_server_command

        self._start("api", api_server_command(sys.executable, "api.wsgi:app", f"127.0.0.1:{port}"))

    def output(self) -> str:
        return "\n".join(log.read_text(errors="replace") for _, log in self.procs)

    def stop(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc, _ in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@contextmanager
def workers_and_beat(
    env: Mapping[str, str], queues: str, *, workers: int = 1, concurrency: int = 3
) -> Iterator[Processes]:
    """``workers`` worker processes on ``queues`` plus beat, stopped at the end."""
    processes = Processes(env)
    try:
        for _ in range(workers):
            processes.worker(queues, concurrency=concurrency)
        processes.beat()
        yield processes
    finally:
        processes.stop()


# -- the hub side ---------------------------------------------------------------------------
@dataclass
class Store:
    id: uuid.UUID
    platform: str
    shop: ShopSpec
    sandbox: SandboxServer

    def knobs(self, **values: Any) -> None:
        _post(f"{self.sandbox.url}/_sandbox/knobs", values)

    def sandbox_state(self) -> dict[str, Any]:
        resp = requests.get(f"{self.sandbox.url}/_sandbox/state", timeout=10)
        resp.raise_for_status()
        data: dict[str, Any] = resp.json()
        return data

    def drain_platform(self, *, limit: int = 200) -> int:
        """Spend the shop's allowance on the platform from outside the hub (another app on
        the same shop, as it were) until the platform throttles; returns the calls made."""
        from fusion.errors import RateLimited
        from fusion.plugins.base import StoreConnection
        from fusion.plugins.http import StoreHttp
        from fusion.plugins.registry import get_plugin
        from fusion.security.crypto import Secret

        plugin = get_plugin(self.platform)
        conn = StoreConnection(
            store_id=f"drain-{uuid.uuid4()}",
            org_id="outside",
            platform=self.platform,
            external_id=self.shop.external_id,
            base_url=self.sandbox.url,
            credentials={k: Secret(v) for k, v in self.shop.credentials.items()},
            settings=dict(self.shop.settings),
        )
        for calls in range(1, limit + 1):
            # a fresh helper each time: one that has made calls would wait out a short 429
            client = plugin.client(
                conn, StoreHttp(conn, spec=plugin.rate_limit, bucket=None, egress=LOOPBACK)
            )
            try:
                client.list_products()
            except RateLimited:
                return calls
        raise AssertionError(f"{self.platform} never throttled after {limit} calls")

    def place_order(self, sku: str, quantity: int = 1) -> dict[str, Any]:
        return _post(
            f"{self.sandbox.url}/_sandbox/orders",
            {**self.shop.order_body, "lines": [{"sku": sku, "quantity": quantity}]},
        )


class Hub:
    """One org of the hub as the tests drive it: stores, catalog rows, jobs."""

    def __init__(
        self, settings: Settings, database: Database, admin_engine: Engine, org_id: uuid.UUID
    ) -> None:
        self.settings = settings
        self.database = database
        self.admin = admin_engine
        self.org_id = org_id
        boot.load_jobs()
        # celeryconfig read this process's environment (no FUSION_REDIS_URL here): point the
        # publisher at the test run's private Redis, where the workers listen.
        app = producer_app()
        app.conf.broker_url = settings.redis_url
        dispatch.install(CeleryDispatcher(app))

    def connect(
        self,
        platform: str,
        sandbox: SandboxServer,
        *,
        secret: str | None = None,
        rate_limit_config: Mapping[str, Any] | None = None,
        store_settings: Mapping[str, Any] | None = None,
    ) -> Store:
        shop = PROVISIONERS[platform](sandbox.url, secret or "tok" + uuid.uuid4().hex)
        with self.database.org_session(self.org_id) as session:
            store = connect_store(
                session,
                settings=self.settings,
                org_id=self.org_id,
                platform=platform,
                name=f"{platform} e2e",
                external_id=shop.external_id,
                base_url=sandbox.url,
                credentials=shop.credentials,
                webhook_secret=shop.webhook_secret,
                rate_limit_config=rate_limit_config,
                store_settings={**shop.settings, **(store_settings or {})},
                catalog_rules=shop.catalog_rules,
            )
            return Store(store.id, platform, shop, sandbox)

    def product(
        self, store: Store, *, sku: str | None = None, quantity: int = 5, title: str = "Mug"
    ) -> tuple[uuid.UUID, str]:
        """A product with one variant and a draft listing on ``store``: (listing id, sku)."""
        sku = sku or f"SKU-{uuid.uuid4().hex[:8].upper()}"
        product_id, listing_id = uuid.uuid4(), uuid.uuid4()
        with self.admin.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO products (id, org_id, title, description) "
                    "VALUES (:id, :o, :t, 'A mug')"
                ),
                {"id": product_id, "o": self.org_id, "t": title},
            )
            conn.execute(
                text(
                    "INSERT INTO product_variants (id, org_id, product_id, sku, title, price, "
                    "available_quantity) VALUES (:id, :o, :p, :s, 'Default', :price, :q)"
                ),
                {"id": uuid.uuid4(), "o": self.org_id, "p": product_id, "s": sku,
                 "price": Decimal("12.50"), "q": quantity},
            )  # fmt: skip
            conn.execute(
                text(
                    "INSERT INTO listings (id, org_id, product_id, store_id) "
                    "VALUES (:id, :o, :p, :s)"
                ),
                {"id": listing_id, "o": self.org_id, "p": product_id, "s": store.id},
            )
        return listing_id, sku

    def set_quantity(self, sku: str, quantity: int) -> None:
        with self.admin.begin() as conn:
            conn.execute(
                text(
                    "UPDATE product_variants SET available_quantity = :q "
                    "WHERE org_id = :o AND sku = :s"
                ),
                {"q": quantity, "o": self.org_id, "s": sku},
            )

    def enqueue(
        self, job_type: str, store: Store, payload: Mapping[str, Any] | None = None
    ) -> uuid.UUID:
        with self.database.org_session(self.org_id) as session:
            job = jobs.enqueue(
                session, org_id=self.org_id, job_type=job_type, payload=payload, store_id=store.id
            )
            return job.id

    def job(self, job_id: uuid.UUID) -> Any:
        with self.admin.connect() as conn:
            return conn.execute(text("SELECT * FROM jobs WHERE id = :id"), {"id": job_id}).one()

    def wait(self, job_ids: Iterable[uuid.UUID], *, timeout: float = 60) -> dict[uuid.UUID, Any]:
        """Wait until every job is terminal; returns their rows. Fails with their states."""
        ids = list(job_ids)
        deadline = time.monotonic() + timeout
        while True:
            with self.admin.connect() as conn:
                rows = conn.execute(
                    text("SELECT * FROM jobs WHERE id = ANY(:ids)"), {"ids": ids}
                ).all()
            if len(rows) == len(ids) and all(r.status in TERMINAL for r in rows):
                return {r.id: r for r in rows}
            if time.monotonic() > deadline:
                states = {str(r.id)[:8]: (r.status, r.attempts, r.last_error) for r in rows}
                raise AssertionError(f"jobs not done after {timeout}s: {states}")
            time.sleep(0.1)

    def run(
        self,
        job_type: str,
        store: Store,
        payload: Mapping[str, Any] | None = None,
        *,
        timeout: float = 60,
    ) -> Any:
        job_id = self.enqueue(job_type, store, payload)
        return self.wait([job_id], timeout=timeout)[job_id]

    def logs(self, job_id: uuid.UUID) -> list[str]:
        with self.admin.connect() as conn:
            return list(
                conn.execute(
                    text("SELECT message FROM job_logs WHERE job_id = :id ORDER BY created_at"),
                    {"id": job_id},
                ).scalars()
            )

    def listing(self, listing_id: uuid.UUID) -> Any:
        with self.admin.connect() as conn:
            return conn.execute(
                text("SELECT * FROM listings WHERE id = :id"), {"id": listing_id}
            ).one()
