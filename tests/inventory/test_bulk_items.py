"""Bulk jobs with item-level results, through the HTTP API on a running hub: a bulk stock push
to Amazon whose listings feed refuses one SKU completes with a result per SKU (the refused
one with Amazon's reason), and re-running its failed items makes a job of that SKU alone."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, text

from fusion.config import Settings
from tests.api.conftest import Team, make_team
from tests.support.merchant import channel_shows, connect, ok
from tests.support.stack import Stack, eventually, live_stack, warm_up_amazon

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::celery.exceptions.CPendingDeprecationWarning"),
]


@pytest.fixture(scope="module")
def stack(hub_env: dict[str, str], settings: Settings) -> Iterator[Stack]:
    with live_stack(hub_env, settings, ("amazon_sc",)) as running:
        warm_up_amazon(running)
        yield running


def finished(team: Team, job_id: str) -> dict[str, Any]:
    path = f"/orgs/{team.org_id}/jobs/{job_id}"
    return eventually(  # type: ignore[no-any-return]
        lambda: (b := team.viewer.get(path).json)["status"] in ("completed", "failed") and b,
        f"job {job_id} finished",
    )


def items(team: Team, job_id: str, **query: Any) -> list[dict[str, Any]]:
    """Every item of the job, page after page."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {**query, "limit": 2, **({"cursor": cursor} if cursor else {})}
        body = ok(team.viewer.get(f"/orgs/{team.org_id}/jobs/{job_id}/items", query_string=params))
        found += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return found


def test_a_partly_refused_feed_is_rerun_for_its_failed_items_only(
    stack: Stack, admin_engine: Engine
) -> None:
    server = stack.servers["amazon_sc"]
    team = make_team(stack.app.test_client(), "Bulk")
    org = f"/orgs/{team.org_id}"
    store_id, shop = connect(team, server, "amazon_sc")
    # Given three SKUs on sale on Amazon
    skus = [f"B-{n}-{uuid.uuid4().hex[:5].upper()}" for n in range(3)]
    product = ok(team.owner.post(f"{org}/products", json={"title": "Cups"}), 201)
    for sku in skus:
        body = {"sku": sku, "price": "9.00", "available_quantity": 4}
        ok(team.owner.post(f"{org}/products/{product['id']}/variants", json=body), 201)
    new_listing = {"product_id": product["id"], "store_id": store_id}
    listing = ok(team.owner.post(f"{org}/listings", json=new_listing), 201)
    ok(team.owner.post(f"{org}/listings/{listing['id']}/publish"), 202)
    eventually(
        lambda: all(channel_shows("amazon_sc", server, shop, s) == 4 for s in skus),
        "Amazon shows every SKU",
    )
    # and the hub's figures have moved on (counted in the warehouse, say)
    with admin_engine.begin() as conn:
        conn.execute(
            text("UPDATE product_variants SET available_quantity = 7 WHERE sku = ANY(:s)"),
            {"s": skus},
        )
    # and Amazon will refuse the middle SKU's message
    knobs(stack, refuse_skus=[skus[1]])

    # When a bulk push of the three runs
    body = {"job_type": "bulk_operations", "store_id": store_id, "payload": {"skus": skus}}
    pushed = finished(team, ok(team.operator.post(f"{org}/jobs", json=body), 202)["id"])

    # Then the job completes with a result per SKU, the refused one with Amazon's reason
    assert pushed["status"] == "completed", pushed["last_error"]
    assert pushed["result"] == {"pushed": 2, "failed": 1, "skipped": 0}
    every = items(team, pushed["id"])
    assert sorted((i["key"], i["status"]) for i in every) == sorted(
        [(skus[0], "ok"), (skus[1], "failed"), (skus[2], "ok")]
    )
    [failed] = items(team, pushed["id"], status="failed")
    assert failed["key"] == skus[1]
    assert failed["reason"] == f"8105: SKU '{skus[1]}': the listing cannot be changed at this time."
    shown = {s: channel_shows("amazon_sc", server, shop, s) for s in skus}
    assert shown == {skus[0]: 7, skus[1]: 4, skus[2]: 7}

    # When Amazon takes it again and the failed items are re-run
    knobs(stack, refuse_skus=[])
    retry = ok(team.operator.post(f"{org}/jobs/{pushed['id']}/retry-failed"), 202)

    # Then the new job names that SKU alone, and Amazon holds the hub's figure of every SKU
    assert (retry["payload"], retry["parent_job_id"]) == ({"skus": [skus[1]]}, pushed["id"])
    again = finished(team, retry["id"])
    assert again["status"] == "completed", again["last_error"]
    assert [(i["key"], i["status"]) for i in items(team, retry["id"])] == [(skus[1], "ok")]
    assert {s: channel_shows("amazon_sc", server, shop, s) for s in skus} == dict.fromkeys(skus, 7)
    # and a job with nothing failed has nothing to retry
    nothing = team.operator.post(f"{org}/jobs/{retry['id']}/retry-failed")
    assert nothing.status_code == 409, nothing.json


def test_items_of_another_orgs_job_are_not_found(stack: Stack) -> None:
    client = stack.app.test_client()
    team, other = make_team(client, "Mine"), make_team(client, "Theirs")
    store_id, _ = connect(other, stack.servers["amazon_sc"], "amazon_sc")
    job = ok(
        other.operator.post(
            f"/orgs/{other.org_id}/jobs",
            json={
                "job_type": "bulk_operations",
                "store_id": store_id,
                "payload": {"skus": ["NONE-1"]},
            },
        ),
        202,
    )
    for answer in (
        team.viewer.get(f"/orgs/{team.org_id}/jobs/{job['id']}/items"),
        team.operator.post(f"/orgs/{team.org_id}/jobs/{job['id']}/retry-failed"),
    ):
        assert answer.status_code == 404, answer.json


def knobs(stack: Stack, **values: Any) -> None:
    requests.post(
        f"{stack.servers['amazon_sc'].url}/_sandbox/knobs", json=values, timeout=5
    ).raise_for_status()
