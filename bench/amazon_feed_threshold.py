"""When a real-time Amazon push of N SKUs shows its figures sooner as one JSON_LISTINGS_FEED
than as N listing patches, against the Amazon sandbox over loopback, through the hub's own
client and HTTP helper and a store bucket in Redis (full at the start of each push, as for a
push after a quiet spell; and half spent, as under load).

    python bench/amazon_feed_threshold.py [--redis redis://127.0.0.1:6379/0] [--sizes 1,2,...]

Prints one line per size and writes ``bench/results/amazon_feed_threshold.json``. The
sandbox finishes a feed at its second status read; real Amazon takes minutes (docs/plugins.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fusion.plugins import amazon
from fusion.plugins.base import InventoryUpdate, ProductDraft, StoreConnection, VariantDraft
from fusion.plugins.http import StoreHttp
from fusion.ratelimit.bucket import BucketConfig, TokenBucket
from fusion.sandbox import SandboxServer
from fusion.sandbox.amazon import AmazonSandbox
from fusion.security.crypto import Secret
from fusion.security.egress import EgressPolicy

OUT = Path(__file__).resolve().parent / "results" / "amazon_feed_threshold.json"


def _conn(url: str) -> StoreConnection:
    seller = "A" + uuid.uuid4().hex[:12].upper()
    creds = {"client_id": "c", "client_secret": "s" + uuid.uuid4().hex, "refresh_token": "r"}
    import requests

    requests.post(f"{url}/_sandbox/shops", json={"shop": seller, **creds}, timeout=30)
    return StoreConnection(
        store_id=str(uuid.uuid4()),
        org_id=str(uuid.uuid4()),
        platform="amazon_sc",
        external_id=seller,
        base_url=url,
        credentials={k: Secret(v) for k, v in creds.items()},
        settings={"feed_poll_interval_s": 15, "inventory_feed_min_skus": 10_000},
    )


def _client(conn: StoreConnection, client: redis.Redis) -> tuple[Any, TokenBucket]:
    bucket = TokenBucket(
        client, conn.store_id, BucketConfig.resolve(amazon.plugin.rate_limit, None)
    )
    http = StoreHttp(
        conn,
        spec=amazon.plugin.rate_limit,
        bucket=bucket,
        egress=_loopback(),
        max_inline_wait_s=60,
    )
    return amazon.plugin.client(conn, http), bucket


def _loopback() -> EgressPolicy:
    from tests.support.egress import LOOPBACK

    return LOOPBACK


def _push(client: Any, bucket: TokenBucket, skus: list[str], how: str, spent: float) -> float:
    # Every bucket full again, the operations' own too: this measures latency, not quota.
    for key in bucket.client.scan_iter(f"fusion:ratelimit:{{{bucket.store_id}*"):
        bucket.client.delete(key)
    if spent:
        bucket.take(spent)
    updates = [InventoryUpdate(sku, int(time.time()) % 1000) for sku in skus]
    started = time.perf_counter()
    if how == "feed":
        client.bulk_set_inventory(updates)
    else:
        client.set_inventory(updates)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--sizes", default="1,2,3,4,5,6,8,12")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    app = AmazonSandbox()
    server = SandboxServer(app).start()
    client_redis = redis.Redis.from_url(args.redis)
    rows = []
    try:
        conn = _conn(server.url)
        # The sandbox's Feeds plans (15 feeds, then one per 2 minutes) would throttle the
        # rounds: every operation gets the listings' 5 a second here.
        app.knobs.update({"rate_limit": [5, 5]})
        client, bucket = _client(conn, client_redis)
        skus = [f"T-{n}" for n in range(max(sizes))]
        for sku in skus:
            bucket.reset()
            client.create_product(
                ProductDraft(
                    title="t",
                    description="",
                    variants=[VariantDraft(sku=sku, price=1, quantity=1)],  # type: ignore[arg-type]
                    idempotency_key=sku,
                    category="PRODUCT",
                )
            )
        for size in sizes:
            row: dict[str, Any] = {"skus": size}
            for spent in (0.0, 2.5):
                for how in ("patch", "feed"):
                    times = [
                        _push(client, bucket, skus[:size], how, spent) for _ in range(args.rounds)
                    ]
                    row[f"{how}_s{'_half_spent' if spent else ''}"] = round(
                        statistics.median(times), 3
                    )
            rows.append(row)
            print(json.dumps(row))
    finally:
        server.stop()
        app.close()
        for key in client_redis.scan_iter("fusion:ratelimit:*"):
            if conn.store_id in key.decode():
                client_redis.delete(key)
    OUT.write_text(
        json.dumps(
            {
                "what": "seconds from the start of a real-time Amazon push of N SKUs until the "
                "sandbox holds every figure, patches vs one JSON_LISTINGS_FEED (median of rounds)",
                "command": "python bench/amazon_feed_threshold.py " + " ".join(sys.argv[1:]),
                "rows": rows,
            },
            indent=1,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
