"""The receiver over the real app and Postgres: signatures, dedupe, limits, no oracle."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, event, text
from werkzeug.test import TestResponse

from fusion.config import Settings
from fusion.db.session import Database
from fusion.security.signing import standard_webhooks_sign
from tests.webhooks.conftest import (
    ETSY_SECRET,
    MAX_BODY,
    SHOPIFY_SECRET,
    add_store,
    count,
    external_id,
    shopify_delivery,
    shopify_order,
)


def _post(
    client: FlaskClient, platform: str, store_id: uuid.UUID, body: bytes, headers: dict[str, str]
) -> TestResponse:
    return client.post(f"/webhooks/{platform}/{store_id}", data=body, headers=headers)


def _nothing_stored(admin_engine: Engine) -> None:
    assert count(admin_engine, "webhooks") == 0
    assert count(admin_engine, "jobs") == 0


def test_valid_shopify_delivery_stores_one_row_and_enqueues_one_job(
    client: FlaskClient, admin_engine: Engine, shop_a: uuid.UUID
) -> None:
    body, headers = shopify_delivery(shopify_order(), shop=external_id(admin_engine, shop_a))
    response = _post(client, "shopify", shop_a, body, headers)
    assert response.status_code == 200, response.data
    assert response.json == {"status": "accepted"}
    with admin_engine.connect() as conn:
        row = conn.execute(
            text("SELECT w.delivery_id, w.status, w.job_id, w.body_sha256, j.job_type, j.queue, "
                 "j.payload FROM webhooks w JOIN jobs j ON j.id = w.job_id")
        ).one()  # fmt: skip
    assert row.delivery_id == headers["X-Shopify-Webhook-Id"]
    assert row.status == "received"
    assert row.body_sha256 == hashlib.sha256(body).hexdigest()
    # on the store's platform queue: a slow platform's order lookups hold only its workers
    assert (row.job_type, row.queue) == ("process_webhook", "shopify")
    assert row.payload == {"webhook_id": str(_only_webhook_id(admin_engine))}
    assert count(admin_engine, "jobs") == 1


def _only_webhook_id(admin_engine: Engine) -> uuid.UUID:
    with admin_engine.connect() as conn:
        return uuid.UUID(str(conn.execute(text("SELECT id FROM webhooks")).scalar_one()))


def test_the_same_delivery_five_times_and_concurrently_is_stored_once(
    client: FlaskClient, app: Flask, admin_engine: Engine, shop_a: uuid.UUID
) -> None:
    body, headers = shopify_delivery(shopify_order(), shop=external_id(admin_engine, shop_a))
    statuses = [_post(client, "shopify", shop_a, body, headers).status_code for _ in range(5)]
    assert statuses == [200] * 5
    assert count(admin_engine, "webhooks") == 1
    assert count(admin_engine, "jobs") == 1

    body2, headers2 = shopify_delivery(shopify_order(2002), shop=external_id(admin_engine, shop_a))
    results: list[tuple[int, str]] = []
    barrier = threading.Barrier(5)

    def send() -> None:
        own = app.test_client()
        barrier.wait()
        r = _post(own, "shopify", shop_a, body2, headers2)
        results.append((r.status_code, json.loads(r.data)["status"]))

    threads = [threading.Thread(target=send) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [s for s, _ in results] == [200] * 5
    assert sorted(o for _, o in results) == ["accepted"] + ["duplicate"] * 4
    assert count(admin_engine, "webhooks") == 2
    assert count(admin_engine, "jobs") == 2


def test_every_failed_proof_gets_the_same_401_and_stores_nothing(
    client: FlaskClient,
    admin_engine: Engine,
    database: Database,
    settings: Settings,
    shop_a: uuid.UUID,
    org_b: uuid.UUID,
) -> None:
    shop_b = add_store(database, settings, org_b, "shopify", "another-secret")
    no_secret = add_store(database, settings, org_b, "shopify", None)
    body, headers = shopify_delivery(shopify_order(), shop=external_id(admin_engine, shop_a))
    tampered = body[:-2] + (b"}" if body[-2:-1] != b"}" else b" ") + body[-1:]
    assert tampered != body and len(tampered) == len(body)
    hex_sig = hmac.new(SHOPIFY_SECRET.encode(), body, hashlib.sha256).hexdigest()
    missing = {k: v for k, v in headers.items() if k != "X-Shopify-Hmac-SHA256"}
    cases = {
        "one byte changed": ("shopify", shop_a, tampered, headers),
        "hex, not base64": ("shopify", shop_a, body, {**headers, "X-Shopify-Hmac-SHA256": hex_sig}),
        "missing header": ("shopify", shop_a, body, missing),
        "unknown store": ("shopify", uuid.uuid4(), body, headers),
        "another org's store, signed for shop_a": ("shopify", shop_b, body, headers),
        "store without a secret": ("shopify", no_secret, body, headers),
        "wrong platform": ("etsy", shop_a, body, headers),
        "unknown platform": ("nope", shop_a, body, headers),
    }
    answers = {}
    for name, (platform, store, data, hdrs) in cases.items():
        response = _post(client, platform, store, data, hdrs)
        answers[name] = (response.status_code, response.data, response.headers.get("Content-Type"))
    first = answers["one byte changed"]
    assert first[0] == 401
    assert json.loads(first[1])["status"] == 401
    assert all(answer == first for answer in answers.values()), answers
    _nothing_stored(admin_engine)
    assert SHOPIFY_SECRET.encode() not in first[1]


def _etsy(secret: str, timestamp: int, payload: dict[str, object]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    msg_id = f"msg_{uuid.uuid4().hex}"
    return body, {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_webhooks_sign(secret, msg_id, timestamp, body),
    }


def test_etsy_standard_webhooks_timestamp_outside_five_minutes_is_refused(
    client: FlaskClient,
    admin_engine: Engine,
    database: Database,
    settings: Settings,
    org_a: uuid.UUID,
) -> None:
    etsy = add_store(database, settings, org_a, "etsy", ETSY_SECRET, external_id="1")
    payload = {"event_type": "shop.updated", "shop_id": 1}
    now = int(time.time())
    for skew in (-301, 301):
        body, headers = _etsy(ETSY_SECRET, now + skew, payload)
        assert _post(client, "etsy", etsy, body, headers).status_code == 401
    _nothing_stored(admin_engine)
    # In tolerance, the same shape is accepted; an event the hub ignores is kept, no job.
    body, headers = _etsy(ETSY_SECRET, now, payload)
    response = _post(client, "etsy", etsy, body, headers)
    assert (response.status_code, response.json) == (200, {"status": "ignored"})
    with admin_engine.connect() as conn:
        assert conn.execute(text("SELECT status, job_id FROM webhooks")).one() == ("ignored", None)
    assert count(admin_engine, "jobs") == 0


def test_a_body_over_the_limit_is_413_and_malformed_json_is_400(
    client: FlaskClient, admin_engine: Engine, shop_a: uuid.UUID
) -> None:
    big = b"{" + b" " * (10 * 1024 * 1024) + b"}"
    body, headers = shopify_delivery(big, shop=external_id(admin_engine, shop_a))
    response = _post(client, "shopify", shop_a, body, headers)
    assert response.status_code == 413
    assert json.loads(response.data)["status"] == 413
    assert len(big) > MAX_BODY

    body, headers = shopify_delivery(
        b'{"id": 1, "line_items": [', shop=external_id(admin_engine, shop_a)
    )
    response = _post(client, "shopify", shop_a, body, headers)
    assert response.status_code == 400, response.data
    assert json.loads(response.data)["status"] == 400
    # The same malformed body without a valid signature is a 401, not a 400 (no oracle).
    bad = {**headers, "X-Shopify-Hmac-SHA256": base64.b64encode(b"x" * 32).decode()}
    assert _post(client, "shopify", shop_a, body, bad).status_code == 401
    _nothing_stored(admin_engine)


def test_a_shopify_topic_the_hub_ignores_is_kept_without_a_job(
    client: FlaskClient, admin_engine: Engine, shop_a: uuid.UUID
) -> None:
    body, headers = shopify_delivery(
        {"id": 5, "title": "x"}, shop=external_id(admin_engine, shop_a), topic="products/update"
    )
    response = _post(client, "shopify", shop_a, body, headers)
    assert (response.status_code, response.json) == (200, {"status": "ignored"})
    assert count(admin_engine, "webhooks") == 1
    assert count(admin_engine, "jobs") == 0


def test_a_stores_route_is_read_once_and_a_deleted_store_is_refused_after(
    app: Flask, client: FlaskClient, admin_engine: Engine, shop_a: uuid.UUID
) -> None:
    routed: list[str] = []
    engine = app.extensions["fusion"].database.engine

    def executing(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if "webhook_route" in statement:
            routed.append(statement)

    event.listen(engine, "before_cursor_execute", executing)
    shop = external_id(admin_engine, shop_a)
    try:
        # When the store gets three deliveries
        for n in range(3):
            body, headers = shopify_delivery(shopify_order(2000 + n), shop=shop)
            assert _post(client, "shopify", shop_a, body, headers).status_code == 200
        # Then its route (org, platform) was read in the first only
        assert len(routed) == 1
        # And once the store is gone, its next delivery is refused, as for any unknown store,
        # though its route is still known to this process (the org session reads the store)
        with admin_engine.begin() as conn:
            conn.execute(text("DELETE FROM stores WHERE id = :id"), {"id": shop_a})
        body, headers = shopify_delivery(shopify_order(2010), shop=shop)
        refused = _post(client, "shopify", shop_a, body, headers)
        assert refused.status_code == 401
        assert len(routed) == 1
        # and the route of the wrong platform for it is refused as well
        body, headers = shopify_delivery(shopify_order(2011), shop=shop)
        assert _post(client, "etsy", shop_a, body, headers).status_code == 401
    finally:
        event.remove(engine, "before_cursor_execute", executing)
