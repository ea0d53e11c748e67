"""``POST .../stores/{id}/test-connection`` calls a host a user chose, synchronously (issue
10.6): a hard overall deadline however slowly it answers, a cap on what is read, no database
transaction open while it runs, and the same answer shape as ever."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text
from werkzeug.wrappers import Request, Response

from api.app import create_app
from fusion.config import APP_DB_ROLE, Settings
from fusion.jobs import dispatch
from tests.api.conftest import Team, make_team
from tests.support.remote import Platform, Trickle

EMPTY_SHOP = json.dumps({"data": [], "last_page": 1}).encode()
DID_NOT_ANSWER = {"ok": False, "detail": "The platform refused or did not answer (RetryableError)."}


@pytest.fixture(scope="module")
def app(api_settings: Settings) -> Iterator[Flask]:
    # The API with a 1 s deadline and a 64 KiB cap on each answer the test reads.
    previous = dispatch.installed()
    app = create_app(
        dataclasses.replace(
            api_settings, test_connection_deadline_s=1.0, test_connection_max_bytes=64 * 1024
        )
    )
    app.config["TESTING"] = True
    yield app
    dispatch.install(previous)
    app.extensions["fusion"].database.dispose()


@pytest.fixture
def team(client: FlaskClient) -> Team:
    return make_team(client, "Egress")


def _store(team: Team, base_url: str) -> str:
    created = team.owner.post(
        f"/orgs/{team.org_id}/stores",
        json={
            "platform": "printify",
            "name": "Test connection",
            "external_id": str(uuid.uuid4().int % 10**7),
            "base_url": base_url,
            "credentials": {"access_token": "pfy-token-0123456789"},
        },
    )
    assert created.status_code == 201, created.json
    return str(created.json["id"])


def _test(team: Team, store: str) -> dict[str, object]:
    answer = team.operator.post(f"/orgs/{team.org_id}/stores/{store}/test-connection")
    assert answer.status_code == 200, answer.json
    body: dict[str, object] = answer.json
    return body


@pytest.mark.parametrize("in_body", [False, True], ids=["trickled-headers", "trickled-body"])
def test_a_platform_trickling_for_a_minute_gets_an_answer_at_the_deadline(
    team: Team, in_body: bool
) -> None:
    # Given a store whose platform answers one byte every 50 ms for a minute (then, for the
    # body, a valid empty shop: a client that waited it out would say "connected")
    with Trickle(interval_s=0.05, for_s=60, in_body=in_body, then=EMPTY_SHOP) as trickle:
        store = _store(team, trickle.url)
        # When an operator tests the connection (the deadline is 1 s)
        body = _test(team, store)
        # Then the answer came, saying the platform did not answer, and the hub hung up
        assert body == DID_NOT_ANSWER
        assert trickle.abandoned.wait(5)


def test_an_answer_over_the_cap_is_not_read(team: Team) -> None:
    # Given a platform answering a valid empty shop padded to 3 MB (the cap is 64 KiB)
    padded = b" " * (3 * 1024 * 1024) + EMPTY_SHOP
    with Platform() as platform:
        store = _store(team, platform.url)
        shop_path = f"/v1/shops/{_external_id(team, store)}/products.json"
        platform.routes[shop_path] = lambda r: Response(padded, content_type="application/json")
        # When the connection is tested, Then it fails as a refusal, the answer not read
        assert _test(team, store) == {
            "ok": False,
            "detail": "The platform refused or did not answer (PermanentError).",
        }
        # And an answer within the cap connects as ever
        platform.routes[shop_path] = lambda r: Response(EMPTY_SHOP, content_type="application/json")
        assert _test(team, store) == {
            "ok": True,
            "detail": "Connected; the store holds 0 product(s).",
        }


def test_no_transaction_is_open_while_the_platform_is_called(
    team: Team, admin_engine: Engine
) -> None:
    # Given a platform that, while it answers, counts the hub's transactions left open
    open_while_called: list[int] = []

    def answer(request: Request) -> Response:
        with admin_engine.connect() as conn:
            open_while_called.append(
                conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND usename = :role AND xact_start IS NOT NULL"
                    ),
                    {"role": APP_DB_ROLE},
                ).scalar_one()
            )
        return Response(EMPTY_SHOP, content_type="application/json")

    with Platform() as platform:
        store = _store(team, platform.url)
        platform.routes[f"/v1/shops/{_external_id(team, store)}/products.json"] = answer
        # When the connection is tested
        body = _test(team, store)
    # Then it connected, and no transaction of the hub was open during the call
    assert body == {"ok": True, "detail": "Connected; the store holds 0 product(s)."}
    assert open_while_called == [0]


def _external_id(team: Team, store: str) -> str:
    shown = team.owner.get(f"/orgs/{team.org_id}/stores/{store}")
    return str(shown.json["external_id"])
