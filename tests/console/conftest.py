"""The console driven with Flask's test client: one cookie jar per person, signed in through
the sign-in form, every POST carrying the CSRF token the pages hand out. The people and their
orgs are made through the API (tests.api.conftest's team)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.api.conftest import Caller, Team, make_team
from tests.support.api import PASSWORD

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Person:
    """Someone using the console in their own browser (cookie jar)."""

    client: FlaskClient
    email: str
    api: Caller
    token: str = ""
    pages: list[str] = field(default_factory=list)

    def get(self, path: str, **kwargs: Any) -> Any:
        response = self.client.get(path, **kwargs)
        found = CSRF.search(response.get_data(as_text=True))
        if found:
            self.token = found.group(1)
        return response

    def post(self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True) -> Any:
        body = dict(data or {})
        if csrf:
            if not self.token:
                self.get("/console/login")
            body["csrf_token"] = self.token
        return self.client.post(path, data=body)

    def sign_in(self, password: str = PASSWORD) -> Any:
        self.get("/console/login")
        answer = self.post("/console/login", {"email": self.email, "password": password})
        self.token = ""  # signing in starts a session with a token of its own
        return answer


def email_of(caller: Caller) -> str:
    return str(caller.get("/me").json["user"]["email"])


def person(app: Flask, caller: Caller, *, signed_in: bool = True) -> Person:
    someone = Person(app.test_client(), email_of(caller), caller)
    if signed_in:
        answer = someone.sign_in()
        assert answer.status_code == 303, answer.get_data(as_text=True)
    return someone


@dataclass
class ConsoleTeam:
    team: Team
    owner: Person
    operator: Person
    viewer: Person

    @property
    def org(self) -> str:
        return f"/console/orgs/{self.team.org_id}"

    def by_role(self, role: str) -> Person:
        found: Person = getattr(self, role)
        return found


@pytest.fixture
def crew(app: Flask, client: FlaskClient) -> ConsoleTeam:
    team = make_team(client, "Alpha")
    return ConsoleTeam(
        team, person(app, team.owner), person(app, team.operator), person(app, team.viewer)
    )


def ids_in(html: str, prefix: str) -> list[uuid.UUID]:
    return [uuid.UUID(m) for m in re.findall(rf'id="{prefix}-([0-9a-f-]{{36}})"', html)]
