"""Availability limits no member can spend for everyone: open event streams per caller and per
org (slots in Redis that a dead process gives back), and a /metrics that only the scraper may
read and that reads Postgres at most once per cache window."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from api.app import create_app
from fusion.config import Settings
from fusion.jobs import dispatch
from fusion.ratelimit import slots
from tests.api.conftest import Team, make_team
from tests.api.kit import make_kit
from tests.support.api import METRICS_TOKEN

PROBLEM = "application/problem+json"


def _open(caller: Any, org_id: object) -> Any:
    return caller.get(f"/orgs/{org_id}/events")


@pytest.fixture
def opened() -> Iterator[list[Any]]:
    """Streams a test opens; all closed at the end (which gives their slots back)."""
    streams: list[Any] = []
    yield streams
    for stream in streams:
        stream.close()


def test_a_caller_holds_at_most_three_streams(team_a: Team, opened: list[Any]) -> None:
    # Given a viewer with three streams open
    for _ in range(3):
        opened.append(_open(team_a.viewer, team_a.org_id))
    assert [s.status_code for s in opened] == [200, 200, 200]
    # When they open a fourth
    refused = _open(team_a.viewer, team_a.org_id)
    # Then it is a 429 problem naming the cap, and another member of the org is unaffected
    assert refused.status_code == 429 and refused.content_type == PROBLEM
    assert "At most 3 open at once for this caller" in refused.json["detail"]
    assert int(refused.headers["Retry-After"]) >= 1
    opened.append(_open(team_a.operator, team_a.org_id))
    assert opened[-1].status_code == 200
    # And closing one stream gives its slot back at once
    opened.pop(0).close()
    opened.append(_open(team_a.viewer, team_a.org_id))
    assert opened[-1].status_code == 200


def test_a_dead_processes_streams_free_their_slots_when_the_lease_runs_out(
    app: Flask, team_a: Team, opened: list[Any]
) -> None:
    # Given three streams whose process died: nobody renews or releases their slots
    for _ in range(3):
        opened.append(_open(team_a.viewer, team_a.org_id))
    assert _open(team_a.viewer, team_a.org_id).status_code == 429
    redis = app.extensions["fusion"].redis
    subjects = (f"streams:user:{team_a.viewer.user_id}", f"streams:org:{team_a.org_id}")
    assert [slots.held(redis, s) for s in subjects] == [3, 3]
    # When their leases run out (the expiry they were last renewed to passes)
    for subject in subjects:
        key = slots.KEY_PREFIX + subject
        for member in redis.zrange(key, 0, -1):
            redis.zadd(key, {member: time.time() - 1})
    # Then the caller may open streams again, and the org's count forgot them too
    opened.append(_open(team_a.viewer, team_a.org_id))
    assert opened[-1].status_code == 200
    assert slots.held(redis, f"streams:org:{team_a.org_id}") == 1


@pytest.fixture
def app_with(settings: Settings) -> Iterator[Any]:
    """A factory of apps of their own (own caches, own caps), disposed of at the end."""
    previous = dispatch.installed()
    made: list[Flask] = []

    def make(**over: Any) -> Flask:
        base = dataclasses.replace(
            settings, request_quota_per_minute=100_000, metrics_token=METRICS_TOKEN
        )
        made.append(create_app(dataclasses.replace(base, **over)))
        return made[-1]

    yield make
    dispatch.install(previous)
    for app in made:
        app.extensions["fusion"].database.dispose()


def test_an_org_holds_at_most_its_cap_of_streams(app_with: Any, opened: list[Any]) -> None:
    team = make_team(app_with(streams_per_org=4).test_client(), "Streams")
    # Given an org whose cap is 4, with its owner holding 3 streams and its operator 1
    for caller in (team.owner, team.owner, team.owner, team.operator):
        opened.append(_open(caller, team.org_id))
    assert [s.status_code for s in opened] == [200] * 4
    # When its viewer, who holds none, opens one
    refused = _open(team.viewer, team.org_id)
    # Then the org's cap refuses it
    assert refused.status_code == 429 and refused.content_type == PROBLEM
    assert "At most 4 open at once for this organisation" in refused.json["detail"]


def test_metrics_answer_only_the_scrapers_token(client: FlaskClient) -> None:
    anonymous = client.get("/metrics")
    wrong = client.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
    right = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    for refused in (anonymous, wrong):
        assert refused.status_code == 401 and refused.content_type == PROBLEM
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert "fusion_jobs" not in refused.get_data(as_text=True)
    assert right.status_code == 200 and "fusion_jobs{" in right.get_data(as_text=True)


def test_metrics_are_not_served_without_a_token(app_with: Any) -> None:
    answer = app_with(metrics_token=None).test_client().get("/metrics")
    assert answer.status_code == 404 and answer.content_type == PROBLEM


def test_scrapes_within_the_cache_window_read_postgres_once(
    app_with: Any, org_a: Any, admin_engine: Any
) -> None:
    app = app_with(metrics_cache_s=60)
    client = app.test_client()
    scraper = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "metrics_job_counts" in statement:
            statements.append(statement)

    engine = app.extensions["fusion"].database.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        # Given a first scrape
        first = client.get("/metrics", headers=scraper).get_data(as_text=True)
        # When a job appears and the scraper comes again within the window
        make_kit(admin_engine, org_a, None)
        second = client.get("/metrics", headers=scraper).get_data(as_text=True)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    # Then Postgres was asked once, and the second scrape shows the figures of the first
    assert len(statements) == 1
    assert app.extensions["fusion_metrics"].hub.reads == 1
    pending = 'fusion_jobs{queue="shopify",status="pending"}'
    assert f"{pending} 0.0" in first and f"{pending} 0.0" in second
    # While the request counters stay live
    assert first != second
