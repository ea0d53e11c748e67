"""The first order pull of a new store takes no stock for the past: an order placed before the
store was connected is stored as history (listed, marked so) and leaves the stock alone; one
placed after it takes its stock. Driven through the HTTP API, the Amazon sandbox and the real
job engine over Postgres."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from fusion.jobs.engine import Engine as JobEngine
from fusion.jobs.engine import Outcome
from fusion.sandbox import SandboxServer
from tests.api.conftest import Team
from tests.plugins.e2e import PROVISIONERS, ShopSpec, sandboxes

SKU = "MUG-HIST"
# Amazon stamps orders to the second: an order is history only if placed in an earlier second
# than the store was connected, so the test leaves a whole second between the two.
SECOND = 1.05


@pytest.fixture(scope="module")
def amazon() -> Iterator[SandboxServer]:
    with sandboxes(["amazon_sc"]) as started:
        yield started["amazon_sc"]


def _place(amazon: SandboxServer, shop: ShopSpec, quantity: int) -> str:
    response = requests.post(
        f"{amazon.url}/_sandbox/orders",
        json={**shop.order_body, "lines": [{"sku": SKU, "quantity": quantity, "price": "9.00"}]},
        timeout=10,
    )
    assert response.status_code in (200, 201), response.text
    return str(response.json()["AmazonOrderId"])


def _pull(team: Team, store_id: str, job_engine: JobEngine) -> dict[str, Any]:
    response = team.operator.post(
        f"/orgs/{team.org_id}/jobs", json={"job_type": "reconcile_orders", "store_id": store_id}
    )
    assert response.status_code == 202, response.json
    assert job_engine.execute(uuid.UUID(response.json["id"])) is Outcome.COMPLETED
    job = team.viewer.get(f"/orgs/{team.org_id}/jobs/{response.json['id']}").json
    result: dict[str, Any] = job["result"]
    return result


def _orders(team: Team) -> dict[str, tuple[bool, bool]]:
    items = team.viewer.get(f"/orgs/{team.org_id}/orders").json["items"]
    return {o["external_id"]: (o["history"], o["stock_applied_at"] is not None) for o in items}


def _stock(team: Team, variant_id: str) -> int:
    return int(
        team.viewer.get(f"/orgs/{team.org_id}/variants/{variant_id}").json["available_quantity"]
    )


def test_orders_from_before_the_store_was_connected_are_history_and_take_no_stock(
    team_a: Team, amazon: SandboxServer, job_engine: JobEngine
) -> None:
    # Given an Amazon seller who sold 2 mugs before connecting to the hub
    shop = PROVISIONERS["amazon_sc"](amazon.url, "tok" + uuid.uuid4().hex)
    before = _place(amazon, shop, 2)
    time.sleep(SECOND)
    # When they connect the store and give the hub their stock (10, those 2 netted out)
    org = f"/orgs/{team_a.org_id}"
    connected = team_a.owner.post(
        f"{org}/stores",
        json={
            "platform": "amazon_sc",
            "name": "Amazon",
            "external_id": shop.external_id,
            "base_url": amazon.url,
            "credentials": dict(shop.credentials),
        },
    )
    assert connected.status_code == 201, connected.json
    store_id = connected.json["id"]
    product = team_a.operator.post(f"{org}/products", json={"title": "Mug"}).json["id"]
    variant = team_a.operator.post(
        f"{org}/products/{product}/variants",
        json={"sku": SKU, "price": "9.00", "available_quantity": 10},
    )
    assert variant.status_code == 201, variant.json
    variant_id = variant.json["id"]
    # And the first order pull runs (it reaches back days, before the store was connected)
    assert _pull(team_a, store_id, job_engine)["new"] == 1
    # Then the old order is listed, marked as history, and took no stock
    assert _orders(team_a) == {before: (True, False)}
    assert _stock(team_a, variant_id) == 10
    detail = team_a.viewer.get(f"{org}/orders").json["items"][0]
    assert detail["placed_at"] is not None

    # When a mug sells after the store was connected, and the next pull runs
    time.sleep(SECOND)
    after = _place(amazon, shop, 3)
    assert _pull(team_a, store_id, job_engine)["new"] == 1
    # Then that order takes its stock, once; the history order still takes none
    assert _orders(team_a) == {before: (True, False), after: (False, True)}
    assert _stock(team_a, variant_id) == 7
    assert _pull(team_a, store_id, job_engine)["new"] == 0
    assert _stock(team_a, variant_id) == 7


def test_a_pull_asked_for_since_2000_reaches_back_only_to_the_connection(
    team_a: Team, amazon: SandboxServer, job_engine: JobEngine
) -> None:
    # Given a seller who sold 2 mugs before connecting, and then connected with 10 in stock
    shop = PROVISIONERS["amazon_sc"](amazon.url, "tok" + uuid.uuid4().hex)
    _place(amazon, shop, 2)
    time.sleep(SECOND)
    org = f"/orgs/{team_a.org_id}"
    connected = team_a.owner.post(
        f"{org}/stores",
        json={
            "platform": "amazon_sc",
            "name": "Amazon",
            "external_id": shop.external_id,
            "base_url": amazon.url,
            "credentials": dict(shop.credentials),
        },
    )
    assert connected.status_code == 201, connected.json
    store_id = connected.json["id"]
    product = team_a.operator.post(f"{org}/products", json={"title": "Mug"}).json["id"]
    variant = team_a.operator.post(
        f"{org}/products/{product}/variants",
        json={"sku": SKU, "price": "9.00", "available_quantity": 10},
    ).json["id"]
    # When an operator asks for every order since 2000
    asked = team_a.operator.post(
        f"{org}/jobs",
        json={
            "job_type": "reconcile_orders",
            "store_id": store_id,
            "payload": {"since": "2000-01-01T00:00:00+00:00"},
        },
    )
    assert asked.status_code == 202, asked.json
    # Then the job pulls from the connection on: the old order is not even read, and the
    # stock is untouched
    assert asked.json["payload"]["since"] == connected.json["created_at"]
    assert job_engine.execute(uuid.UUID(asked.json["id"])) is Outcome.COMPLETED
    job = team_a.viewer.get(f"{org}/jobs/{asked.json['id']}").json
    assert job["result"]["new"] == 0
    assert _orders(team_a) == {}
    assert _stock(team_a, variant) == 10
