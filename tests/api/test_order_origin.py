"""An order says what brought it: the webhook delivery and the job that first stored it, or
the reconciliation pull's job when the pull saw it first. Through the HTTP API (the store
connected, the signed delivery posted to the hub's receiver) and the real job engine; the
delivery it names is read back from ``GET /orgs/{org}/webhook-deliveries/{id}``."""

from __future__ import annotations

import json
import uuid
from typing import Any

from flask.testing import FlaskClient

from fusion.jobs.engine import Engine as JobEngine
from fusion.security.signing import shopify_hmac
from tests.api.conftest import Team
from tests.support.merchant import ok, run

SECRET = "shpss_order-origin-secret"


def connect_signed_shop(team: Team) -> tuple[str, str]:
    shop = f"shop-{uuid.uuid4().hex[:8]}.myshopify.com"
    body = {
        "platform": "shopify",
        "name": "Shop",
        "external_id": shop,
        "credentials": {"access_token": "tok-" + uuid.uuid4().hex},
        "webhook_secret": SECRET,
    }
    store = ok(team.owner.post(f"/orgs/{team.org_id}/stores", json=body), 201)
    return str(store["id"]), shop


def deliver_order(client: FlaskClient, store_id: str, shop: str, order: dict[str, Any]) -> None:
    raw = json.dumps(order).encode()
    answer = client.post(
        f"/webhooks/shopify/{store_id}",
        data=raw,
        headers={
            "Content-Type": "application/json",
            "X-Shopify-Hmac-SHA256": shopify_hmac(SECRET, raw),
            "X-Shopify-Shop-Domain": shop,
            "X-Shopify-Webhook-Id": str(uuid.uuid4()),
            "X-Shopify-Topic": "orders/create",
        },
    )
    assert answer.status_code in (200, 202), answer.json


def shopify_order(number: int, sku: str) -> dict[str, Any]:
    return {
        "id": number,
        "admin_graphql_api_id": f"gid://shopify/Order/{number}",
        "total_price": "10.00",
        "currency": "USD",
        "financial_status": "paid",
        "created_at": "2099-01-01T00:00:00+00:00",
        "line_items": [{"id": 1, "sku": sku, "quantity": 1, "price": "10.00"}],
    }


def test_an_order_links_to_the_delivery_and_job_that_brought_it(
    client: FlaskClient, team_a: Team, job_engine: JobEngine
) -> None:
    org = f"/orgs/{team_a.org_id}"
    store_id, shop = connect_signed_shop(team_a)
    order = shopify_order(7001, "SKU-ORIGIN")
    # When Shopify delivers an order and the hub processes the delivery
    deliver_order(client, store_id, shop, order)
    query = {"job_type": "process_webhook"}
    jobs = ok(team_a.viewer.get(f"{org}/jobs", query_string=query))["items"]
    assert len(jobs) == 1
    run(job_engine, jobs[0]["id"])
    # Then the order names the delivery and the job that stored it
    listed = ok(team_a.viewer.get(f"{org}/orders"))["items"]
    assert [o["external_id"] for o in listed] == ["gid://shopify/Order/7001"]
    shown = ok(team_a.viewer.get(f"{org}/orders/{listed[0]['id']}"))
    assert shown["job_id"] == jobs[0]["id"]
    assert shown["webhook_delivery_id"] == jobs[0]["payload"]["webhook_id"]
    # And a second delivery of the same order (a resend) leaves the links as they were
    deliver_order(client, store_id, shop, {**order, "financial_status": "refunded"})
    again = ok(team_a.viewer.get(f"{org}/jobs", query_string=query))["items"]
    run(job_engine, next(j["id"] for j in again if j["id"] != jobs[0]["id"]))
    assert ok(team_a.viewer.get(f"{org}/orders/{listed[0]['id']}"))["job_id"] == jobs[0]["id"]


def test_the_delivery_an_order_names_is_readable_by_its_org_alone(
    client: FlaskClient, team_a: Team, team_b: Team, job_engine: JobEngine
) -> None:
    org = f"/orgs/{team_a.org_id}"
    store_id, shop = connect_signed_shop(team_a)
    deliver_order(client, store_id, shop, shopify_order(7002, "SKU-DELIVERY"))
    job = ok(team_a.viewer.get(f"{org}/jobs", query_string={"job_type": "process_webhook"}))
    run(job_engine, job["items"][0]["id"])
    order = ok(team_a.viewer.get(f"{org}/orders"))["items"][0]
    shown = ok(team_a.viewer.get(f"{org}/orders/{order['id']}"))
    # When the delivery the order names is asked for
    delivery = ok(team_a.viewer.get(f"{org}/webhook-deliveries/{shown['webhook_delivery_id']}"))
    # Then it is the signed delivery that brought the order, handed to the job that stored it
    assert delivery["id"] == shown["webhook_delivery_id"]
    assert delivery["store_id"] == store_id and delivery["platform"] == "shopify"
    assert delivery["topic"] == "orders/create" and delivery["status"] == "processed"
    assert delivery["job_id"] == shown["job_id"] == job["items"][0]["id"]
    assert len(delivery["body_sha256"]) == 64 and "payload" not in delivery
    # And another org's members, and unknown ids, get a 404
    theirs = team_b.owner.get(f"/orgs/{team_b.org_id}/webhook-deliveries/{delivery['id']}")
    assert theirs.status_code == 404
    unknown = team_a.viewer.get(f"{org}/webhook-deliveries/{uuid.uuid4()}")
    assert unknown.status_code == 404
