"""Resource limits and error shape: pagination clamp and cursors, body size (413), per-org
quotas (429 with Retry-After, other orgs unaffected), unknown routes and methods."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from fusion.config import Settings
from tests.api.conftest import Team, make_team
from tests.support.api import running_app

PROBLEM = "application/problem+json"


def test_pages_are_clamped_and_cursors_walk_everything(team_a: Team, admin_engine: Engine) -> None:
    with admin_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO products (id, org_id, title) "
                "SELECT gen_random_uuid(), :org, 'p' || n FROM generate_series(1, 130) n"
            ),
            {"org": team_a.org_id},
        )
    path = f"/orgs/{team_a.org_id}/products"
    huge = team_a.viewer.get(f"{path}?limit=100000")
    assert huge.status_code == 200 and len(huge.json["items"]) == 100
    seen: list[str] = []
    cursor = None
    while True:
        query = "?limit=40" + (f"&cursor={cursor}" if cursor else "")
        body = team_a.viewer.get(path + query).json
        seen += [p["id"] for p in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 130
    assert team_a.viewer.get(f"{path}?limit=0").status_code == 422
    bad = team_a.viewer.get(f"{path}?cursor=not-ours")
    assert bad.status_code == 422 and "cursor" in bad.json["errors"]


def test_errors_are_problem_json(client: FlaskClient, team_a: Team) -> None:
    org = f"/orgs/{team_a.org_id}"
    answers = {
        "unknown route": client.get("/nowhere"),
        "method": team_a.owner.call("DELETE", f"{org}/audit"),
        "malformed json": team_a.owner.post(
            f"{org}/products", data="{not json", content_type="application/json"
        ),
        "unknown field": team_a.owner.post(f"{org}/products", json={"title": "x", "org_id": "y"}),
        "bad id": team_a.owner.get(f"{org}/products/not-a-uuid"),
    }
    statuses = {name: r.status_code for name, r in answers.items()}
    assert statuses == {
        "unknown route": 404,
        "method": 405,
        "malformed json": 400,
        "unknown field": 422,
        "bad id": 404,
    }
    for response in answers.values():
        assert response.content_type == PROBLEM
        assert set(response.json) >= {"type", "title", "status", "detail"}
    assert answers["unknown field"].json["errors"] == {"org_id": ["Unknown field."]}
    assert "GET" in answers["method"].headers["Allow"]


def test_oversized_body_is_413(team_a: Team, api_settings: Settings) -> None:
    blob = "x" * (api_settings.max_body_bytes + 1)
    answer = team_a.owner.post(f"/orgs/{team_a.org_id}/products", json={"title": blob})
    assert answer.status_code == 413 and answer.content_type == PROBLEM


@pytest.fixture
def tight_app(settings: Settings) -> Iterator[Flask]:
    with running_app(dataclasses.replace(settings, request_quota_per_minute=5)) as app:
        yield app


def test_quota_is_per_org(tight_app: Flask, admin_engine: Engine) -> None:
    client = tight_app.test_client()
    a = make_team(client, "Quota A")
    b = make_team(client, "Quota B")
    tight_app.extensions["fusion"].redis.delete(
        *tight_app.extensions["fusion"].redis.keys("fusion:quota:*") or ["none"]
    )
    # When org A spends its quota
    statuses = [a.viewer.get(f"/orgs/{a.org_id}/products").status_code for _ in range(7)]
    # Then A gets 429 with Retry-After, and B is unaffected
    if 429 not in statuses:  # the minute rolled over mid-loop; the next calls must hit it
        statuses += [a.viewer.get(f"/orgs/{a.org_id}/products").status_code for _ in range(6)]
    assert statuses[:5] == [200] * 5 and 429 in statuses
    limited = a.viewer.get(f"/orgs/{a.org_id}/products")
    assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 61
    assert limited.content_type == PROBLEM
    assert b.viewer.get(f"/orgs/{b.org_id}/products").status_code == 200


def test_login_attempts_are_throttled_per_email(client: FlaskClient, app: Flask) -> None:
    redis = app.extensions["fusion"].redis
    for key in redis.keys("fusion:quota:login:*"):
        redis.delete(key)
    target = {"email": "victim@example.test", "password": "guess-guess-guess"}
    # At most 10 refusals per minute, then 429 (22 tries: the window may roll over once)
    statuses = [client.post("/auth/login", json=target).status_code for _ in range(22)]
    assert set(statuses) == {401, 429}
    assert statuses.index(429) <= 20 and statuses.count(401) <= 20
    other = {"email": "someone-else@example.test", "password": "guess-guess-guess"}
    assert client.post("/auth/login", json=other).status_code == 401


def test_openapi_and_docs_are_served(client: FlaskClient) -> None:
    spec = client.get("/openapi.json")
    assert spec.status_code == 200 and spec.json["openapi"].startswith("3.")
    assert "/orgs/{org_id}/jobs" in spec.json["paths"]
    problem = spec.json["components"]["responses"]["UNAUTHORIZED"]["content"]
    assert list(problem) == [PROBLEM]
    docs = client.get("/docs")
    assert docs.status_code == 200 and b"swagger" in docs.data.lower()
