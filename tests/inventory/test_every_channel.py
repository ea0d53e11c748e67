"""The hub's one promise, tried as a merchant would, through the HTTP API alone: one store per
platform, one product published to all four, sales on all four channels at the same moment,
a manual adjustment and a per-channel buffer. Afterwards the hub holds the right figure,
every channel shows it (read from its own sandbox), and every order is stored once.

Everything runs for real: the API on a loopback port that the sandboxes call back (its
public URL), Celery worker and beat processes, the four sandboxes, Amazon's SQS queue."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from flask import Flask
from werkzeug.serving import make_server

from api.app import create_app
from fusion.config import Settings
from fusion.jobs import dispatch
from fusion.sandbox import SandboxServer
from tests.api.conftest import make_team
from tests.plugins.e2e import (
    ShopSpec,
    point_etsy_webhooks,
    sandboxes,
    worker_env,
    workers_and_beat,
)
from tests.support.merchant import channel_shows, connect, ok

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::celery.exceptions.CPendingDeprecationWarning"),
]
PLATFORMS = ("shopify", "etsy", "amazon_sc", "printify")
START, SOLD, RETURNED, BUFFER = 40, 2, 5, 3


@dataclasses.dataclass
class Stack:
    app: Flask
    url: str
    servers: dict[str, SandboxServer]


@pytest.fixture(scope="module")
def stack(hub_env: dict[str, str], settings: Settings) -> Iterator[Stack]:
    holder: dict[str, Flask] = {}
    server = make_server("127.0.0.1", 0, lambda env, start: holder["app"](env, start))
    url = f"http://127.0.0.1:{server.server_port}"
    previous = dispatch.installed()
    hub_settings = dataclasses.replace(settings, public_url=url, request_quota_per_minute=10**6)
    holder["app"] = create_app(hub_settings)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env = worker_env(hub_env, FUSION_PUBLIC_URL=url, FUSION_ORDER_QUEUE_POLL_S="1")
    try:
        with (
            sandboxes(PLATFORMS) as servers,
            workers_and_beat(env, ",".join([*PLATFORMS, "default"]), concurrency=4),
        ):
            yield Stack(holder["app"], url, servers)
    finally:
        server.shutdown()
        server.server_close()
        dispatch.install(previous)
        holder["app"].extensions["fusion"].database.dispose()


def _eventually(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last is True or (last and not isinstance(last, bool | dict)):
            return last
        time.sleep(0.5)
    raise AssertionError(f"{what}: still {last!r} after {timeout}s")


def test_a_sale_on_every_channel_at_once_leaves_every_channel_right(stack: Stack) -> None:
    client = stack.app.test_client()
    team = make_team(client, "Everywhere")
    org = f"/orgs/{team.org_id}"
    # Given a store on each platform, connected through the API
    stores: dict[str, tuple[str, ShopSpec]] = {
        p: connect(team, stack.servers[p], p) for p in PLATFORMS
    }
    # Etsy has no webhook API: the merchant points the portal's order events at the hub
    etsy_id, etsy = stores["etsy"]
    point_etsy_webhooks(stack.servers["etsy"].url, etsy, f"{stack.url}/webhooks/etsy/{etsy_id}")
    # and a product of one SKU, 40 in stock, published to all four
    sku = f"TEE-{uuid.uuid4().hex[:6].upper()}"
    product = ok(team.owner.post(f"{org}/products", json={"title": "Linen tee"}), 201)
    variant = ok(
        team.owner.post(
            f"{org}/products/{product['id']}/variants",
            json={"sku": sku, "price": "25.00", "available_quantity": START},
        ),
        201,
    )
    listings = {}
    for platform, (store_id, _) in stores.items():
        listing = ok(
            team.owner.post(
                f"{org}/listings", json={"product_id": product["id"], "store_id": store_id}
            ),
            201,
        )
        ok(team.owner.post(f"{org}/listings/{listing['id']}/publish"), 202)
        listings[platform] = listing["id"]
    for platform, listing_id in listings.items():
        _eventually(
            lambda lid=listing_id: (
                team.owner.get(f"{org}/listings/{lid}").json["status"] == "published"
            ),
            60,
            f"{platform} listing published",
        )
    # and Etsy, a slow channel, holds back a buffer
    ok(
        team.owner.call(
            "PATCH", f"{org}/stores/{etsy_id}", json={"stock_rules": {"buffer": BUFFER}}
        )
    )

    # When a buyer on every channel buys 2 at the same moment
    def sell(platform: str) -> None:
        _, shop = stores[platform]
        requests.post(
            f"{stack.servers[platform].url}/_sandbox/orders",
            json={**shop.order_body, "lines": [{"sku": sku, "quantity": SOLD}]},
            timeout=10,
        ).raise_for_status()

    buyers = [threading.Thread(target=sell, args=(p,)) for p in PLATFORMS]
    for buyer in buyers:
        buyer.start()
    for buyer in buyers:
        buyer.join()
    # and every order has reached the hub (webhooks; Amazon by its queue)
    _eventually(
        lambda: len(team.viewer.get(f"{org}/orders").json["items"]) == len(PLATFORMS),
        90,
        "orders stored",
    )
    # and five come back to the shelf
    ok(
        team.operator.post(
            f"{org}/variants/{variant['id']}/stock-adjustments",
            json={"delta": RETURNED, "reason": "returned to shelf"},
        ),
        201,
    )

    # Then the hub holds 40 - 4 x 2 + 5
    expected = START - SOLD * len(PLATFORMS) + RETURNED
    stock = ok(team.viewer.get(f"{org}/variants/{variant['id']}/stock"))
    assert stock["available_quantity"] == expected
    # and every channel shows it, Etsy less its buffer
    wanted = {p: expected - (BUFFER if p == "etsy" else 0) for p in PLATFORMS}

    def channels() -> Any:
        seen = {p: channel_shows(p, stack.servers[p], shop, sku) for p, (_, shop) in stores.items()}
        return True if seen == wanted else {"seen": seen}

    _eventually(channels, 60, f"every channel showing {wanted}")
    # and every order is stored once, one per channel, with its stock taken once
    orders = team.viewer.get(f"{org}/orders").json["items"]
    assert sorted(o["store_id"] for o in orders) == sorted(s for s, _ in stores.values())
    kinds = [m["kind"] for m in stock["items"]]
    assert kinds.count("order") == len(PLATFORMS) and kinds.count("manual_adjustment") == 1
