"""Printify plugin against its sandbox, over loopback HTTP: every supported capability (and the
refusal of the unsupported ones), workarounds logged, error mapping, rate limits, and signed
webhooks accepted or refused."""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from fusion.errors import PermanentError, RateLimited, RetryableError, UnsupportedCapability
from fusion.plugins import printify
from fusion.plugins.base import InventoryUpdate, ProductDraft, StoreConnection, VariantDraft
from fusion.plugins.http import StoreHttp
from fusion.sandbox.printify import PrintifySandbox, sign
from fusion.sandbox.server import SandboxServer
from fusion.security.crypto import Secret
from tests.support.egress import LOOPBACK

TEMPLATE = {
    "blueprint_id": 6,
    "print_provider_id": 270,
    "variant_ids": [12100, 12101, 12102],
    "print_areas": [
        {
            "variant_ids": [12100, 12101, 12102],
            "placeholders": [
                {
                    "position": "front",
                    "images": [{"id": "img-1", "x": 0.5, "y": 0.5, "scale": 1, "angle": 0}],
                }
            ],
        }
    ],
}
SECRET = "whsec-printify-test-secret-0123456789"


class Receiver:
    """A real HTTP endpoint on loopback that records the webhook deliveries it gets."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        self.requests.append((dict(request.headers), request.get_data()))
        return Response("ok")(environ, start_response)

    def wait_for(self, count: int, timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.02)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[tuple[PrintifySandbox, str]]:
    app = PrintifySandbox()
    server = SandboxServer(app).start()
    try:
        yield app, server.url
    finally:
        server.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


def make_shop(url: str, **extra: Any) -> StoreConnection:
    shop_id, token = 800000 + uuid.uuid4().int % 100000, "pfy-" + uuid.uuid4().hex
    answer = requests.post(
        f"{url}/_sandbox/shops", json={"shop": shop_id, "token": token, **extra}, timeout=10
    )
    assert answer.status_code == 201, answer.text
    return StoreConnection(
        store_id=str(uuid.uuid4()),
        org_id=str(uuid.uuid4()),
        platform="printify",
        external_id=str(shop_id),
        base_url=url,
        credentials={"token": Secret(token)},
        settings={"printify_template": TEMPLATE, "storefront_url": "https://hub.example/listings"},
    )


@pytest.fixture
def shop(sandbox: tuple[PrintifySandbox, str]) -> StoreConnection:
    app, url = sandbox
    app.reset()
    return make_shop(url)


def client_for(
    conn: StoreConnection, log: list[str] | None = None, read_timeout_s: float | None = None
) -> printify.PrintifyClient:
    http = StoreHttp(
        conn,
        spec=printify.plugin.rate_limit,
        bucket=None,
        egress=LOOPBACK,
        read_timeout_s=read_timeout_s,
        transport_backoff_s=0.01,
    )
    return printify.plugin.client(conn, http, log.append if log is not None else None)


def products(url: str, conn: StoreConnection) -> dict[str, Any]:
    """The shop's products on the sandbox, without its design template."""
    data = requests.get(f"{url}/_sandbox/state", timeout=10).json()
    held = data["state"][conn.external_id]["products"]
    return {k: p for k, p in held.items() if "fusion:template" not in p["tags"]}


def knobs(url: str, **values: Any) -> None:
    assert requests.post(f"{url}/_sandbox/knobs", json=values, timeout=10).status_code == 200


def draft(key: str | None = None, *quantities: int) -> ProductDraft:
    quantities = quantities or (5, 0)
    return ProductDraft(
        title="Cat tee",
        description="A tee with a cat.",
        variants=[
            VariantDraft(f"TEE-{n}", Decimal("19.99") + n, q) for n, q in enumerate(quantities)
        ],
        idempotency_key=key or str(uuid.uuid4()),
    )


def bearer(conn: StoreConnection) -> dict[str, str]:
    return {"Authorization": f"Bearer {str.__str__(conn.credentials['token'])}"}


# -- capabilities ---------------------------------------------------------------------------


def test_create_builds_from_the_template_publishes_and_logs_the_workaround(
    sandbox: tuple[PrintifySandbox, str], shop: StoreConnection
) -> None:
    _, url = sandbox
    log: list[str] = []
    d = draft()
    product = client_for(shop, log).create_product(d)
    stored = products(url, shop)[product.external_id]
    assert stored["blueprint_id"] == 6 and stored["print_provider_id"] == 270
    assert [
        (v["id"], v["sku"], v["price"], v["is_enabled"], v["quantity"]) for v in stored["variants"]
    ] == [(12100, "TEE-0", 1999, True, 5), (12101, "TEE-1", 2099, False, 0)]
    assert stored["external"] == {
        "id": d.idempotency_key,
        "handle": f"https://hub.example/listings/{d.idempotency_key}",
    }
    assert stored["is_locked"] is False and stored["visible"] is True
    assert product.url == stored["external"]["handle"]
    assert product.quantities == {"TEE-0": 5, "TEE-1": 0}
    assert log[0].startswith("workaround: ") and "built product" in log[0]
    assert "publishing_succeeded" in log[1]


def test_a_create_retried_after_a_timeout_leaves_one_product(
    sandbox: tuple[PrintifySandbox, str], shop: StoreConnection
) -> None:
    _, url = sandbox
    d = draft()

    def slow_down_after_the_post(line: str) -> None:
        # The platform made the product; the answers after it are lost to a timeout.
        if "built product" in line:
            knobs(url, latency_ms=600)

    client = client_for(shop, read_timeout_s=0.3)
    client.log = slow_down_after_the_post
    with pytest.raises(RetryableError, match="timed out"):
        client.create_product(d)
    knobs(url, latency_ms=0)
    time.sleep(0.5)  # let the sandbox finish the request the client gave up on
    log: list[str] = []
    retried = client_for(shop, log).create_product(d)
    assert list(products(url, shop)) == [retried.external_id]
    assert "made by an earlier attempt" in log[0]
    assert products(url, shop)[retried.external_id]["external"]["id"] == d.idempotency_key


def test_list_products_pages_through_every_product(
    sandbox: tuple[PrintifySandbox, str], shop: StoreConnection
) -> None:
    client = client_for(shop)
    made = {client.create_product(draft(None, 1)).external_id for _ in range(3)}
    import fusion.plugins.printify as module

    module.PAGE_SIZE, saved = 2, module.PAGE_SIZE  # three products over two pages
    try:
        listed = client.list_products()
    finally:
        module.PAGE_SIZE = saved
    assert {p.external_id for p in listed} == made


def test_update_puts_then_publishes_again(
    sandbox: tuple[PrintifySandbox, str], shop: StoreConnection
) -> None:
    _, url = sandbox
    client = client_for(shop)
    product = client.create_product(draft())
    log: list[str] = []
    changed = ProductDraft(title="Dog tee", variants=[VariantDraft("TEE-0", Decimal("25"), 0)])
    client_for(shop, log).update_product(product.external_id, changed)
    stored = products(url, shop)[product.external_id]
    assert stored["title"] == "Dog tee"
    assert [(v["price"], v["is_enabled"]) for v in stored["variants"]] == [
        (2500, False),
        (2099, False),
    ]
    assert any("only on publish" in line for line in log)


def test_update_of_a_locked_product_is_retryable(
    sandbox: tuple[PrintifySandbox, str], shop: StoreConnection
) -> None:
    _, url = sandbox
    product = client_for(shop).create_product(draft())
    locked = requests.post(
        f"{url}/v1/shops/{shop.external_id}/products/{product.external_id}/publish.json",
        headers=bearer(shop),
        json=printify.PUBLISH_ALL,
        timeout=10,
    )
    assert locked.status_code == 200
    with pytest.raises(RetryableError, match="locked"):
        client_for(shop).update_product(product.external_id, draft())
    raw = requests.put(
        f"{url}/v1/shops/{shop.external_id}/products/{product.external_id}.json",
        headers=bearer(shop),
        json={"title": "x"},
        timeout=10,
    )
    assert raw.status_code == 400 and raw.json()["errors"]["code"] == 8252


def test_real_time_inventory_enables_and_disables_variants(
    sandbox: tuple[PrintifySandbox, str], shop: StoreConnection
) -> None:
    _, url = sandbox
    client = client_for(shop)
    product = client.create_product(draft(None, 5, 0))
    client.set_inventory([InventoryUpdate("TEE-0", 0), InventoryUpdate("TEE-1", 3)])
    stored = products(url, shop)[product.external_id]
    assert [v["is_enabled"] for v in stored["variants"]] == [False, True]
    assert client.list_products()[0].quantities == {"TEE-0": 0, "TEE-1": 3}
    with pytest.raises(PermanentError, match="GHOST"):
        client.set_inventory([InventoryUpdate("GHOST", 1)])


def test_delete_and_bulk_are_refused_without_a_call(
    sandbox: tuple[PrintifySandbox, str], shop: StoreConnection
) -> None:
    _, url = sandbox
    before = requests.get(f"{url}/_sandbox/state", timeout=10).json()["knobs"]["request_count"]
    with pytest.raises(UnsupportedCapability):
        client_for(shop).delete_product("anything")
    with pytest.raises(UnsupportedCapability):
        client_for(shop).bulk_set_inventory([InventoryUpdate("TEE-0", 1)])
    assert (
        requests.get(f"{url}/_sandbox/state", timeout=10).json()["knobs"]["request_count"] == before
    )


def test_fetch_orders_reads_orders_since(
    sandbox: tuple[PrintifySandbox, str], shop: StoreConnection
) -> None:
    _, url = sandbox
    client = client_for(shop)
    client.create_product(draft(None, 5))
    before = datetime.now(UTC) - timedelta(seconds=2)
    placed = requests.post(
        f"{url}/_sandbox/orders",
        json={"shop": int(shop.external_id), "lines": [{"sku": "TEE-0", "quantity": 2}]},
        timeout=10,
    ).json()
    orders = client.fetch_orders(before)
    assert [o.external_id for o in orders] == [placed["id"]]
    assert [(li.sku, li.quantity, li.unit_price) for li in orders[0].lines] == [
        ("TEE-0", 2, Decimal("19.99"))
    ]
    assert orders[0].total == Decimal("39.98")
    assert client.fetch_orders(datetime.now(UTC) + timedelta(seconds=5)) == []
    assert client.fetch_order(placed["id"]).lines == orders[0].lines


# -- errors, auth, limits -------------------------------------------------------------------


def test_errors_map_to_the_hub_classes(
    sandbox: tuple[PrintifySandbox, str], shop: StoreConnection
) -> None:
    _, url = sandbox
    client = client_for(shop)
    knobs(url, outage=True)
    with pytest.raises(RetryableError, match="503"):
        client.list_products()
    knobs(url, outage=False, error_rate=1.0)
    with pytest.raises(RetryableError, match="500"):
        client.list_products()
    knobs(url, error_rate=0.0)
    broken = StoreConnection(
        **{**shop.__dict__, "settings": {"printify_template": {**TEMPLATE, "print_areas": []}}}
    )
    # The platform's reason stays out of the error (tenants read it): status and a fixed
    # reason only.
    with pytest.raises(PermanentError, match=r"answered 400 \(the platform refused") as refused:
        client_for(broken).create_product(draft())
    assert "print_areas" not in str(refused.value)
    wrong = StoreConnection(
        **{
            **shop.__dict__,
            "credentials": {"token": Secret("pfy-wrong-token-xyz")},
            "store_id": str(uuid.uuid4()),
        }
    )
    with pytest.raises(PermanentError, match="401") as caught:
        client_for(wrong).list_products()
    assert "pfy-wrong-token-xyz" not in str(caught.value)


def test_auth_and_user_agent_are_required(
    sandbox: tuple[PrintifySandbox, str], shop: StoreConnection
) -> None:
    _, url = sandbox
    path = f"{url}/v1/shops/{shop.external_id}/products.json"
    assert requests.get(path, headers={"User-Agent": "t"}, timeout=10).status_code == 401
    # http.client sends no User-Agent unless told (requests and urllib3 always add one).
    raw = http.client.HTTPConnection(url.removeprefix("http://"), timeout=10)
    raw.request("GET", path.removeprefix(url), headers=bearer(shop))
    no_agent = raw.getresponse()
    assert no_agent.status == 400 and json.loads(no_agent.read())["status"] == "error"
    raw.close()
    other = make_shop(url)  # another account's token opens nothing here
    assert requests.get(path, headers=bearer(other), timeout=10).status_code == 404
    page = requests.get(path, headers=bearer(shop), params={"limit": 101}, timeout=10)
    assert page.status_code == 400 and page.json()["code"] == 8203


def test_over_the_account_limit_is_429_and_rate_limited(
    sandbox: tuple[PrintifySandbox, str], shop: StoreConnection
) -> None:
    _, url = sandbox
    knobs(url, rate_limit=[0.5, 2])
    path = f"{url}/v1/shops/{shop.external_id}/products.json"
    first = requests.get(path, headers=bearer(shop), timeout=10)
    assert (
        first.headers["X-RateLimit-Limit"] == "2" and first.headers["X-RateLimit-Remaining"] == "1"
    )
    requests.get(path, headers=bearer(shop), timeout=10)
    over = requests.get(path, headers=bearer(shop), timeout=10)
    assert over.status_code == 429 and over.headers["Retry-After"] == "2"
    assert over.json()["message"] == "Too Many Attempts."
    with pytest.raises(RateLimited) as caught:
        client_for(shop).list_products()
    assert caught.value.retry_after_s == pytest.approx(2.0)


# -- webhooks -------------------------------------------------------------------------------


def test_an_order_sends_a_signed_webhook_the_plugin_accepts(
    sandbox: tuple[PrintifySandbox, str], receiver: Receiver
) -> None:
    app, url = sandbox
    app.reset()
    conn = make_shop(url, webhook_url=receiver.url, webhook_secret=SECRET)
    client_for(conn).create_product(draft(None, 3))
    receiver.wait_for(1)  # product:publish:started
    placed = requests.post(
        f"{url}/_sandbox/orders",
        json={"shop": int(conn.external_id), "lines": [{"sku": "TEE-0", "quantity": 1}]},
        timeout=10,
    ).json()
    receiver.wait_for(2)
    topics = [json.loads(body)["type"] for _, body in receiver.requests]
    assert topics == ["product:publish:started", "order:created"]
    headers, body = receiver.requests[1]
    event = printify.plugin.verify_webhook(headers, body, SECRET)
    assert event.topic == "order:created" and event.payload["resource"]["id"] == placed["id"]
    assert printify.plugin.order_from_event(event) is None  # status only, as Printify sends
    assert printify.plugin.needs_lookup(event)
    order_id = printify.order_id_from_event(event)
    assert order_id == placed["id"]
    assert client_for(conn).fetch_order(order_id).lines[0].sku == "TEE-0"
    completed = client_for(conn).complete_event(event)
    assert not printify.plugin.needs_lookup(completed)
    order = printify.plugin.order_from_event(completed)
    assert order is not None and order.external_id == placed["id"]
    assert [(li.sku, li.quantity) for li in order.lines] == [("TEE-0", 1)]


def test_subscribing_twice_registers_each_order_topic_once_with_the_secret(
    sandbox: tuple[PrintifySandbox, str], receiver: Receiver
) -> None:
    app, url = sandbox
    app.reset()
    conn = make_shop(url)
    client = client_for(conn)
    client.create_product(draft(None, 3))
    assert client.subscribe_order_events(receiver.url, SECRET) == [
        "order:created",
        "order:shipment:created",
        "order:updated",
    ]
    assert client.subscribe_order_events(receiver.url, SECRET) == []
    hooks = requests.get(f"{url}{client.shop}/webhooks.json", headers=bearer(conn), timeout=10)
    assert sorted((h["topic"], h["url"]) for h in hooks.json()) == [
        ("order:created", receiver.url),
        ("order:shipment:created", receiver.url),
        ("order:updated", receiver.url),
    ]
    requests.post(
        f"{url}/_sandbox/orders",
        json={"shop": int(conn.external_id), "lines": [{"sku": "TEE-0", "quantity": 1}]},
        timeout=10,
    ).raise_for_status()
    receiver.wait_for(1)
    headers, body = receiver.requests[0]
    assert printify.plugin.verify_webhook(headers, body, SECRET).topic == "order:created"


def _event(created_at: str | None = None) -> bytes:
    created_at = created_at or datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S+00:00")
    return json.dumps(
        {
            "id": str(uuid.uuid4()),
            "type": "order:created",
            "created_at": created_at,
            "resource": {"id": "o1", "type": "order", "data": {"status": "on-hold"}},
        }
    ).encode()


STALE = "2020-01-01 00:00:00+00:00"


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("unsigned", "missing or malformed"),
        ("not sha256=", "missing or malformed"),
        ("other secret", "does not match"),
        ("other bytes", "does not match"),
        ("stale", "stale"),
        ("not an event", "not a Printify event"),
    ],
)
def test_forged_or_stale_webhooks_are_refused(case: str, reason: str) -> None:
    body = _event(STALE if case == "stale" else None)
    if case == "not an event":
        body = b"[]"
    headers = {
        "unsigned": {},
        "not sha256=": {"X-Pfy-Signature": sign(SECRET, body)[7:]},
        "other secret": {"X-Pfy-Signature": sign("other-secret", body)},
        "other bytes": {"X-Pfy-Signature": sign(SECRET, _event())},
    }.get(case, {"X-Pfy-Signature": sign(SECRET, body)})
    with pytest.raises(PermanentError, match=reason) as caught:
        printify.plugin.verify_webhook(headers, body, SECRET)
    assert SECRET not in str(caught.value)


def test_a_tampered_body_is_refused_and_the_exact_bytes_are_accepted() -> None:
    body = _event()
    signature = {"x-pfy-signature": sign(SECRET, body)}
    assert printify.plugin.verify_webhook(signature, body, SECRET).topic == "order:created"
    reserialised = json.dumps(json.loads(body), indent=1).encode()
    with pytest.raises(PermanentError, match="does not match"):
        printify.plugin.verify_webhook(signature, reserialised, SECRET)


def test_without_a_setting_the_shops_tagged_design_is_the_template(
    sandbox: tuple[PrintifySandbox, str], shop: StoreConnection
) -> None:
    _, url = sandbox
    plain = StoreConnection(**{**shop.__dict__, "settings": {}})
    product = client_for(plain).create_product(draft(None, 2))
    stored = products(url, shop)[product.external_id]
    assert (stored["blueprint_id"], stored["print_provider_id"]) == (6, 270)
    assert stored["print_areas"][0]["placeholders"][0]["position"] == "front"
    assert [p.external_id for p in client_for(plain).list_products()] == [product.external_id]
    bare = make_shop(url, template=False)
    bare = StoreConnection(**{**bare.__dict__, "settings": {}})
    with pytest.raises(PermanentError, match="design template"):
        client_for(bare).create_product(draft())


def test_a_sandbox_order_takes_the_variant_stock(
    sandbox: tuple[PrintifySandbox, str], shop: StoreConnection
) -> None:
    _, url = sandbox
    client = client_for(shop)
    product = client.create_product(draft(None, 5))
    body = {"shop_id": int(shop.external_id), "lines": [{"sku": "TEE-0", "quantity": 2}]}
    assert requests.post(f"{url}/_sandbox/orders", json=body, timeout=10).status_code == 201
    (listed,) = client.list_products()
    assert listed.external_id == product.external_id and listed.quantities == {"TEE-0": 3}
