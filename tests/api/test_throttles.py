"""Throttles of sign-up, login and org creation (per client IP and in all, 429 with
Retry-After), which address they count, and the cap on concurrent password hashing (503).

The suite's own app has the throttles raised out of the way (tests/conftest.py); each test
here builds an app with low limits of its own."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.app import create_app
from fusion.auth import passwords
from fusion.config import Settings
from fusion.jobs import dispatch
from tests.api.conftest import signup
from tests.support.api import PASSWORD

PROBLEM = "application/problem+json"
AppFactory = Callable[..., Flask]


@pytest.fixture
def throttled_app(settings: Settings) -> Iterator[AppFactory]:
    """Build the API with the given settings over the run's (e.g. low limits); buckets start
    full."""
    made: list[Flask] = []
    previous = dispatch.installed()

    def make(**over: Any) -> Flask:
        app = create_app(dataclasses.replace(settings, **over))
        redis = app.extensions["fusion"].redis
        stale = redis.keys("fusion:ratelimit:{throttle:*")
        if stale:
            redis.delete(*stale)
        made.append(app)
        return app

    yield make
    dispatch.install(previous)
    passwords.limit_concurrency(settings.password_hash_concurrency)
    for app in made:
        app.extensions["fusion"].database.dispose()


def _from(ip: str, **headers: str) -> dict[str, Any]:
    return {"environ_base": {"REMOTE_ADDR": ip}, "headers": headers}


def _signup(client: FlaskClient, ip: str, email: str | None = None, **headers: str) -> Any:
    email = email or f"t-{uuid.uuid4().hex[:10]}@example.test"
    return client.post(
        "/auth/signup", json={"email": email, "password": PASSWORD}, **_from(ip, **headers)
    )


def _assert_throttled(response: Any, *, at_most_s: int) -> None:
    assert response.status_code == 429, response.json
    assert response.content_type == PROBLEM
    assert 1 <= int(response.headers["Retry-After"]) <= at_most_s


def test_signup_is_throttled_per_ip_and_in_all(throttled_app: AppFactory) -> None:
    # Given 2 sign-ups a minute per IP and 3 in all
    client = throttled_app(signup_per_ip_per_minute=2, signup_per_minute=3).test_client()
    # When one address signs up three times
    first = [_signup(client, "198.51.100.1").status_code for _ in range(2)]
    third = _signup(client, "198.51.100.1")
    # Then its third is refused (a token is back in 30 s), and nothing was created by it
    assert first == [201, 201]
    _assert_throttled(third, at_most_s=30)
    # And another address still signs up once, then the global allowance is spent for all
    assert _signup(client, "198.51.100.2").status_code == 201
    _assert_throttled(_signup(client, "198.51.100.3"), at_most_s=20)


def test_a_taken_email_is_a_409_and_is_throttled_like_any_sign_up(
    throttled_app: AppFactory,
) -> None:
    client = throttled_app(signup_per_ip_per_minute=3).test_client()
    email = f"taken-{uuid.uuid4().hex[:8]}@example.test"
    answers = [_signup(client, "198.51.100.9", email).status_code for _ in range(5)]
    # The accepted trade-off: 409 tells this address the email has an account, 3 times a minute
    assert answers == [201, 409, 409, 429, 429]


def test_login_is_throttled_per_ip_whatever_the_email(throttled_app: AppFactory) -> None:
    client = throttled_app(login_per_ip_per_minute=3).test_client()

    def login(ip: str) -> Any:
        body = {"email": f"nobody-{uuid.uuid4().hex[:8]}@example.test", "password": "x" * 12}
        return client.post("/auth/login", json=body, **_from(ip))

    # One address guessing at different emails: 3 refusals, then 429
    assert [login("203.0.113.5").status_code for _ in range(3)] == [401] * 3
    _assert_throttled(login("203.0.113.5"), at_most_s=20)
    # Another address is unaffected
    assert login("203.0.113.6").status_code == 401


def test_login_is_throttled_in_all(throttled_app: AppFactory) -> None:
    client = throttled_app(login_per_minute=2).test_client()
    person = signup(client)
    email = client.get("/me", headers=person.headers).json["user"]["email"]
    body = {"email": email, "password": PASSWORD}
    answers = [client.post("/auth/login", json=body, **_from(f"203.0.113.{n}")) for n in (1, 2, 3)]
    assert [a.status_code for a in answers[:2]] == [200, 200]
    _assert_throttled(answers[2], at_most_s=30)


def test_org_creation_is_throttled_per_ip(throttled_app: AppFactory) -> None:
    client = throttled_app(org_create_per_ip_per_minute=2).test_client()
    owner = signup(client)

    def create(ip: str) -> Any:
        return client.post("/orgs", json={"name": "Many"}, **_from(ip, **owner.headers))

    assert [create("192.0.2.10").status_code for _ in range(2)] == [201, 201]
    _assert_throttled(create("192.0.2.10"), at_most_s=30)
    assert create("192.0.2.11").status_code == 201


def test_forwarded_for_is_ignored_unless_proxies_are_trusted(throttled_app: AppFactory) -> None:
    # Given no trusted proxy: a client writing X-Forwarded-For still counts as its address
    client = throttled_app(signup_per_ip_per_minute=1).test_client()
    assert _signup(client, "192.0.2.1", **{"X-Forwarded-For": "10.0.0.1"}).status_code == 201
    _assert_throttled(_signup(client, "192.0.2.1", **{"X-Forwarded-For": "10.0.0.2"}), at_most_s=60)


def test_with_one_trusted_proxy_the_client_is_the_address_it_appended(
    throttled_app: AppFactory,
) -> None:
    client = throttled_app(signup_per_ip_per_minute=1, trusted_proxies=1).test_client()
    proxy = "10.1.1.1"
    # Two clients behind the proxy are counted apart
    assert _signup(client, proxy, **{"X-Forwarded-For": "192.0.2.50"}).status_code == 201
    assert _signup(client, proxy, **{"X-Forwarded-For": "192.0.2.51"}).status_code == 201
    # And a client cannot dodge its bucket by writing addresses left of the proxy's entry
    spoofed = _signup(client, proxy, **{"X-Forwarded-For": "1.2.3.4, 192.0.2.50"})
    _assert_throttled(spoofed, at_most_s=60)


def test_ipv6_clients_are_counted_per_64(throttled_app: AppFactory) -> None:
    client = throttled_app(signup_per_ip_per_minute=1).test_client()
    assert _signup(client, "2001:db8:1:2::1").status_code == 201
    _assert_throttled(_signup(client, "2001:db8:1:2:ffff::9"), at_most_s=60)
    assert _signup(client, "2001:db8:1:3::1").status_code == 201


def test_password_hashing_waits_for_a_free_slot_then_answers_503(
    throttled_app: AppFactory,
) -> None:
    # Given an API process that hashes one password at a time, and a hash under way
    client = throttled_app(password_hash_concurrency=1).test_client()
    passwords.limit_concurrency(1, wait_s=0.2)
    release = threading.Event()
    holding = threading.Event()

    def hold() -> None:
        with passwords.hashing_slot():
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(5)
        # When someone signs up meanwhile, they wait briefly and are told to come back
        busy = _signup(client, "192.0.2.77")
        assert busy.status_code == 503 and busy.content_type == PROBLEM
        assert busy.headers["Retry-After"] == "1"
    finally:
        release.set()
        holder.join()
    # Then once the slot is free, the same sign-up goes through
    assert _signup(client, "192.0.2.78").status_code == 201
