"""What one request costs the database and Redis: one org transaction per org request (the
preflight's, carried on by the view), none left open when the view never runs, a job's
enqueue in a fixed number of statements each compiled once per process (not once per
request), and an org's quota counted in Redis in batches far from the limit, exactly near it."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import Engine, event, text
from sqlalchemy.engine.default import CACHE_HIT

from api import quota
from fusion.config import Settings
from tests.api.conftest import Team, make_team
from tests.api.kit import make_kit
from tests.support.api import running_app


def _commits(app: Flask) -> list[str]:
    seen: list[str] = []
    engine = app.extensions["fusion"].database.engine
    event.listen(engine, "commit", lambda conn: seen.append("commit"))
    event.listen(engine, "rollback", lambda conn: seen.append("rollback"))
    return seen


def test_an_org_request_runs_in_one_transaction(app: Flask, team_a: Team) -> None:
    # Given the operator's token (authenticated once already)
    assert team_a.operator.get(f"/orgs/{team_a.org_id}/jobs").status_code == 200
    seen = _commits(app)
    # When they create a product and read the job list
    posted = team_a.operator.post(
        f"/orgs/{team_a.org_id}/products", json={"title": "Mug", "description": "A mug"}
    )
    listed = team_a.operator.get(f"/orgs/{team_a.org_id}/jobs")
    # Then each request committed one transaction: authentication, membership, the product
    # and its audit entry all in it
    assert posted.status_code == 201 and listed.status_code == 200
    assert seen == ["commit", "commit"]


def test_a_view_that_never_runs_leaves_no_transaction_open(app: Flask, team_a: Team) -> None:
    pool = app.extensions["fusion"].database.engine.pool
    seen = _commits(app)
    # When the arguments are refused after the caller was authorised
    refused = team_a.operator.post(f"/orgs/{team_a.org_id}/jobs", json={"job_type": 7})
    # Then the preflight's transaction was rolled back and its connection returned
    assert refused.status_code == 422
    assert seen == ["rollback"]
    assert pool.checkedout() == 0  # type: ignore[attr-defined]


def _statements(app: Flask) -> list[tuple[str, bool]]:
    """(SQL, whether its compiled form came from the cache) of every statement from now on."""
    seen: list[tuple[str, bool]] = []
    engine = app.extensions["fusion"].database.engine

    def executing(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        seen.append((statement, context is None or context.cache_hit is CACHE_HIT))

    event.listen(engine, "before_cursor_execute", executing)
    return seen


def test_enqueueing_a_job_costs_a_fixed_set_of_statements_compiled_once(
    app: Flask, team_a: Team, admin_engine: Engine
) -> None:
    store = make_kit(admin_engine, team_a.org_id, None)["store_id"]
    path = f"/orgs/{team_a.org_id}/jobs"
    body = {"job_type": "list_products", "store_id": str(store)}
    # Given a first job enqueued through the API (every statement of the path compiled once)
    assert team_a.operator.post(path, json=body).status_code == 202
    seen = _statements(app)
    # When two more are enqueued
    for _ in range(2):
        assert team_a.operator.post(path, json=body).status_code == 202
    # Then each cost the same statements, every one compiled before (none built for the
    # request): the org's stamp, who the caller is with their role (one statement), the job
    # with its log line and the org's backlog for its lane (one statement, which also checks
    # that the store is there: its platform is remembered from the first job), and the audit
    # entry
    assert len(seen) == 2 * 4, [sql.split("\n")[0][:60] for sql, _ in seen]
    assert [sql for sql, _ in seen[:4]] == [sql for sql, _ in seen[4:]]
    assert [sql.split("\n")[0][:60] for sql, cached in seen if not cached] == []


def _jobs_on(engine: Engine, store: uuid.UUID) -> int:
    with engine.connect() as conn:
        query = text("SELECT count(*) FROM jobs WHERE store_id = :s")
        return int(conn.execute(query, {"s": store}).scalar_one())


def test_a_store_remembered_by_the_enqueue_is_still_checked_for_each_job(
    team_a: Team, team_b: Team, admin_engine: Engine
) -> None:
    store = make_kit(admin_engine, team_a.org_id, None)["store_id"]
    body = {"job_type": "list_products", "store_id": str(store)}
    # Given a job enqueued on org A's store (its platform now remembered by the process)
    assert team_a.operator.post(f"/orgs/{team_a.org_id}/jobs", json=body).status_code == 202
    before = _jobs_on(admin_engine, store)  # the kit's and this one
    # When org B's operator names that store for a job of theirs
    foreign = team_b.operator.post(f"/orgs/{team_b.org_id}/jobs", json=body)
    # Then it is not found for them, and nothing is stored
    assert foreign.status_code == 404 and str(store) in foreign.json["detail"]
    assert _jobs_on(admin_engine, store) == before
    # When the store is deleted over HTTP and a job is asked for on it again
    assert team_a.owner.call("DELETE", f"/orgs/{team_a.org_id}/stores/{store}").status_code == 200
    again = team_a.operator.post(f"/orgs/{team_a.org_id}/jobs", json=body)
    # Then it is not found either (the enqueue's statement found the store gone), and no job
    # is left on it; a second try reads the store afresh and is refused the same way
    assert again.status_code == 404 and str(store) in again.json["detail"]
    assert _jobs_on(admin_engine, store) == 0
    assert team_a.operator.post(f"/orgs/{team_a.org_id}/jobs", json=body).status_code == 404


@pytest.fixture
def quota_app(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    # Batches that never fall due by time within the test: only nearness to the limit sends.
    monkeypatch.setattr(quota, "SYNC_S", 3600.0, raising=False)
    with running_app(dataclasses.replace(settings, request_quota_per_minute=10)) as app:
        yield app


def _counted(app: Flask, org_id: uuid.UUID) -> int:
    redis = app.extensions["fusion"].redis
    return sum(int(redis.get(k) or 0) for k in redis.keys(f"fusion:quota:org:{org_id}:*"))


def test_far_from_its_quota_an_org_is_counted_in_batches_and_near_it_exactly(
    quota_app: Flask,
) -> None:
    while time.time() % quota.WINDOW_S > quota.WINDOW_S - 10:  # all in one minute's window
        time.sleep(0.5)
    client = quota_app.test_client()
    team = make_team(client, "Batched")  # two invitations: two org requests
    # Given 8 requests in all (80 % of the allowance of 10): Redis has heard of none
    path = f"/orgs/{team.org_id}/products"
    statuses = [team.viewer.get(path).status_code for _ in range(6)]
    assert statuses == [200] * 6
    assert _counted(quota_app, team.org_id) == 0
    # When the 9th and 10th arrive, each is counted in Redis at once, with all before it
    assert team.viewer.get(path).status_code == 200
    assert _counted(quota_app, team.org_id) == 9
    assert team.viewer.get(path).status_code == 200
    assert _counted(quota_app, team.org_id) == 10
    # Then the 11th is refused, as without batching
    refused = team.viewer.get(path)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
