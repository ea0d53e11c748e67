"""Multi-factor sign-in through the API: TOTP enrolment, login with a code computed from
RFC 6238 in the test, reused codes and recovery codes refused, lock-out, turning it off, and
the org setting that requires it of owners."""

from __future__ import annotations

import uuid
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from tests.api.conftest import PASSWORD, Caller, Team, count_rows, signup
from tests.support.totp import code_at


def _email(caller: Caller) -> str:
    return str(caller.get("/me").json["user"]["email"])


def _enrol(person: Caller) -> tuple[str, list[str]]:
    """Turn TOTP on for ``person``; the secret and the recovery codes."""
    started = person.post("/me/mfa/totp")
    assert started.status_code == 201, started.json
    secret = started.json["secret"]
    confirmed = person.post("/me/mfa/totp/confirm", json={"code": code_at(secret)})
    assert confirmed.status_code == 200, confirmed.json
    return secret, confirmed.json["recovery_codes"]


def _wrong_code(secret: str) -> str:
    """A well-formed code that no step of the window accepts."""
    window = {code_at(secret, step_offset=k) for k in (-1, 0, 1)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in window)


def _challenge(client: FlaskClient, email: str) -> str:
    answer = client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 401, answer.json
    assert answer.json["type"].endswith("/mfa-required") and answer.json["mfa_required"] is True
    assert "access_token" not in answer.json and "refresh_token" not in answer.json
    return str(answer.json["challenge"])


def _second_factor(client: FlaskClient, challenge: str, **factor: str) -> Any:
    return client.post("/auth/login/mfa", json={"challenge": challenge, **factor})


def test_enrolment_then_login_needs_a_code_and_a_code_works_once(
    client: FlaskClient, admin_engine: Engine
) -> None:
    # Given a person who starts enrolling
    person = signup(client)
    email = _email(person)
    started = person.post("/me/mfa/totp")
    assert started.status_code == 201
    secret = started.json["secret"]
    assert started.json["otpauth_uri"].startswith("otpauth://totp/Fusion%20Stage%20Hub:")
    assert f"secret={secret}" in started.json["otpauth_uri"]
    assert person.get("/me/mfa").json == {"totp": "pending", "recovery_codes_left": 0}
    # A pending enrolment changes nothing at login
    credentials = {"email": email, "password": PASSWORD}
    assert client.post("/auth/login", json=credentials).status_code == 200
    other_device = client.post("/auth/login", json=credentials).json
    # When a wrong code confirms, nothing turns on
    wrong = person.post("/me/mfa/totp/confirm", json={"code": _wrong_code(secret)})
    assert wrong.status_code == 422 and "code" in wrong.json["errors"]
    assert person.get("/me/mfa").json["totp"] == "pending"
    # When the current code (computed here from RFC 6238) confirms
    confirm_code = code_at(secret)
    confirmed = person.post("/me/mfa/totp/confirm", json={"code": confirm_code})
    assert confirmed.status_code == 200, confirmed.json
    recovery = confirmed.json["recovery_codes"]
    assert len(recovery) == 10 and len(set(recovery)) == 10
    assert person.get("/me/mfa").json == {"totp": "on", "recovery_codes_left": 10}
    # Then the other login session (password only) has ended; this one stays
    other = {"Authorization": f"Bearer {other_device['access_token']}"}
    assert client.get("/me", headers=other).status_code == 401
    assert person.get("/me").status_code == 200
    # And the secret is stored encrypted, the recovery codes as argon2id hashes only
    with admin_engine.connect() as conn:
        stored = conn.execute(text("SELECT secret_encrypted FROM totp_factors")).scalar_one()
        hashes = conn.execute(text("SELECT code_hash FROM recovery_codes")).scalars().all()
    assert secret.encode() not in bytes(stored) and bytes(stored).startswith(b"gAAAAA")  # Fernet
    assert all(h.startswith("$argon2id$") for h in hashes)
    assert not any(c.replace("-", "") in h for c in recovery for h in hashes)

    # When the person logs in: the password alone gives a challenge, not tokens
    challenge = _challenge(client, email)
    # Then the code already used to confirm (same step) and an earlier step's are refused
    assert _second_factor(client, challenge, code=confirm_code).status_code == 401
    earlier = code_at(secret, step_offset=-1)
    assert _second_factor(client, challenge, code=earlier).status_code == 401
    # And the next step's code (within the window) gives the tokens
    next_code = code_at(secret, step_offset=1)
    done = _second_factor(client, challenge, code=next_code)
    assert done.status_code == 200, done.json
    assert client.get("/me", headers={"Authorization": f"Bearer {done.json['access_token']}"}).json
    # A challenge works once; the code that worked never works again
    assert _second_factor(client, challenge, code=next_code).status_code == 401
    again = _challenge(client, email)
    assert _second_factor(client, again, code=next_code).status_code == 401
    # A recovery code stands in for the code, once
    assert _second_factor(client, again, recovery_code=recovery[0].upper()).status_code == 200
    third = _challenge(client, email)
    assert _second_factor(client, third, recovery_code=recovery[0]).status_code == 401
    assert person.get("/me/mfa").json == {"totp": "on", "recovery_codes_left": 9}
    # An unknown challenge, or neither/both factors, are refused
    assert _second_factor(client, "no-such-challenge", code=next_code).status_code == 401
    assert _second_factor(client, third).status_code == 422
    both = _second_factor(client, third, code=next_code, recovery_code=recovery[1])
    assert both.status_code == 422


def test_wrong_codes_burn_the_challenge_and_then_lock_the_factor(
    client: FlaskClient, admin_engine: Engine
) -> None:
    person = signup(client)
    email = _email(person)
    secret, recovery = _enrol(person)
    # Given a challenge that has taken five wrong codes
    challenge = _challenge(client, email)
    for _ in range(5):
        assert _second_factor(client, challenge, code=_wrong_code(secret)).status_code == 401
    # Then even a good recovery code no longer redeems it
    assert _second_factor(client, challenge, recovery_code=recovery[0]).status_code == 401
    # When five more wrong codes arrive on a new challenge (ten in a row)
    second = _challenge(client, email)
    for _ in range(5):
        assert _second_factor(client, second, recovery_code="aaaaa-aaaaa").status_code == 401
    # Then the factor is locked: a fresh challenge with a good code is refused too
    third = _challenge(client, email)
    assert _second_factor(client, third, recovery_code=recovery[0]).status_code == 401
    with admin_engine.connect() as conn:
        locked = conn.execute(
            text("SELECT locked_until > now() FROM totp_factors WHERE user_id = :u"),
            {"u": person.user_id},
        ).scalar_one()
    assert locked is True
    assert count_rows(admin_engine, "recovery_codes", user_id=person.user_id) == 10
    assert person.get("/me/mfa").json["recovery_codes_left"] == 10  # nothing was spent


def test_turning_mfa_off_needs_the_password_or_a_code(client: FlaskClient) -> None:
    person = signup(client)
    email = _email(person)
    secret, _ = _enrol(person)
    # Enrolling again while on is a conflict
    assert person.post("/me/mfa/totp").status_code == 409
    # A wrong password, or neither proof, changes nothing
    wrong = person.call("DELETE", "/me/mfa/totp", json={"password": "not the password"})
    assert wrong.status_code == 422 and "password" in wrong.json["errors"]
    assert person.call("DELETE", "/me/mfa/totp", json={}).status_code == 422
    assert person.get("/me/mfa").json["totp"] == "on"
    # The right password turns it off, and the password alone logs in again
    assert person.call("DELETE", "/me/mfa/totp", json={"password": PASSWORD}).status_code == 204
    assert person.get("/me/mfa").json == {"totp": "off", "recovery_codes_left": 0}
    login = client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200 and login.json["access_token"]
    # Turned on again, a current code turns it off too
    secret, _ = _enrol(person)
    off = person.call("DELETE", "/me/mfa/totp", json={"code": code_at(secret, step_offset=1)})
    assert off.status_code == 204


def test_an_org_can_require_mfa_of_its_owners(
    client: FlaskClient, team_a: Team, admin_engine: Engine
) -> None:
    org = f"/orgs/{team_a.org_id}"
    # Given an owner without MFA: turning the requirement on would lock them out, so it is refused
    refused = team_a.owner.call("PATCH", org, json={"require_owner_mfa": True})
    assert refused.status_code == 409
    assert team_a.owner.get(org).json["require_owner_mfa"] is False
    # When the owner enrols, they can turn it on
    _enrol(team_a.owner)
    on = team_a.owner.call("PATCH", org, json={"require_owner_mfa": True})
    assert on.status_code == 200 and on.json["require_owner_mfa"] is True
    # And a second owner without MFA may do nothing in the org until they enrol
    promoted = team_a.owner.call(
        "PATCH", f"{org}/members/{team_a.member_ids['operator']}", json={"role": "owner"}
    )
    assert promoted.status_code == 200
    blocked = team_a.operator.get(org)
    assert blocked.status_code == 403 and "multi-factor" in blocked.json["detail"]
    assert team_a.operator.get(f"{org}/products").status_code == 403
    # Other roles are unaffected, and so is an owner's API key
    assert team_a.viewer.get(org).status_code == 200
    key = team_a.owner.post(f"{org}/api-keys", json={"name": "ci", "role": "owner"})
    assert key.status_code == 201, key.json
    key_headers = {"Authorization": f"Bearer {key.json['key']}"}
    assert client.get(org, headers=key_headers).status_code == 200
    # Then once the second owner enrols, they are let in
    _enrol(team_a.operator)
    assert team_a.operator.get(org).status_code == 200
    # The setting is audited like any change to the org
    with admin_engine.connect() as conn:
        after = conn.execute(
            text(
                "SELECT after FROM audit_logs WHERE org_id = :o AND action = 'org.update' "
                "ORDER BY seq DESC LIMIT 1"
            ),
            {"o": team_a.org_id},
        ).scalar_one()
    assert after["settings"] == {"require_owner_mfa": True}
    # Turning it off lets owners without MFA back in
    team_a.operator.call("DELETE", "/me/mfa/totp", json={"password": PASSWORD})
    assert team_a.operator.get(org).status_code == 403
    off = team_a.owner.call("PATCH", org, json={"require_owner_mfa": False})
    assert off.status_code == 200
    assert team_a.operator.get(org).status_code == 200
    assert uuid.UUID(on.json["id"]) == team_a.org_id


def test_used_and_expired_challenges_do_not_pile_up(
    client: FlaskClient, admin_engine: Engine
) -> None:
    person = signup(client)
    email = _email(person)
    _, recovery = _enrol(person)
    used = _challenge(client, email)
    assert _second_factor(client, used, recovery_code=recovery[0]).status_code == 200
    stale = _challenge(client, email)
    with admin_engine.begin() as conn:
        conn.execute(text("UPDATE login_challenges SET expires_at = now() - interval '1 second'"))
    # The expired challenge is refused, and a new login drops it and the used one
    assert _second_factor(client, stale, recovery_code=recovery[1]).status_code == 401
    _challenge(client, email)
    assert count_rows(admin_engine, "login_challenges", user_id=person.user_id) == 1
