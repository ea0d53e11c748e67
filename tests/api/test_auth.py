"""Authentication: JWT edge cases, refresh rotation with reuse detection, logout, API keys."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from fusion.auth.tokens import AUDIENCE, ISSUER
from fusion.config import Settings
from tests.api.conftest import PASSWORD, Team, count_rows, signup


def _claims(user_id: uuid.UUID, session_id: uuid.UUID, **over: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "sid": str(session_id),
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(minutes=5),
        "iss": ISSUER,
        "aud": AUDIENCE,
        "jti": uuid.uuid4().hex,
    }
    for key, value in over.items():
        if value is None:
            claims.pop(key)
        else:
            claims[key] = value
    return claims


def _session_id(token: str) -> uuid.UUID:
    return uuid.UUID(jwt.decode(token, options={"verify_signature": False})["sid"])


def _unsigned(claims: dict[str, Any]) -> str:
    import base64
    import json

    def part(data: dict[str, Any]) -> str:
        raw = json.dumps(data, default=lambda d: int(d.timestamp())).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def test_forged_and_broken_tokens_all_get_the_same_401(
    client: FlaskClient, team_a: Team, api_settings: Settings
) -> None:
    # Given a valid token for the owner, and its login session
    owner = team_a.owner
    token = owner.headers["Authorization"].split()[1]
    sid = _session_id(token)
    secret = api_settings.jwt_secret
    assert owner.user_id
    uid = owner.user_id
    now = datetime.now(UTC)
    bad = {
        "alg=none": _unsigned(_claims(uid, sid)),
        "wrong key": jwt.encode(_claims(uid, sid), "another-secret-" * 4, algorithm="HS256"),
        "HS512 with the right key": jwt.encode(_claims(uid, sid), secret, algorithm="HS512"),
        "expired": jwt.encode(
            _claims(
                uid,
                sid,
                exp=now - timedelta(minutes=2),
                iat=now - timedelta(minutes=20),
                nbf=now - timedelta(minutes=20),
            ),
            secret,
            algorithm="HS256",
        ),
        "future nbf": jwt.encode(
            _claims(uid, sid, nbf=now + timedelta(minutes=5)), secret, algorithm="HS256"
        ),
        "wrong audience": jwt.encode(
            _claims(uid, sid, aud="someone-else"), secret, algorithm="HS256"
        ),
        "wrong issuer": jwt.encode(_claims(uid, sid, iss="evil"), secret, algorithm="HS256"),
        "missing exp": jwt.encode(_claims(uid, sid, exp=None), secret, algorithm="HS256"),
        "missing sid": jwt.encode(_claims(uid, sid, sid=None), secret, algorithm="HS256"),
        "tampered": token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"),
        "garbage": "not.a.jwt",
        "unknown user": jwt.encode(_claims(uuid.uuid4(), sid), secret, algorithm="HS256"),
    }
    path = f"/orgs/{team_a.org_id}/members"
    # When each is presented
    answers = {
        name: client.get(path, headers={"Authorization": f"Bearer {value}"})
        for name, value in bad.items()
    }
    answers["no header"] = client.get(path)
    answers["basic auth"] = client.get(path, headers={"Authorization": "Basic dXNlcjpwdw=="})
    # Then every one is a 401 with one and the same body
    assert {name: r.status_code for name, r in answers.items()} == {n: 401 for n in answers}
    bodies = {r.get_data(as_text=True) for r in answers.values()}
    assert len(bodies) == 1
    assert all(r.content_type == "application/problem+json" for r in answers.values())
    # And the genuine token still works
    assert client.get(path, headers=owner.headers).status_code == 200


def test_a_token_accepted_once_is_remembered_until_it_expires(
    client: FlaskClient, team_a: Team, api_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = team_a.owner
    assert owner.user_id
    sid = _session_id(owner.headers["Authorization"].split()[1])
    now = datetime.now(UTC)
    # Given a token expired 7 s ago (to the second: 7 to 8): inside the 10 s leeway, for 2 s
    expiring = jwt.encode(
        _claims(owner.user_id, sid, exp=now - timedelta(seconds=7), iat=now, nbf=now),
        api_settings.jwt_secret,
        algorithm="HS256",
    )
    forged = jwt.encode(_claims(owner.user_id, sid), "another-secret-" * 4, algorithm="HS256")
    decoded: list[str] = []
    real_decode = jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        decoded.append(token)
        return real_decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    path = f"/orgs/{team_a.org_id}/members"

    def status(token: str) -> int:
        return client.get(path, headers={"Authorization": f"Bearer {token}"}).status_code

    # When each is presented twice, at once
    answers = [status(expiring), status(expiring), status(forged), status(forged)]
    # Then the good one was verified once and accepted twice; the forged one was verified
    # (and refused) each time: a refusal is never remembered
    assert answers == [200, 200, 401, 401]
    assert decoded == [expiring, forged, forged]
    # And once the leeway has run out, the remembered token is refused like any expired one
    time.sleep(max(0.0, (now + timedelta(seconds=3.1) - datetime.now(UTC)).total_seconds()))
    assert status(expiring) == 401


def _age_used_tokens(admin_engine: Engine, user_id: uuid.UUID | None, seconds: int) -> None:
    """Move the user's refresh tokens' first use ``seconds`` into the past."""
    with admin_engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE refresh_tokens SET used_at = used_at - make_interval(secs => :s) "
                "WHERE user_id = :u AND used_at IS NOT NULL"
            ),
            {"s": seconds, "u": user_id},
        )


def test_refresh_rotates_and_reuse_revokes_the_whole_family(
    client: FlaskClient, admin_engine: Engine
) -> None:
    # Given a login with refresh token R1
    person = signup(client)
    r1 = person.refresh_token
    # When R1 is used, R2 comes back and R1 is used up
    first = client.post("/auth/refresh", json={"refresh_token": r1})
    assert first.status_code == 200
    r2, access2 = first.json["refresh_token"], first.json["access_token"]
    assert r2 != r1
    assert client.get("/me", headers={"Authorization": f"Bearer {access2}"}).status_code == 200
    # When R1 is presented again (stolen and replayed), past the reuse grace
    _age_used_tokens(admin_engine, person.user_id, 60)
    replay = client.post("/auth/refresh", json={"refresh_token": r1})
    # Then it is refused, and R2 and the family's access tokens are dead too
    assert replay.status_code == 401
    assert client.post("/auth/refresh", json={"refresh_token": r2}).status_code == 401
    assert client.get("/me", headers={"Authorization": f"Bearer {access2}"}).status_code == 401
    assert client.get("/me", headers=person.headers).status_code == 401
    # And a fresh login still works (only that family was revoked)
    email = f"{uuid.uuid4().hex[:8]}@example.test"
    signup(client, email)
    login = client.post("/auth/login", json={"email": email.upper(), "password": PASSWORD})
    assert login.status_code == 200


def test_a_refresh_raced_or_retried_within_the_grace_keeps_the_session(
    client: FlaskClient, admin_engine: Engine
) -> None:
    # Given a login whose refresh token two tabs present at once
    person = signup(client)
    answers = [
        client.post("/auth/refresh", json={"refresh_token": person.refresh_token}) for _ in range(2)
    ]
    # Then both get a working pair of the same session
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json["refresh_token"] != answers[1].json["refresh_token"]
    for answer in answers:
        headers = {"Authorization": f"Bearer {answer.json['access_token']}"}
        assert client.get("/me", headers=headers).status_code == 200
        assert _session_id(answer.json["access_token"]) == _session_id(
            person.headers["Authorization"].removeprefix("Bearer ")
        )
    assert client.get("/me", headers=person.headers).status_code == 200
    # When the grace has passed, the same token is a theft after all: the session ends
    _age_used_tokens(admin_engine, person.user_id, 60)
    late = client.post("/auth/refresh", json={"refresh_token": person.refresh_token})
    assert late.status_code == 401
    assert client.get("/me", headers=person.headers).status_code == 401
    for answer in answers:
        refresh = {"refresh_token": answer.json["refresh_token"]}
        assert client.post("/auth/refresh", json=refresh).status_code == 401


def _age_family(admin_engine: Engine, user_id: uuid.UUID | None, days: int) -> None:
    """Move the user's login sessions' start ``days`` into the past (every token's creation)."""
    with admin_engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE refresh_tokens SET created_at = created_at - make_interval(days => :d) "
                "WHERE user_id = :u"
            ),
            {"d": days, "u": user_id},
        )


def test_a_login_session_ends_after_its_maximum_age_however_often_refreshed(
    client: FlaskClient, admin_engine: Engine, api_settings: Settings
) -> None:
    assert api_settings.session_max_age_days == 90
    # Given a login refreshed once, whose session began 89 days ago
    person = signup(client)
    fresh = client.post("/auth/refresh", json={"refresh_token": person.refresh_token})
    assert fresh.status_code == 200
    _age_family(admin_engine, person.user_id, 89)
    # When it is refreshed again, it works, but the new token expires with the session
    later = client.post("/auth/refresh", json={"refresh_token": fresh.json["refresh_token"]})
    assert later.status_code == 200
    expires = datetime.fromisoformat(later.json["refresh_expires_at"])
    assert expires - datetime.now(UTC) < timedelta(days=1, minutes=5)
    # And once the session is older than 90 days, its refresh token is refused
    _age_family(admin_engine, person.user_id, 2)
    refused = client.post("/auth/refresh", json={"refresh_token": later.json["refresh_token"]})
    assert refused.status_code == 401


def test_login_refusals_look_alike(client: FlaskClient) -> None:
    email = f"{uuid.uuid4().hex[:8]}@example.test"
    signup(client, email)
    wrong = client.post("/auth/login", json={"email": email, "password": "wrong password!"})
    unknown = client.post("/auth/login", json={"email": "nobody@example.test", "password": "x"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_data() == unknown.get_data()


def test_signup_rules(client: FlaskClient) -> None:
    email = f"{uuid.uuid4().hex[:8]}@example.test"
    weak = client.post("/auth/signup", json={"email": email, "password": "short"})
    assert weak.status_code == 422 and "password" in weak.json["errors"]
    signup(client, email)
    again = client.post("/auth/signup", json={"email": email.upper(), "password": PASSWORD})
    assert again.status_code == 409


def test_logout_ends_the_session(client: FlaskClient) -> None:
    person = signup(client)
    org = person.post("/orgs", json={"name": "Mine"}).json["id"]
    assert person.get(f"/orgs/{org}/jobs").status_code == 200
    assert client.post("/auth/logout", headers=person.headers).status_code == 200
    assert client.get("/me", headers=person.headers).status_code == 401
    # An org's routes read the login session with the caller's role, in one query: it too
    # sees the session ended
    assert person.get(f"/orgs/{org}/jobs").status_code == 401
    refreshed = client.post("/auth/refresh", json={"refresh_token": person.refresh_token})
    assert refreshed.status_code == 401


def test_a_password_change_ends_every_session_and_starts_a_new_one(
    client: FlaskClient,
) -> None:
    # Given one person logged in on two devices
    email = f"{uuid.uuid4().hex[:8]}@example.test"
    laptop = signup(client, email)
    phone = client.post("/auth/login", json={"email": email, "password": PASSWORD}).json
    phone_headers = {"Authorization": f"Bearer {phone['access_token']}"}
    new_password = "a much longer passphrase 2026"
    # When they change their password on the laptop
    changed = client.post(
        "/auth/password",
        json={"current_password": PASSWORD, "new_password": new_password},
        headers=laptop.headers,
    )
    assert changed.status_code == 200, changed.json
    fresh = {"Authorization": f"Bearer {changed.json['access_token']}"}
    # Then both devices' sessions are over, access and refresh tokens alike
    for headers, refresh in (
        (laptop.headers, laptop.refresh_token),
        (phone_headers, phone["refresh_token"]),
    ):
        assert client.get("/me", headers=headers).status_code == 401
        assert client.post("/auth/refresh", json={"refresh_token": refresh}).status_code == 401
    # and the new session works, as does a login with the new password (not the old one)
    assert client.get("/me", headers=fresh).status_code == 200
    again = client.post("/auth/refresh", json={"refresh_token": changed.json["refresh_token"]})
    assert again.status_code == 200
    assert (
        client.post("/auth/login", json={"email": email, "password": PASSWORD}).status_code == 401
    )
    login = client.post("/auth/login", json={"email": email, "password": new_password})
    assert login.status_code == 200


def test_a_password_change_needs_the_current_password_and_a_good_new_one(
    client: FlaskClient, admin_engine: Engine
) -> None:
    person = signup(client)

    def change(current: str, new: str) -> Any:
        body = {"current_password": current, "new_password": new}
        return client.post("/auth/password", json=body, headers=person.headers)

    with admin_engine.connect() as conn:
        hash_before = conn.execute(
            text("SELECT password_hash FROM users WHERE id = :u"), {"u": person.user_id}
        ).scalar_one()
    wrong = change("not my password", "a much longer passphrase 2026")
    assert wrong.status_code == 422 and list(wrong.json["errors"]) == ["current_password"]
    short = change(PASSWORD, "short")
    assert short.status_code == 422 and "new_password" in short.json["errors"]
    same = change(PASSWORD, PASSWORD)
    assert same.status_code == 422 and list(same.json["errors"]) == ["new_password"]
    unknown = client.post(
        "/auth/password",
        json={"current_password": PASSWORD, "new_password": "x" * 20, "admin": True},
        headers=person.headers,
    )
    assert unknown.status_code == 422 and "admin" in unknown.json["errors"]
    anonymous = client.post(
        "/auth/password", json={"current_password": PASSWORD, "new_password": "x" * 20}
    )
    assert anonymous.status_code == 401
    # Nothing changed, and the session is still alive
    with admin_engine.connect() as conn:
        hash_after = conn.execute(
            text("SELECT password_hash FROM users WHERE id = :u"), {"u": person.user_id}
        ).scalar_one()
    assert hash_after == hash_before
    assert client.get("/me", headers=person.headers).status_code == 200
    # And guessing is slowed: past 10 checks a minute, 429 with Retry-After
    # (a loop, not a count: the one-minute window may roll over during the test)
    for _ in range(25):
        answer = change("guess", "a much longer passphrase 2026")
        if answer.status_code != 422:
            break
    assert answer.status_code == 429 and int(answer.headers["Retry-After"]) >= 1


def test_api_keys(client: FlaskClient, team_a: Team, team_b: Team, admin_engine: Engine) -> None:
    org = team_a.org_id
    # Given an owner creates an operator key
    created = team_a.owner.post(f"/orgs/{org}/api-keys", json={"name": "ci", "role": "operator"})
    assert created.status_code == 201
    key = created.json["key"]
    assert key.startswith("fsh_")
    # Then it is shown once: listing never shows it, and the DB holds only public id + hash
    listed = team_a.owner.get(f"/orgs/{org}/api-keys")
    assert key not in listed.get_data(as_text=True)
    assert "secret_hash" not in listed.get_data(as_text=True)
    with admin_engine.connect() as conn:
        row = conn.execute(
            text("SELECT public_id, secret_hash FROM api_keys WHERE id = :id"),
            {"id": created.json["id"]},
        ).one()
    secret = key.split("_", 2)[2]
    assert row.public_id in key and secret not in row.secret_hash and len(row.secret_hash) == 64
    path = f"/orgs/{org}/products"
    # When used in either header, it acts as an operator of its own org only
    assert client.get(path, headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert client.get(path, headers={"X-API-Key": key}).status_code == 200
    made = client.post(path, headers={"X-API-Key": key}, json={"title": "by key"})
    assert made.status_code == 201
    assert client.get(f"/orgs/{org}/api-keys", headers={"X-API-Key": key}).status_code == 403
    assert (
        client.get(f"/orgs/{team_b.org_id}/products", headers={"X-API-Key": key}).status_code == 404
    )
    # And it cannot act as a person
    assert client.get("/me", headers={"X-API-Key": key}).status_code == 401
    # A key in the query string, or with one character changed, is refused
    assert client.get(f"{path}?api_key={key}").status_code == 401
    assert client.get(f"{path}?api_key={key}", headers={"X-API-Key": key}).status_code == 401
    flipped = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert client.get(path, headers={"X-API-Key": flipped}).status_code == 401
    # The audit log names the key as the actor of its write
    assert (
        count_rows(admin_engine, "audit_logs", actor_type="api_key", action="product.create") == 1
    )
    # When revoked, it stops working at once
    revoked = team_a.owner.call("DELETE", f"/orgs/{org}/api-keys/{created.json['id']}")
    assert revoked.status_code == 200 and revoked.json["revoked_at"]
    assert client.get(path, headers={"X-API-Key": key}).status_code == 401


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_non_owners_cannot_mint_keys(team_a: Team, role: str) -> None:
    caller = getattr(team_a, role)
    answer = caller.post(f"/orgs/{team_a.org_id}/api-keys", json={"name": "x", "role": "owner"})
    assert answer.status_code == 403
