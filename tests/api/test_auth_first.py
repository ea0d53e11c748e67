"""Authentication comes before parsing, and no input reaches a parser that would fail with a
500: every protected operation of the OpenAPI document answers an anonymous caller the one
401 whatever its body or query, a non-member the answer of a missing org; JSON nested too
deep is a 400 everywhere (the webhook intake too, storing nothing); a cursor or resume
position with an offset Postgres refuses is a 422 or is ignored, never a 500."""

from __future__ import annotations

import base64
import re
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine

from api import events
from api.preflight import MAX_JSON_DEPTH
from api.problems import UNAUTHORIZED_DETAIL
from tests.api.conftest import Team, count_rows, signup

PROBLEM = "application/problem+json"
DEEP = "[" * 20_000  # under the tests' 64 KiB body cap: the depth, not the size, is refused
BODIES = {"empty": "{}", "deep": DEEP, "deep object": '{"a":' * 3_000 + "1" + "}" * 3_000}
# Query values a parser would refuse (422) if it ran before authentication.
QUERY = {"limit": "-5", "cursor": "not-a-cursor", "status": "nonsense"}


def _operations(client: FlaskClient) -> list[tuple[str, str, dict[str, Any]]]:
    spec = client.get("/openapi.json").json
    found = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                found.append((method.upper(), path, operation))
    return found


def _url(path: str, org_id: uuid.UUID | None = None) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "org_id" and org_id is not None:
            return str(org_id)
        return str(uuid.uuid4()) if name.endswith("_id") else "shopify"

    return re.sub(r"\{([^}]+)\}", value, path)


def _protected(client: FlaskClient) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for m, p, op in _operations(client) if op.get("security")]


def test_every_protected_operation_answers_anonymous_callers_401_before_parsing(
    client: FlaskClient,
) -> None:
    operations = _protected(client)
    assert len(operations) > 50  # the walk found the API, not an empty document
    wrong = []
    for method, path, _ in operations:
        for name, body in BODIES.items():
            answer = client.open(
                _url(path),
                method=method,
                data=body,
                content_type="application/json",
                query_string=QUERY,
            )
            if (
                answer.status_code != 401
                or answer.content_type != PROBLEM
                or answer.json["detail"] != UNAUTHORIZED_DETAIL
            ):
                wrong.append(f"{method} {path} [{name}]: {answer.status_code}")
    assert wrong == []


def test_a_non_member_gets_the_answer_of_a_missing_org_before_parsing(
    client: FlaskClient, team_a: Team
) -> None:
    # Given someone authenticated who is not a member of org A
    outsider = signup(client)
    wrong = []
    for method, path, _ in _protected(client):
        if "{org_id}" not in path:
            continue
        for name, body in BODIES.items():
            answers = [
                outsider.call(
                    method,
                    _url(path, org),
                    data=body,
                    content_type="application/json",
                    query_string=QUERY,
                )
                for org in (team_a.org_id, uuid.uuid4())
            ]
            # Then org A answers exactly as an org that does not exist: 404, nothing parsed
            a, missing = answers
            if (a.status_code, a.json) != (missing.status_code, missing.json) or (
                a.status_code != 404
            ):
                wrong.append(f"{method} {path} [{name}]: {a.status_code} / {missing.status_code}")
    assert wrong == []


def test_a_role_too_low_is_refused_before_parsing(team_a: Team) -> None:
    # A viewer's write with a body the schema would refuse is a 403, not the schema's 422
    for method, path in (("POST", "/invitations"), ("POST", "/api-keys"), ("POST", "/stores")):
        answer = team_a.viewer.call(method, f"/orgs/{team_a.org_id}{path}", json={})
        assert (answer.status_code, answer.content_type) == (403, PROBLEM), path


@pytest.mark.parametrize("body", ["deep", "deep object"])
def test_deep_json_is_a_400_problem_on_every_json_endpoint(
    client: FlaskClient, team_a: Team, body: str
) -> None:
    wrong = []
    for method, path, operation in _operations(client):
        if "requestBody" not in operation:
            continue
        caller = team_a.owner.call if operation.get("security") else client.open
        answer = caller(
            method=method,
            path=_url(path, team_a.org_id),
            data=BODIES[body],
            content_type="application/json",
        )
        if answer.status_code != 400 or answer.content_type != PROBLEM:
            wrong.append(f"{method} {path}: {answer.status_code}")
    assert wrong == []


def test_json_just_deep_enough_is_still_parsed(team_a: Team) -> None:
    # At the limit the body reaches the schema, which names what is wrong with it
    nested: Any = "x"
    for _ in range(MAX_JSON_DEPTH - 1):
        nested = [nested]
    answer = team_a.owner.post(f"/orgs/{team_a.org_id}/products", json={"title": nested})
    assert answer.status_code == 422 and "title" in answer.json["errors"]


def test_deep_json_to_the_webhook_intake_is_a_400_and_stores_nothing(
    client: FlaskClient, admin_engine: Engine
) -> None:
    for body in (DEEP, BODIES["deep object"]):
        answer = client.post(
            f"/webhooks/shopify/{uuid.uuid4()}", data=body, content_type="application/json"
        )
        assert answer.status_code == 400 and answer.content_type == PROBLEM
    assert count_rows(admin_engine, "webhooks") == 0


def _cursor(stamp: str) -> str:
    raw = f"{stamp}|{uuid.uuid4()}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "stamp",
    [
        "2024-01-01T00:00:00+20:00",  # Python takes the offset, Postgres refuses it
        "2024-01-01T00:00:00-16:00",
        "0001-01-01T00:00:00+05:00",  # no UTC equivalent
    ],
)
def test_a_cursor_postgres_would_refuse_is_a_422_naming_it(team_a: Team, stamp: str) -> None:
    answer = team_a.viewer.get(f"/orgs/{team_a.org_id}/products?cursor={_cursor(stamp)}")
    assert answer.status_code == 422 and answer.content_type == PROBLEM
    assert answer.json["errors"] == {"cursor": ["Not a valid cursor."]}


def test_a_cursor_with_an_offset_postgres_takes_still_pages(team_a: Team) -> None:
    stamp = "2999-01-01T00:00:00+15:30"
    answer = team_a.viewer.get(f"/orgs/{team_a.org_id}/products?cursor={_cursor(stamp)}")
    assert answer.status_code == 200 and answer.json["items"] == []


def test_a_resume_position_postgres_would_refuse_still_streams(
    team_a: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events, "POLL_S", 0.05)
    monkeypatch.setattr(events, "STREAM_S", 1)
    stream = team_a.viewer.get(
        f"/orgs/{team_a.org_id}/events", headers={"Last-Event-ID": "2024-01-01T00:00:00+20:00"}
    )
    try:
        assert stream.status_code == 200
        chunks = [c.decode() if isinstance(c, bytes) else c for c in stream.response]
    finally:
        stream.close()
    assert chunks[0].startswith("retry:") and len(chunks) > 1


def test_public_operations_still_parse_their_bodies(client: FlaskClient) -> None:
    # No guard demands a caller there: the body is parsed and its fields named
    answer = client.post("/auth/signup", json={})
    assert answer.status_code == 422 and answer.content_type == PROBLEM
