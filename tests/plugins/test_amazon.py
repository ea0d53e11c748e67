"""Amazon SP-API plugin against its sandbox, over loopback HTTP: every supported capability,
error mapping, LWA tokens, usage-plan rate limits and contract validation."""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import redis as redis_lib
import requests

from fusion.errors import PermanentError, RateLimited, RetryableError
from fusion.plugins import amazon
from fusion.plugins._amazon_feeds import gunzip
from fusion.plugins.base import (
    InventoryUpdate,
    ItemRefusal,
    ProductDraft,
    StoreConnection,
    VariantDraft,
)
from fusion.plugins.http import StoreHttp
from fusion.ratelimit.bucket import BucketConfig, TokenBucket
from fusion.sandbox import _amazon_contract as contract
from fusion.sandbox.amazon import AmazonSandbox
from fusion.sandbox.server import SandboxServer
from fusion.security.crypto import Secret
from tests.support.egress import LOOPBACK

needs_contracts = pytest.mark.skipif(
    not contract.available(),
    reason=f"SP-API contracts not found at {contract.contracts_dir()} (set FUSION_CONTRACTS_DIR)",
)


@contextmanager
def running_sandbox() -> Iterator[tuple[AmazonSandbox, str]]:
    """The Amazon sandbox on a loopback port, with its SQS server stopped afterwards."""
    app = AmazonSandbox()
    server = SandboxServer(app).start()
    try:
        yield app, server.url
    finally:
        server.stop()
        app.close()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[tuple[AmazonSandbox, str]]:
    with running_sandbox() as running:
        yield running


def make_seller(url: str, **extra: Any) -> StoreConnection:
    seller_id = "A" + uuid.uuid4().hex[:12].upper()
    creds = {
        "client_id": "amzn1.application-oa2-client.x",
        "client_secret": "cs-" + uuid.uuid4().hex,
        "refresh_token": "Atzr|" + uuid.uuid4().hex,
    }
    shop = requests.post(
        f"{url}/_sandbox/shops", json={"shop": seller_id, **creds, **extra}, timeout=10
    )
    assert shop.status_code == 201, shop.text
    info = shop.json()
    return StoreConnection(
        store_id=str(uuid.uuid4()),
        org_id=str(uuid.uuid4()),
        platform="amazon_sc",
        external_id=seller_id,
        base_url=url,
        credentials={
            **{k: Secret(v) for k, v in creds.items()},
            "aws_access_key_id": Secret(info["aws_access_key_id"]),
            "aws_secret_access_key": Secret(info["aws_secret_access_key"]),
        },
        settings={
            "sqs_queue_url": info["sqs_queue_url"],
            "sqs_endpoint_url": info["sqs_endpoint_url"],
            "feed_poll_interval_s": 0.01,
            "feed_poll_attempts": 10,
        },
    )


def fresh_seller(sandbox: tuple[AmazonSandbox, str]) -> StoreConnection:
    app, url = sandbox
    app.reset()
    return make_seller(url)


@pytest.fixture
def seller(sandbox: tuple[AmazonSandbox, str]) -> StoreConnection:
    return fresh_seller(sandbox)


def client_for(
    conn: StoreConnection,
    log: list[str] | None = None,
    bucket: TokenBucket | None = None,
    read_timeout_s: float | None = None,
) -> amazon.AmazonClient:
    http = StoreHttp(
        conn,
        spec=amazon.plugin.rate_limit,
        bucket=bucket,
        egress=LOOPBACK,
        read_timeout_s=read_timeout_s,
        transport_backoff_s=0.01,
    )
    return amazon.plugin.client(conn, http, (log.append if log is not None else None))


def state(url: str, conn: StoreConnection) -> dict[str, Any]:
    data: dict[str, Any] = requests.get(f"{url}/_sandbox/state", timeout=10).json()
    return data["state"][conn.external_id]


def knobs(url: str, **values: Any) -> None:
    assert requests.post(f"{url}/_sandbox/knobs", json=values, timeout=10).status_code == 200


def draft(sku: str = "MUG-1", quantity: int = 7, **attributes: Any) -> ProductDraft:
    return ProductDraft(
        title="Blue mug",
        description="A mug, blue.",
        variants=[VariantDraft(sku=sku, price=Decimal("12.50"), quantity=quantity)],
        idempotency_key=str(uuid.uuid4()),
        attributes=attributes,
        category="PRODUCT",  # the store's mapping of the product's category
    )


def token(url: str, conn: StoreConnection) -> str:
    form = {
        "grant_type": "refresh_token",
        **{k: str.__str__(v) for k, v in conn.credentials.items()},
    }
    return str(requests.post(f"{url}/auth/o2/token", data=form, timeout=10).json()["access_token"])


# -- capabilities ---------------------------------------------------------------------------


def test_create_puts_one_listing_per_sku_with_price_and_quantity(
    sandbox: tuple[AmazonSandbox, str], seller: StoreConnection
) -> None:
    _, url = sandbox
    two = ProductDraft(
        title="Tee",
        variants=[
            VariantDraft("TEE-S", Decimal("10"), 3, "S"),
            VariantDraft("TEE/M", Decimal("11"), 4, "M"),
        ],
        category="PRODUCT",
    )
    product = client_for(seller).create_product(two)
    assert product.external_id == "TEE-S|TEE/M"
    assert product.quantities == {"TEE-S": 3, "TEE/M": 4}
    listings = state(url, seller)["listings"]
    assert set(listings) == {"TEE-S", "TEE/M"}  # the slash in a SKU survives URL-encoding
    attrs = listings["TEE/M"]["attributes"]
    assert attrs["item_name"][0]["value"] == "Tee - M"
    assert attrs["purchasable_offer"][0]["our_price"][0]["schedule"][0]["value_with_tax"] == 11.0
    assert listings["TEE/M"]["quantity"] == 4


def test_list_products_pages_through_search(
    sandbox: tuple[AmazonSandbox, str], seller: StoreConnection
) -> None:
    _, url = sandbox
    knobs(url, rate_limit=[1000, 1000])  # arrange quickly; the usage plan is tested below
    client = client_for(seller)
    for n in range(23):  # more than one page of 20
        client.create_product(draft(f"SKU-{n:02d}", quantity=n))
    knobs(url, rate_limit=None)
    products = client.list_products()
    assert len(products) == 23
    by_sku = {p.external_id: p for p in products}
    assert by_sku["SKU-05"].quantities == {"SKU-05": 5}
    assert by_sku["SKU-05"].title == "Blue mug"


def test_update_patches_the_listing(
    sandbox: tuple[AmazonSandbox, str], seller: StoreConnection
) -> None:
    _, url = sandbox
    client = client_for(seller)
    product = client.create_product(draft())
    changed = ProductDraft(
        title="Red mug", variants=[VariantDraft("MUG-1", Decimal("15"), 2)], category="PRODUCT"
    )
    client.update_product(product.external_id, changed)
    attrs = state(url, seller)["listings"]["MUG-1"]["attributes"]
    assert attrs["item_name"][0]["value"] == "Red mug"
    assert attrs["purchasable_offer"][0]["our_price"][0]["schedule"][0]["value_with_tax"] == 15.0
    assert attrs["fulfillment_availability"] == [
        {"fulfillment_channel_code": "DEFAULT", "quantity": 2}
    ]


def test_update_of_a_missing_listing_is_permanent(seller: StoreConnection) -> None:
    with pytest.raises(PermanentError, match="does not exist"):
        client_for(seller).update_product("NOPE", draft("NOPE"))


def test_delete_removes_listing_and_a_second_delete_is_a_no_op(
    sandbox: tuple[AmazonSandbox, str], seller: StoreConnection
) -> None:
    _, url = sandbox
    log: list[str] = []
    client = client_for(seller, log)
    product = client.create_product(draft())
    client.delete_product(product.external_id)
    assert state(url, seller)["listings"] == {}
    client.delete_product(product.external_id)
    assert log == ["listing MUG-1 was already gone from Amazon; nothing to delete"]


def test_real_time_inventory_is_a_fulfillment_availability_patch_and_says_so(
    sandbox: tuple[AmazonSandbox, str], seller: StoreConnection
) -> None:
    _, url = sandbox
    log: list[str] = []
    client = client_for(seller, log)
    client.create_product(draft(quantity=7))
    client.set_inventory([InventoryUpdate(sku="MUG-1", quantity=3)])
    assert state(url, seller)["listings"]["MUG-1"]["quantity"] == 3
    assert len(log) == 1 and "patching its listing's fulfillment_availability" in log[0]


def test_bulk_inventory_goes_through_one_json_listings_feed(
    sandbox: tuple[AmazonSandbox, str], seller: StoreConnection
) -> None:
    _, url = sandbox
    log: list[str] = []
    client = client_for(seller, log)
    for sku in ("A1", "A2", "A3"):
        client.create_product(draft(sku, quantity=1))
    client.bulk_set_inventory(
        [InventoryUpdate(s, q) for s, q in (("A1", 10), ("A2", 0), ("A3", 5))]
    )
    seen = state(url, seller)
    assert {s: v["quantity"] for s, v in seen["listings"].items()} == {"A1": 10, "A2": 0, "A3": 5}
    feeds = list(seen["feeds"].values())
    assert [(f["feedType"], f["processingStatus"]) for f in feeds] == [
        ("JSON_LISTINGS_FEED", "DONE")
    ]
    assert log[0].startswith("submitted JSON_LISTINGS_FEED") and "3 accepted, 0 invalid" in log[1]


def test_bulk_feed_naming_an_unknown_sku_refuses_that_sku_alone_with_amazons_reason(
    sandbox: tuple[AmazonSandbox, str], seller: StoreConnection
) -> None:
    _, url = sandbox
    client = client_for(seller)
    client.create_product(draft("KNOWN", quantity=1))
    refused = client.bulk_set_inventory([InventoryUpdate("KNOWN", 4), InventoryUpdate("GHOST", 2)])
    assert refused == [ItemRefusal("GHOST", "4000003: SKU 'GHOST' not found.")]
    assert state(url, seller)["listings"]["KNOWN"]["quantity"] == 4


def test_fetch_orders_reconciles_with_last_updated_after(
    sandbox: tuple[AmazonSandbox, str], seller: StoreConnection
) -> None:
    _, url = sandbox
    client = client_for(seller)
    client.create_product(draft("MUG-1", quantity=7))
    before = datetime.now(UTC) - timedelta(seconds=2)
    placed = requests.post(
        f"{url}/_sandbox/orders",
        json={
            "shop": seller.external_id,
            "lines": [{"sku": "MUG-1", "quantity": 2, "price": "12.50"}],
        },
        timeout=10,
    ).json()
    orders = client.fetch_orders(before)
    assert [o.external_id for o in orders] == [placed["AmazonOrderId"]]
    order = orders[0]
    assert order.total == Decimal("25.00") and order.currency == "USD"
    assert [(li.sku, li.quantity, li.unit_price) for li in order.lines] == [
        ("MUG-1", 2, Decimal("12.50"))
    ]
    assert state(url, seller)["listings"]["MUG-1"]["quantity"] == 5
    assert client.fetch_orders(datetime.now(UTC) + timedelta(seconds=5)) == []


# -- auth -----------------------------------------------------------------------------------


def test_access_token_is_cached_until_expiry(sandbox: tuple[AmazonSandbox, str]) -> None:
    app, url = sandbox
    app.reset()
    long_lived = make_seller(url)
    client = client_for(long_lived)
    client.create_product(draft())
    client.list_products()
    assert state(url, long_lived)["tokens_issued"] == 1
    short_lived = make_seller(url, token_ttl_s=0.3)
    client = client_for(short_lived)
    client.create_product(draft())
    import time

    time.sleep(0.35)
    client.list_products()
    assert state(url, short_lived)["tokens_issued"] == 2


def test_an_access_token_amazon_no_longer_honours_is_replaced_once(
    sandbox: tuple[AmazonSandbox, str], seller: StoreConnection
) -> None:
    app, url = sandbox
    client = client_for(seller)
    client.list_products()
    app.tokens.clear()  # Amazon revoked every token it issued
    client.create_product(draft())
    assert state(url, seller)["tokens_issued"] == 2
    assert list(state(url, seller)["listings"]) == ["MUG-1"]


def test_a_revoked_refresh_token_is_permanent_and_never_echoed(
    sandbox: tuple[AmazonSandbox, str], seller: StoreConnection
) -> None:
    wrong = dict(seller.credentials, refresh_token=Secret("Atzr|revoked-value-123"))
    conn = StoreConnection(
        **{**seller.__dict__, "credentials": wrong, "store_id": str(uuid.uuid4())}
    )
    with pytest.raises(PermanentError) as caught:
        client_for(conn).list_products()
    assert "invalid_grant" in str(caught.value)
    assert "revoked-value-123" not in str(caught.value)


def test_calls_without_a_valid_token_get_403_in_the_sp_api_error_shape(
    sandbox: tuple[AmazonSandbox, str], seller: StoreConnection
) -> None:
    _, url = sandbox
    path = f"{url}/listings/2021-08-01/items/{seller.external_id}/X?marketplaceIds=ATVPDKIKX0DER"
    for headers in ({}, {"x-amz-access-token": "Atza|forged"}):
        answer = requests.get(path, headers=headers, timeout=10)
        assert answer.status_code == 403
        assert answer.json()["errors"][0]["code"] == "Unauthorized"
    other = make_seller(url)  # a valid token of another seller opens nothing here
    answer = requests.get(path, headers={"x-amz-access-token": token(url, other)}, timeout=10)
    assert answer.status_code == 403


# -- error mapping --------------------------------------------------------------------------


def test_outage_and_5xx_are_retryable(
    sandbox: tuple[AmazonSandbox, str], seller: StoreConnection
) -> None:
    _, url = sandbox
    client = client_for(seller)
    client.list_products()  # token cached before the platform goes down
    knobs(url, outage=True)
    with pytest.raises(RetryableError, match="503"):
        client.list_products()
    knobs(url, outage=False, error_rate=1.0)
    with pytest.raises(RetryableError, match="500"):
        client.create_product(draft())
    knobs(url, error_rate=0.0)
    assert state(url, seller)["listings"] == {}


def test_invalid_listing_data_is_permanent(
    sandbox: tuple[AmazonSandbox, str], seller: StoreConnection
) -> None:
    _, url = sandbox
    with pytest.raises(PermanentError, match="item_name"):
        client_for(seller).create_product(draft(amazon_attributes={"item_name": []}))
    assert state(url, seller)["listings"] == {}


def test_quota_exceeded_is_rate_limited_with_the_platform_shape(
    sandbox: tuple[AmazonSandbox, str], seller: StoreConnection
) -> None:
    _, url = sandbox
    client = client_for(seller)
    client.create_product(draft())
    knobs(url, rate_limit=[0.01, 1])
    client.list_products()
    with pytest.raises(RateLimited):
        client.list_products()
    raw = requests.get(
        f"{url}/listings/2021-08-01/items/{seller.external_id}",
        params={"marketplaceIds": "ATVPDKIKX0DER"},
        headers={"x-amz-access-token": token(url, seller)},
        timeout=10,
    )
    assert raw.status_code == 429
    assert raw.headers["x-amzn-RateLimit-Limit"] == "0.01"
    assert raw.json() == {
        "errors": [
            {
                "code": "QuotaExceeded",
                "message": "You exceeded your quota for the requested resource.",
                "details": "0.01",
            }
        ]
    }
    assert requests.get(f"{url}/_sandbox/state", timeout=10).json()["knobs"]["throttled_count"] >= 2


def test_usage_plan_header_feeds_the_store_bucket(
    seller: StoreConnection, redis_client: redis_lib.Redis
) -> None:
    bucket = TokenBucket(
        redis_client, seller.store_id, BucketConfig.resolve(amazon.plugin.rate_limit, None)
    )
    client = client_for(seller, bucket=bucket)
    client.list_products()
    assert bucket.state()["refill_rate"] == pytest.approx(5.0, rel=0.2)
    client.fetch_orders(datetime.now(UTC))  # getOrders' plan is 0.0167 rps: not the store's
    assert bucket.state()["refill_rate"] == pytest.approx(5.0, rel=0.2)


def test_a_create_retried_after_a_timeout_leaves_one_listing(
    sandbox: tuple[AmazonSandbox, str], seller: StoreConnection
) -> None:
    _, url = sandbox
    client = client_for(seller, read_timeout_s=0.3)
    client.list_products()  # token first, so the timeout hits the PUT itself
    knobs(url, latency_ms=600)
    with pytest.raises(RetryableError, match="timed out"):
        client.create_product(draft("ONCE", quantity=4))
    knobs(url, latency_ms=0)
    client.create_product(draft("ONCE", quantity=4))  # the job's retry
    listings = state(url, seller)["listings"]
    assert list(listings) == ["ONCE"] and listings["ONCE"]["quantity"] == 4
    assert len(client.list_products()) == 1


def test_http_deliveries_are_refused_because_amazon_only_uses_sqs() -> None:
    body = json.dumps({"NotificationType": "ORDER_CHANGE"}).encode()
    with pytest.raises(PermanentError, match="only through SQS"):
        amazon.plugin.verify_webhook({}, body, "secret")


# -- contract -------------------------------------------------------------------------------


@needs_contracts
@pytest.mark.parametrize(
    ("method", "body", "needle"),
    [
        (
            "PUT",
            {"productType": "PRODUCT", "requirements": "BOGUS", "attributes": {}},
            "requirements",
        ),
        ("PUT", {"productType": "PRODUCT", "attributes": []}, "attributes"),
        (
            "PATCH",
            {"productType": "PRODUCT", "patches": [{"op": "move", "path": "/attributes/x"}]},
            "op",
        ),
        ("PATCH", {"productType": "PRODUCT", "patches": []}, "patches"),
        ("PATCH", {"patches": [{"op": "delete", "path": "/attributes/x"}]}, "productType"),
    ],
)
def test_sandbox_rejects_what_the_contract_rejects(
    sandbox: tuple[AmazonSandbox, str], seller: StoreConnection, method: str, body: Any, needle: str
) -> None:
    _, url = sandbox
    answer = requests.request(
        method,
        f"{url}/listings/2021-08-01/items/{seller.external_id}/SKU1",
        params={"marketplaceIds": "ATVPDKIKX0DER"},
        headers={"x-amz-access-token": token(url, seller)},
        json=body,
        timeout=10,
    )
    assert answer.status_code == 400
    error = answer.json()["errors"][0]
    assert error["code"] == "InvalidInput" and needle in error["details"]


@needs_contracts
def test_sandbox_responses_conform_to_the_contract(
    sandbox: tuple[AmazonSandbox, str], seller: StoreConnection
) -> None:
    _, url = sandbox
    client = client_for(seller)
    client.create_product(draft("C-1"))
    headers = {"x-amz-access-token": token(url, seller)}
    mp = {"marketplaceIds": "ATVPDKIKX0DER"}
    base = f"{url}/listings/2021-08-01/items/{seller.external_id}"
    item = requests.get(
        f"{base}/C-1",
        params={
            **mp,
            "includedData": "summaries,attributes,fulfillmentAvailability,issues,productTypes",
        },
        headers=headers,
        timeout=10,
    )
    assert contract.definition_errors(contract.LISTINGS, "Item", item.json()) == []
    search = requests.get(base, params=mp, headers=headers, timeout=10)
    assert contract.definition_errors(contract.LISTINGS, "ItemSearchResults", search.json()) == []
    missing = requests.get(f"{base}/NOPE", params=mp, headers=headers, timeout=10)
    assert missing.status_code == 404
    assert contract.definition_errors(contract.LISTINGS, "ErrorList", missing.json()) == []
    requests.post(
        f"{url}/_sandbox/orders",
        json={"shop": seller.external_id, "lines": [{"sku": "C-1", "quantity": 1, "price": "3"}]},
        timeout=10,
    )
    orders = requests.get(
        f"{url}/orders/v0/orders",
        headers=headers,
        timeout=10,
        params={"MarketplaceIds": "ATVPDKIKX0DER", "LastUpdatedAfter": "2020-01-01T00:00:00Z"},
    )
    assert contract.definition_errors(contract.ORDERS, "GetOrdersResponse", orders.json()) == []
    order_id = orders.json()["payload"]["Orders"][0]["AmazonOrderId"]
    items = requests.get(
        f"{url}/orders/v0/orders/{order_id}/orderItems", headers=headers, timeout=10
    )
    assert contract.definition_errors(contract.ORDERS, "GetOrderItemsResponse", items.json()) == []


@needs_contracts
def test_feed_report_conforms_and_a_malformed_feed_is_fatal(
    sandbox: tuple[AmazonSandbox, str], seller: StoreConnection
) -> None:
    _, url = sandbox
    headers = {"x-amz-access-token": token(url, seller)}
    doc = requests.post(
        f"{url}/feeds/2021-06-30/documents",
        headers=headers,
        timeout=10,
        json={"contentType": "application/json; charset=UTF-8"},
    )
    assert doc.status_code == 201
    bad = {
        "header": {"sellerId": seller.external_id, "version": "2.0"},
        "messages": [{"messageId": 1, "sku": "X", "operationType": "PATCH"}],
    }
    upload = requests.put(
        doc.json()["url"],
        data=json.dumps(bad),
        headers={"Content-Type": "application/json; charset=UTF-8"},
        timeout=10,
    )
    assert upload.status_code == 200
    feed = requests.post(
        f"{url}/feeds/2021-06-30/feeds",
        headers=headers,
        timeout=10,
        json={
            "feedType": "JSON_LISTINGS_FEED",
            "marketplaceIds": ["ATVPDKIKX0DER"],
            "inputFeedDocumentId": doc.json()["feedDocumentId"],
        },
    )
    assert feed.status_code == 202
    statuses = []
    for _ in range(3):
        got = requests.get(
            f"{url}/feeds/2021-06-30/feeds/{feed.json()['feedId']}", headers=headers, timeout=10
        )
        assert contract.definition_errors(contract.FEEDS, "Feed", got.json()) == []
        statuses.append(got.json()["processingStatus"])
    assert statuses == ["IN_PROGRESS", "FATAL", "FATAL"]
    result = got.json()["resultFeedDocumentId"]
    located = requests.get(
        f"{url}/feeds/2021-06-30/documents/{result}", headers=headers, timeout=10
    ).json()
    report = requests.get(located["url"], timeout=10).json()
    assert contract.schema_errors(contract.PROCESSING_REPORT, report) == []
    assert report["issues"][0]["severity"] == "ERROR"
    assert requests.get(located["url"].split("?")[0], timeout=10).status_code == 403  # unsigned


def test_a_gzipped_feed_report_is_not_decompressed_past_the_cap() -> None:
    # Given a 10 MB report of nothing that gzips to a few kilobytes
    bomb = gzip.compress(b"\0" * (10 * 1024 * 1024))
    # When it is decompressed with a 1 MiB cap, Then it is refused; within the cap it reads
    with pytest.raises(PermanentError) as refused:
        gunzip(bomb, 1024 * 1024)
    assert str(refused.value) == "Amazon feed report is over 1048576 bytes decompressed; not read"
    assert gunzip(gzip.compress(b'{"ok": 1}'), 1024 * 1024) == b'{"ok": 1}'
