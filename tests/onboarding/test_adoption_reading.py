"""Reading a store's listings for an adoption is paced by the rate limit and resumable: run by
the real engine against the Etsy sandbox with a quota of one call a second, the read job is
rescheduled each time the quota runs short and goes on from the page it had reached, so every
page is read once and every listing kept once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from fusion.jobs.engine import Engine as JobEngine
from fusion.jobs.engine import Outcome
from fusion.sandbox import SandboxServer
from tests.api.conftest import make_team
from tests.plugins.e2e import sandboxes
from tests.support.merchant import connect, ok
from tests.support.stack import eventually

LISTINGS = 150  # two pages of active listings (Etsy's page is 100), then the other states


@pytest.fixture(scope="module")
def etsy() -> Iterator[SandboxServer]:
    with sandboxes(["etsy"]) as started:
        yield started["etsy"]


def _knobs(server: SandboxServer, **values: Any) -> dict[str, Any]:
    answer = requests.post(f"{server.url}/_sandbox/knobs", json=values, timeout=5)
    answer.raise_for_status()
    return answer.json()  # type: ignore[no-any-return]


def test_a_read_cut_short_by_the_rate_limit_goes_on_from_its_page(
    client: FlaskClient, job_engine: JobEngine, etsy: SandboxServer
) -> None:
    team_a = make_team(client, "Resume")
    # Given an Etsy shop with 150 listings the hub did not make
    store_id, shop = connect(team_a, etsy, "etsy")
    listings = [
        {"title": f"Print {n}", "variants": [{"sku": f"PRINT-{n}", "price": "9.00", "quantity": 1}]}
        for n in range(LISTINGS)
    ]
    seeded = requests.post(
        f"{etsy.url}/_sandbox/listings",
        json={**shop.order_body, "listings": listings},
        timeout=10,
    )
    assert seeded.status_code == 201, seeded.text
    # and an Etsy quota of one call a second
    before = _knobs(etsy, rate_limit=[1, 1_000_000])
    base = f"/orgs/{team_a.org_id}/stores/{store_id}/adoptions"
    try:
        # When an adoption is started and its read job run by a worker until it ends
        started = ok(team_a.operator.post(base), 202)
        outcomes: list[Outcome] = []

        def ran_to_the_end() -> bool:
            outcome = job_engine.execute(uuid.UUID(started["read_job_id"]))
            if outcome is not Outcome.SKIPPED:  # skipped: rescheduled, not due yet
                outcomes.append(outcome)
            return outcome is Outcome.COMPLETED

        eventually(ran_to_the_end, "the read job completed")
        after = _knobs(etsy)
    finally:
        _knobs(etsy, rate_limit=None)

    # Then the quota cut the reading short at least once, and it went on where it was
    assert Outcome.RESCHEDULED in outcomes and outcomes[-1] is Outcome.COMPLETED
    adoption = ok(team_a.viewer.get(f"{base}/{started['id']}"))
    assert adoption["status"] == "previewed"
    # active from 0 and 100, then draft and inactive (empty): four pages, each read once
    assert adoption["pages"] == 4
    answered = (after["request_count"] - before["request_count"]) - (
        after["throttled_count"] - before["throttled_count"]
    )
    assert answered == 4
    # and every listing is kept once, in the order read
    assert adoption["plan"] == {"link": 0, "create": LISTINGS, "conflict": 0, "adopted": 0}
    held: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = ok(team_a.viewer.get(f"{base}/{started['id']}/listings", query_string=query))
        held += page["items"]
        if not (cursor := page["next_cursor"]):
            break
    assert sorted(i["position"] for i in held) == list(range(1, LISTINGS + 1))
    assert len({i["external_id"] for i in held}) == LISTINGS


def test_one_adoption_of_a_store_at_a_time_until_its_job_ends(
    client: FlaskClient, job_engine: JobEngine, etsy: SandboxServer
) -> None:
    team = make_team(client, "One at a time")
    store_id, _ = connect(team, etsy, "etsy")
    base = f"/orgs/{team.org_id}/stores/{store_id}/adoptions"
    # Given an adoption whose read job has not run yet
    first = ok(team.operator.post(base), 202)
    # Then another adoption of the store waits for it
    refused = team.operator.post(base)
    assert refused.status_code == 409, refused.json
    assert refused.json["adoption_id"] == first["id"]
    # When its read job is cancelled
    jobs = f"/orgs/{team.org_id}/jobs"
    ok(team.operator.post(f"{jobs}/{first['read_job_id']}/cancel"))
    assert ok(team.viewer.get(f"{jobs}/{first['read_job_id']}"))["status"] == "cancelled"
    # Then a new adoption may start, and runs to its preview
    second = ok(team.operator.post(base), 202)
    assert job_engine.execute(uuid.UUID(second["read_job_id"])) is Outcome.COMPLETED
    assert ok(team.viewer.get(f"{base}/{second['id']}"))["status"] == "previewed"
