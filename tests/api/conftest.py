"""Fixtures for the API tests: people with each role in two orgs, created through the API
itself (the app and its client are tests.support.api's)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from tests.support.api import PASSWORD


@dataclass
class Caller:
    """Someone calling the API: the headers that authenticate them."""

    client: FlaskClient
    headers: dict[str, str]
    user_id: uuid.UUID | None = None
    refresh_token: str | None = None

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.client.open(path, method=method, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.call("POST", path, **kwargs)


def signup(client: FlaskClient, email: str | None = None) -> Caller:
    email = email or f"user-{uuid.uuid4().hex[:10]}@example.test"
    response = client.post("/auth/signup", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.json
    body = response.json
    return Caller(
        client,
        {"Authorization": f"Bearer {body['access_token']}"},
        uuid.UUID(body["user_id"]),
        body["refresh_token"],
    )


@dataclass
class Team:
    org_id: uuid.UUID
    owner: Caller
    operator: Caller
    viewer: Caller
    member_ids: dict[str, uuid.UUID]


def join(owner: Caller, org_id: uuid.UUID, person: Caller, role: str) -> uuid.UUID:
    """``person`` joins ``org_id`` as ``role`` the one way there is: the owner invites their
    email, they find the invitation in ``GET /me`` and accept it. Returns the member id."""
    email = person.get("/me").json["user"]["email"]
    invited = owner.post(f"/orgs/{org_id}/invitations", json={"email": email, "role": role})
    assert invited.status_code == 201, invited.json
    mine = [i["id"] for i in person.get("/me").json["invitations"] if i["org_id"] == str(org_id)]
    assert mine == [invited.json["id"]]
    accepted = person.post(f"/me/invitations/{mine[0]}/accept")
    assert accepted.status_code == 200, accepted.json
    return uuid.UUID(accepted.json["id"])


def make_team(client: FlaskClient, name: str) -> Team:
    owner = signup(client)
    created = owner.post("/orgs", json={"name": name})
    assert created.status_code == 201, created.json
    org_id = uuid.UUID(created.json["id"])
    people = {}
    member_ids = {}
    for role in ("operator", "viewer"):
        person = signup(client)
        member_ids[role] = join(owner, org_id, person, role)
        people[role] = person
    return Team(org_id, owner, people["operator"], people["viewer"], member_ids)


@pytest.fixture
def team_a(client: FlaskClient) -> Team:
    return make_team(client, "Alpha")


@pytest.fixture
def team_b(client: FlaskClient) -> Team:
    return make_team(client, "Bravo")


def count_rows(engine: Engine, table: str, **where: Any) -> int:
    clause = " AND ".join(f"{k} = :{k}" for k in where) or "true"
    with engine.connect() as conn:
        return int(
            conn.execute(text(f"SELECT count(*) FROM {table} WHERE {clause}"), where).scalar_one()
        )
