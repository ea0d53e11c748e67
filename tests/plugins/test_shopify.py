"""Shopify plugin against the Shopify sandbox over loopback, through the real HTTP helper.

Given a shop in the sandbox, when the client calls a capability, then the sandbox's state shows
exactly the platform-side effect (and nothing on failure paths)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests

from fusion.errors import PermanentError, RateLimited, RetryableError
from fusion.plugins.base import InventoryUpdate, ProductDraft, VariantDraft
from fusion.plugins.shopify import ShopifyClient, plugin
from fusion.sandbox.server import SandboxServer
from fusion.sandbox.shopify import ShopifySandbox
from fusion.security.signing import shopify_hmac
from tests.sandbox.harness import connection, store_http, webhook_receiver
from tests.support.egress import LOOPBACK


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(ShopifySandbox()) as running:
        yield running


@pytest.fixture
def shop(server: SandboxServer) -> Iterator[dict[str, str]]:
    server.app.reset()
    details = {
        "shop": f"s{uuid.uuid4().hex[:8]}.myshopify.com",
        "token": f"shpat_{uuid.uuid4().hex}",
        "webhook_secret": uuid.uuid4().hex,
    }
    requests.post(f"{server.url}/_sandbox/shops", json=details, timeout=5).raise_for_status()
    yield details
    server.app.reset()


def make_client(
    server: SandboxServer, shop: dict[str, str], *, token: str | None = None, **kw: Any
) -> tuple[ShopifyClient, list[str]]:
    conn = connection(
        "shopify",
        server.url,
        external_id=shop["shop"],
        credentials={"access_token": token or shop["token"]},
        settings={"bulk_poll_interval_s": 0.05, "bulk_timeout_s": 10},
    )
    logs: list[str] = []
    return plugin.client(conn, store_http(conn, **kw), logs.append), logs


def state(server: SandboxServer, shop: dict[str, str]) -> dict[str, Any]:
    body = requests.get(f"{server.url}/_sandbox/state", timeout=5).json()
    return body["state"][shop["shop"]]  # type: ignore[no-any-return]


def knobs(server: SandboxServer, **values: Any) -> None:
    requests.post(f"{server.url}/_sandbox/knobs", json=values, timeout=5).raise_for_status()


DRAFT = ProductDraft(
    title="Enamel mug",
    description="<p>Holds coffee.</p>",
    variants=[
        VariantDraft(sku="MUG-RED", price=Decimal("12.50"), quantity=7),
        VariantDraft(sku="MUG-BLUE", price=Decimal("13.00"), quantity=3),
    ],
    idempotency_key="listing-1f0c",
)


def test_create_then_list_shows_the_product_with_its_stock(server, shop):
    client, _ = make_client(server, shop)

    created = client.create_product(DRAFT)

    assert created.quantities == {"MUG-RED": 7, "MUG-BLUE": 3}
    listed = client.list_products()
    assert [(p.external_id, p.title, dict(p.quantities)) for p in listed] == [
        (created.external_id, "Enamel mug", {"MUG-RED": 7, "MUG-BLUE": 3})
    ]
    [product] = state(server, shop)["products"]
    assert product["handle"] == "fusion-listing-1f0c"
    assert {v["sku"]: v["price"] for v in product["variants"]} == {
        "MUG-RED": "12.50",
        "MUG-BLUE": "13.00",
    }


def test_list_pages_through_more_products_than_one_page(server, shop):
    client, _ = make_client(server, shop)
    knobs(server, rate_limit=[1000, 100000])
    for i in range(12):
        draft = ProductDraft(
            title=f"P{i}",
            variants=[VariantDraft(f"SKU-{i}", Decimal(1), i)],
            idempotency_key=f"k{i}",
        )
        client.create_product(draft)

    listed = client.list_products()

    assert sorted(p.title for p in listed) == sorted(f"P{i}" for i in range(12))


def test_a_create_retried_after_a_timeout_makes_one_product(server, shop):
    slow, _ = make_client(server, shop, read_timeout_s=0.3)
    client, _ = make_client(server, shop)
    slow._location = client.primary_location()  # so the timeout falls on the create itself
    # Shopify creates the product but its answer comes too late for the client.
    knobs(server, late_answer_ms=600, late_answer_method="POST")

    with pytest.raises(RetryableError, match="timed out"):
        slow.create_product(DRAFT)

    knobs(server, late_answer_ms=0)
    assert len(state(server, shop)["products"]) == 1
    again = client.create_product(DRAFT)

    products = state(server, shop)["products"]
    assert [p["id"] for p in products] == [again.external_id]
    assert len(products[0]["variants"]) == 2


def test_update_changes_title_prices_and_variants_by_sku(server, shop):
    client, _ = make_client(server, shop)
    created = client.create_product(DRAFT)
    before = {v["sku"]: v["id"] for v in state(server, shop)["products"][0]["variants"]}
    changed = ProductDraft(
        title="Enamel mug, large",
        variants=[
            VariantDraft(sku="MUG-RED", price=Decimal("14.00"), quantity=7),
            VariantDraft(sku="MUG-GREEN", price=Decimal("15.00"), quantity=0),
        ],
    )

    updated = client.update_product(created.external_id, changed)

    assert updated.external_id == created.external_id
    [product] = state(server, shop)["products"]
    assert product["title"] == "Enamel mug, large"
    variants = {v["sku"]: v for v in product["variants"]}
    assert set(variants) == {"MUG-RED", "MUG-GREEN"}
    assert variants["MUG-RED"]["id"] == before["MUG-RED"]  # kept, not recreated
    assert variants["MUG-RED"]["price"] == "14.00"
    assert updated.quantities["MUG-RED"] == 7  # stock untouched by an update


def test_update_of_a_missing_product_is_permanent(server, shop):
    client, _ = make_client(server, shop)
    with pytest.raises(PermanentError, match="Product does not exist"):
        client.update_product("gid://shopify/Product/999999", DRAFT)


def test_delete_removes_the_product_and_a_repeat_is_harmless(server, shop):
    client, logs = make_client(server, shop)
    created = client.create_product(DRAFT)

    client.delete_product(created.external_id)
    client.delete_product(created.external_id)

    assert state(server, shop)["products"] == []
    assert logs == [f"shopify product {created.external_id} was already deleted"]


def test_set_inventory_sets_available_quantities(server, shop):
    client, logs = make_client(server, shop)
    created = client.create_product(DRAFT)

    client.set_inventory(
        [
            InventoryUpdate("MUG-RED", 2),
            InventoryUpdate("MUG-BLUE", 40),
            InventoryUpdate("NOT-THERE", 1),
        ]
    )

    [listed] = client.list_products()
    assert listed.external_id == created.external_id
    assert listed.quantities == {"MUG-RED": 2, "MUG-BLUE": 40}
    assert logs == ["shopify has no variant for SKUs NOT-THERE; skipped them"]


def test_bulk_inventory_runs_a_bulk_operation(server, shop):
    client, logs = make_client(server, shop)
    client.create_product(DRAFT)

    client.bulk_set_inventory([InventoryUpdate("MUG-RED", 11), InventoryUpdate("MUG-BLUE", 0)])

    current = state(server, shop)
    assert sorted(current["inventory"].values()) == [0, 11]
    [operation] = current["bulk_operations"]
    assert operation["status"] == "COMPLETED"
    assert operation["objectCount"] == "1"
    assert "inventorySetQuantities" in operation["query"]
    assert logs[-1] == f"shopify bulk operation {operation['id']} completed"


def test_invalid_token_is_permanent(server, shop):
    client, _ = make_client(server, shop, token="shpat_wrong")
    with pytest.raises(PermanentError, match="refused the store's credentials"):
        client.list_products()


def test_outage_and_server_errors_are_retryable(server, shop):
    client, _ = make_client(server, shop)
    knobs(server, outage=True)
    with pytest.raises(RetryableError, match="503"):
        client.create_product(DRAFT)
    knobs(server, outage=False, error_rate=1.0)
    with pytest.raises(RetryableError, match="500"):
        client.list_products()
    knobs(server, error_rate=0.0)
    assert state(server, shop)["products"] == []


def test_throttled_is_rate_limited_with_the_time_to_refill(server, shop):
    client, _ = make_client(server, shop)
    knobs(server, rate_limit=[1, 440])
    client.create_product(DRAFT)  # 3 points for the location, 10 for the mutation: 427 left

    with pytest.raises(RateLimited) as caught:
        client.list_products()  # reserves 432

    # About 5 points short at 1 point per second.
    assert 3.5 <= caught.value.retry_after_s <= 5.5
    assert (
        requests.get(f"{server.url}/_sandbox/state", timeout=5).json()["knobs"]["throttled_count"]
        == 1
    )


def test_documents_the_contract_rejects_are_permanent(server, shop):
    if server.app.schema is None:
        pytest.skip("shopify/admin-graphql-2026-07.graphql not found: contract validation is off")
    client, _ = make_client(server, shop)
    with pytest.raises(PermanentError, match="Cannot query field 'stock' on type 'Product'"):
        client.graphql("bad", "query bad { products(first: 1) { nodes { id stock } } }", {})
    with pytest.raises(PermanentError, match="invalid value"):
        client.graphql(
            "setBad",
            "mutation setBad($input: ProductSetInput!) { productSet(input: $input) { "
            "userErrors { message } } }",
            {"input": {"title": "x", "colour": "red"}},
        )


def test_pages_shrink_to_fit_a_bucket_smaller_than_one_page(server, shop):
    client, _ = make_client(server, shop)
    for i in range(3):
        client.create_product(
            ProductDraft(f"P{i}", [VariantDraft(f"S-{i}", Decimal(1), i)], idempotency_key=f"k{i}")
        )
    knobs(server, rate_limit=[1000, 60])  # one page of 10 products reserves 432 points

    listed = client.list_products()

    assert sorted(p.title for p in listed) == ["P0", "P1", "P2"]
    assert client._maximum == 60.0


def test_every_answer_reports_cost_and_throttle_status(server, shop):
    response = requests.post(
        f"{server.url}/admin/api/2026-07/graphql.json",
        headers={"X-Shopify-Access-Token": shop["token"]},
        json={"query": "{ products(first: 5) { nodes { id title } } }"},
        timeout=5,
    )

    assert response.status_code == 200
    cost = response.json()["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 2 + 5 * 1
    assert cost["actualQueryCost"] == 2  # no products: the page size is refunded
    assert cost["throttleStatus"]["maximumAvailable"] == 1000.0
    assert cost["throttleStatus"]["restoreRate"] == 50.0
    assert 998 <= cost["throttleStatus"]["currentlyAvailable"] <= 1000


def test_inventory_mutation_without_idempotent_directive_is_refused(server, shop):
    client, _ = make_client(server, shop)
    client.create_product(DRAFT)
    document = """mutation inventorySet($input: InventorySetQuantitiesInput!) {
      inventorySetQuantities(input: $input) { userErrors { message } } }"""
    with pytest.raises(PermanentError, match="@idempotent directive is required"):
        client.graphql(
            "inventorySet",
            document,
            {"input": {"name": "available", "reason": "correction", "quantities": []}},
        )


def test_fetch_orders_returns_orders_changed_since(server, shop):
    client, _ = make_client(server, shop)
    client.create_product(DRAFT)
    before = datetime.now(UTC) - timedelta(seconds=5)
    placed = requests.post(
        f"{server.url}/_sandbox/orders",
        json={"shop": shop["shop"], "lines": [{"sku": "MUG-RED", "quantity": 2}]},
        timeout=5,
    ).json()

    [order] = client.fetch_orders(before)
    later = client.fetch_orders(datetime.now(UTC) + timedelta(minutes=1))

    assert order.external_id == placed["admin_graphql_api_id"]
    assert [(line.sku, line.quantity, line.unit_price) for line in order.lines] == [
        ("MUG-RED", 2, Decimal("12.50"))
    ]
    assert order.total == Decimal("25.00")
    assert order.status == "paid"
    assert later == []


def test_order_webhook_is_signed_and_parsed(server, shop):
    client, _ = make_client(server, shop)
    client.create_product(DRAFT)
    with webhook_receiver() as receiver:
        server.app.shops[shop["shop"]].webhook_url = receiver.url
        requests.post(
            f"{server.url}/_sandbox/orders",
            json={"shop": shop["shop"], "lines": [{"sku": "MUG-BLUE", "quantity": 1}]},
            timeout=5,
        ).raise_for_status()
        [delivery] = receiver.wait_for(1)

    event = plugin.verify_webhook(delivery.headers, delivery.body, shop["webhook_secret"])
    order = plugin.order_from_event(event)

    assert event.topic == "orders/create"
    assert event.delivery_id == delivery.headers["X-Shopify-Webhook-Id"]
    assert delivery.headers["X-Shopify-Shop-Domain"] == shop["shop"]
    assert order is not None
    assert [(line.sku, line.quantity) for line in order.lines] == [("MUG-BLUE", 1)]
    assert client.list_products()[0].quantities["MUG-BLUE"] == 2  # the sale took stock


def test_subscribing_twice_leaves_one_subscription_per_topic_and_orders_reach_it(server, shop):
    client, _ = make_client(server, shop)
    client.create_product(DRAFT)
    with webhook_receiver() as receiver:
        # When the hub subscribes its receiver, twice (a re-run of the job)
        first = client.subscribe_order_events(receiver.url, "unused")
        second = client.subscribe_order_events(receiver.url, "unused")
        # Then each order topic (and the refund topic) has one subscription to it, made by
        # the first call
        assert first == ["orders/create", "orders/paid", "orders/updated", "refunds/create"]
        assert second == []
        subscriptions = state(server, shop)["webhook_subscriptions"]
        assert sorted(s["topic"] for s in subscriptions) == [
            "ORDERS_CREATE",
            "ORDERS_PAID",
            "ORDERS_UPDATED",
            "REFUNDS_CREATE",
        ]
        assert {s["uri"] for s in subscriptions} == {receiver.url}
        # and an order is delivered there, signed with the app's secret
        requests.post(
            f"{server.url}/_sandbox/orders",
            json={"shop": shop["shop"], "lines": [{"sku": "MUG-RED", "quantity": 2}]},
            timeout=5,
        ).raise_for_status()
        [delivery] = receiver.wait_for(1)
    event = plugin.verify_webhook(delivery.headers, delivery.body, shop["webhook_secret"])
    order = plugin.order_from_event(event)
    assert order is not None and [(li.sku, li.quantity) for li in order.lines] == [("MUG-RED", 2)]


def test_a_subscription_to_a_bad_address_is_refused(server, shop):
    client, _ = make_client(server, shop)
    with pytest.raises(PermanentError, match="Address is invalid"):
        client.subscribe_order_events("ftp://hub.example/hooks", None)


def _signed(secret: str, body: bytes, **overrides: str) -> dict[str, str]:
    headers = {
        "X-Shopify-Hmac-Sha256": shopify_hmac(secret, body),
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-Triggered-At": datetime.now(UTC).isoformat(),
    }
    headers.update(overrides)
    return headers


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda s, b: (b + b" ", _signed(s, b)), "does not match"),
        (lambda s, b: (b, _signed("other-secret", b)), "does not match"),
        (lambda s, b: (b, {k: v for k, v in _signed(s, b).items() if "Hmac" not in k}), "missing"),
        (
            lambda s, b: (
                b,
                _signed(
                    s,
                    b,
                    **{
                        "X-Shopify-Triggered-At": (
                            datetime.now(UTC) - timedelta(hours=6)
                        ).isoformat()
                    },
                ),
            ),
            "stale",
        ),
    ],
)
def test_forged_tampered_or_stale_webhooks_are_refused(mutate, reason):
    secret = "hook-secret"
    body = json.dumps({"id": 1, "line_items": []}).encode()
    sent_body, headers = mutate(secret, body)
    with pytest.raises(PermanentError, match=reason):
        plugin.verify_webhook(headers, sent_body, secret)


def test_non_order_topics_are_ignored():
    body = b'{"id": 5}'
    event = plugin.verify_webhook(
        _signed("s", body, **{"X-Shopify-Topic": "products/update"}), body, "s"
    )
    assert plugin.order_from_event(event) is None


def test_throttle_status_corrects_the_shared_bucket_so_shopify_never_throttles(
    server, shop, redis_client
):
    from fusion.plugins.http import StoreHttp
    from fusion.ratelimit.bucket import BucketConfig, TokenBucket

    knobs(server, rate_limit=[20, 600])  # the shop's real plan, which the plugin does not know
    conn = connection(
        "shopify", server.url, external_id=shop["shop"], credentials={"access_token": shop["token"]}
    )
    config = BucketConfig.resolve(plugin.rate_limit, None)
    bucket = TokenBucket(redis_client, conn.store_id, config)
    client = plugin.client(
        conn, StoreHttp(conn, spec=plugin.rate_limit, bucket=bucket, egress=LOOPBACK)
    )

    client.list_products()
    corrected = bucket.state()
    with pytest.raises(RateLimited, match="store bucket short"):
        for _ in range(3):
            client.list_products()  # 432 points reserved each time

    # Shopify's figures, less the hub's safety margin.
    assert corrected["capacity"] == pytest.approx(600 * (1 - config.margin))
    assert corrected["refill_rate"] == pytest.approx(20 * (1 - config.margin))
    sandbox = requests.get(f"{server.url}/_sandbox/state", timeout=5).json()
    assert sandbox["knobs"]["throttled_count"] == 0  # the hub held back, Shopify never had to


def test_inventory_idempotency_key_replays_and_stale_compare_is_refused(server, shop):
    from fusion.plugins import _shopify_queries as q

    client, _ = make_client(server, shop)
    client.create_product(DRAFT)
    item = client.inventory_items(["MUG-RED"])["MUG-RED"]

    def set_to(quantity: int, key: str, change_from: int | None) -> dict[str, Any]:
        return client.graphql(
            "inventorySet",
            q.INVENTORY_SET,
            {
                "key": key,
                "input": {
                    "name": "available",
                    "reason": "correction",
                    "quantities": [
                        {
                            "inventoryItemId": item,
                            "locationId": client.primary_location(),
                            "quantity": quantity,
                            "changeFromQuantity": change_from,
                        }
                    ],
                },
            },
        )["inventorySetQuantities"]

    first = set_to(20, "k-1", 7)
    replay = set_to(20, "k-1", 7)
    mismatch = set_to(21, "k-1", 7)
    stale = set_to(30, "k-2", 7)  # it is 20 now

    assert first == replay  # the same answer, applied once
    assert mismatch["userErrors"][0]["code"] == "IDEMPOTENCY_KEY_PARAMETER_MISMATCH"
    assert stale["userErrors"][0]["code"] == "CHANGE_FROM_QUANTITY_STALE"
    assert state(server, shop)["inventory"][item] == 20
