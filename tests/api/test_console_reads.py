"""What the ops console reads that the API lacked before: a long job's progress, a store's
rate-limit state, the hourly series of the dashboard, the org-wide SKU search and the
heartbeats of the hub's processes. Through the HTTP API, the Etsy sandbox over loopback and
the real job engine over Postgres and Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import Engine, text

from fusion import telemetry
from fusion.jobs.engine import Engine as JobEngine
from fusion.jobs.engine import Outcome
from fusion.sandbox import SandboxServer
from tests.api.conftest import Team
from tests.plugins.e2e import sandboxes
from tests.support.merchant import connect, new_product, new_sku, ok, publish, run


@pytest.fixture(scope="module")
def etsy() -> Iterator[SandboxServer]:
    with sandboxes(["etsy"]) as started:
        yield started["etsy"]


def _knobs(server: SandboxServer, **values: object) -> None:
    requests.post(f"{server.url}/_sandbox/knobs", json=values, timeout=10).raise_for_status()


def _enqueue(team: Team, job_type: str, store_id: str) -> str:
    body = {"job_type": job_type, "store_id": store_id}
    return str(ok(team.operator.post(f"/orgs/{team.org_id}/jobs", json=body), 202)["id"])


def test_a_sync_shows_its_progress_and_the_dashboard_its_hour(
    team_a: Team, etsy: SandboxServer, job_engine: JobEngine, admin_engine: Engine
) -> None:
    org = f"/orgs/{team_a.org_id}"
    # Given an Etsy store selling a product of 3 SKUs
    store_id, _ = connect(team_a, etsy, "etsy")
    product_id, _ = new_product(team_a, [new_sku() for _ in range(3)])
    publish(team_a, job_engine, product_id, store_id)
    # When its inventory sync runs
    job_id = _enqueue(team_a, "sync_inventory", store_id)
    assert ok(team_a.viewer.get(f"{org}/jobs/{job_id}"))["progress"] is None  # not started
    run(job_engine, job_id)
    # Then the job says how far it got: all 3 SKUs checked
    job = ok(team_a.viewer.get(f"{org}/jobs/{job_id}"))
    assert job["progress"] == {"done": 3, "total": 3}
    listed = ok(team_a.viewer.get(f"{org}/jobs", query_string={"job_type": "sync_inventory"}))
    assert [j["progress"] for j in listed["items"]] == [{"done": 3, "total": 3}]
    # And this hour of the dashboard counts the jobs finished, and the store's lag is the
    # time since that sync (a minute at most)
    hours = ok(team_a.viewer.get(f"{org}/stats/hourly"))["hours"]
    assert len(hours) == 25  # the last 24 hours and this one
    now = hours[-1]
    with admin_engine.connect() as conn:
        finished = conn.execute(
            text(
                "SELECT count(*) FROM jobs WHERE org_id = :org AND status = 'completed' "
                "AND finished_at >= date_trunc('hour', now())"
            ),
            {"org": team_a.org_id},
        ).scalar_one()
    assert finished >= 2 and now["jobs_finished"] == finished and now["jobs_failed"] == 0
    assert 0 <= now["sync_lag_s"][store_id] < 60
    assert hours[0]["sync_lag_s"][store_id] is None  # no sync known a day ago
    assert all(h["jobs_finished"] == 0 for h in hours[:-2])
    # Bad windows are 422 on since
    future = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    for since in (future, (datetime.now(UTC) - timedelta(days=8)).isoformat()):
        bad = team_a.viewer.get(f"{org}/stats/hourly", query_string={"since": since})
        assert bad.status_code == 422 and "since" in bad.json["errors"]


def test_a_throttled_store_shows_its_bucket_and_throttles(
    team_a: Team, etsy: SandboxServer, job_engine: JobEngine
) -> None:
    org = f"/orgs/{team_a.org_id}"
    store_id, _ = connect(team_a, etsy, "etsy")
    # Before any call the bucket is unknown and nothing was throttled
    fresh = ok(team_a.viewer.get(f"{org}/stores/{store_id}"))["rate_limit"]
    assert fresh["capacity"] is None and fresh["throttles_last_hour"] == 0
    # When the store is read, and read again once Etsy allows one call a day (made already)
    run(job_engine, _enqueue(team_a, "list_products", store_id))
    _knobs(etsy, rate_limit=[1, 1])
    try:
        run(job_engine, _enqueue(team_a, "list_products", store_id), Outcome.RESCHEDULED)
    finally:
        _knobs(etsy, rate_limit=None)
    # Then the store shows the bucket the worker wrote and the throttle of the last hour
    shown = ok(team_a.viewer.get(f"{org}/stores/{store_id}"))["rate_limit"]
    assert shown["throttles_last_hour"] == 1, shown
    assert shown["last_throttled_at"] is not None and shown["capacity"] > 0
    assert 0 <= shown["fill"] <= 1 and shown["source"] in ("hub", "platform")
    # And the hourly series counts it in this hour, for this store
    now = ok(team_a.viewer.get(f"{org}/stats/hourly"))["hours"][-1]
    assert now["throttles"] == 1 and now["throttles_by_store"] == {store_id: 1}
    # The store list keeps its shape (no rate-limit read per row)
    assert "rate_limit" not in ok(team_a.viewer.get(f"{org}/stores"))["items"][0]


def test_sku_search_across_products_with_stock(team_a: Team, team_b: Team) -> None:
    org = f"/orgs/{team_a.org_id}"
    tag = uuid.uuid4().hex[:6].upper()
    mug, _ = new_product(team_a, [f"MUG-{tag}-RED", f"MUG-{tag}-BLUE"], quantity=4)
    ok(team_a.owner.call("PATCH", f"{org}/products/{mug}", json={"title": f"Enamel mug {tag}"}))
    new_product(team_a, [f"CAP-{tag}"], quantity=9)
    new_product(team_b, [f"MUG-{tag}-THEIRS"])
    # By SKU prefix (any case): both mugs, each with its product and stock; not the other org's
    found = ok(team_a.viewer.get(f"{org}/variants", query_string={"sku": f"mug-{tag}"}))
    assert sorted(i["variant"]["sku"] for i in found["items"]) == [
        f"MUG-{tag}-BLUE",
        f"MUG-{tag}-RED",
    ]
    assert {i["product"]["title"] for i in found["items"]} == {f"Enamel mug {tag}"}
    assert {i["stock"]["available_quantity"] for i in found["items"]} == {4}
    # By text anywhere: the product's title, or a SKU's middle
    titled = ok(team_a.viewer.get(f"{org}/variants", query_string={"q": "ENAMEL"}))
    assert len(titled["items"]) == 2
    middle = ok(team_a.viewer.get(f"{org}/variants", query_string={"q": f"{tag}-BL"}))
    assert [i["variant"]["sku"] for i in middle["items"]] == [f"MUG-{tag}-BLUE"]
    # A prefix is a prefix; % is literal
    assert ok(team_a.viewer.get(f"{org}/variants", query_string={"sku": tag}))["items"] == []
    assert ok(team_a.viewer.get(f"{org}/variants", query_string={"q": "%"}))["items"] == []
    # Cursor pagination over every variant of the org
    first = ok(team_a.viewer.get(f"{org}/variants", query_string={"limit": 2}))
    rest = ok(team_a.viewer.get(f"{org}/variants", query_string={"cursor": first["next_cursor"]}))
    assert len(first["items"]) == 2 and len(rest["items"]) == 1 and rest["next_cursor"] is None
    too_long = team_a.viewer.get(f"{org}/variants", query_string={"sku": "x" * 121})
    assert too_long.status_code == 422 and "sku" in too_long.json["errors"]


def test_every_member_sees_the_hubs_heartbeats_and_nothing_else(team_a: Team, team_b: Team) -> None:
    # Given a worker and beat that said they are alive (as their heartbeat threads do)
    node = f"celery@node-{uuid.uuid4().hex[:6]}"
    telemetry.worker_heartbeat(node)
    telemetry.beat_heartbeat()
    # When a viewer of either org asks
    for team in (team_a, team_b):
        shown = ok(team.viewer.get(f"/orgs/{team.org_id}/runtime"))
        # Then they see the worker and beat alive, with a name and a time only
        workers = {w["name"]: w for w in shown["workers"]}
        assert workers[node]["alive"] is True and workers[node]["age_s"] < 60
        assert set(workers[node]) == {"name", "last_seen_at", "age_s", "alive"}
        assert shown["beat"]["alive"] is True and shown["broker_up"] is True
    # Another org's id is not found, as everywhere
    assert team_b.viewer.get(f"/orgs/{team_a.org_id}/runtime").status_code == 404
