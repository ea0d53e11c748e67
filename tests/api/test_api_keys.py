"""API keys act for the person who created them, never above them, and die with them: a key
acts with the lower of its role and its creator's current role, is refused like an unknown
key once its creator is no longer an active member, cannot manage members or keys, and all
of an org's keys can be revoked at once. Every listing names the key's creator."""

from __future__ import annotations

import uuid
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from fusion.auth.access import PEOPLE_ONLY
from tests.api.conftest import Caller, Team, count_rows, join, signup


def _member(team: Team, person: Caller, role: str) -> uuid.UUID:
    return join(team.owner, team.org_id, person, role)


def _key(creator: Caller, org: uuid.UUID, role: str, name: str = "ci") -> tuple[Caller, str]:
    made = creator.post(f"/orgs/{org}/api-keys", json={"name": name, "role": role})
    assert made.status_code == 201, made.json
    return Caller(creator.client, {"X-API-Key": made.json["key"]}), str(made.json["id"])


def _unknown_key_answer(client: FlaskClient, org: uuid.UUID) -> Any:
    answer = client.get(f"/orgs/{org}", headers={"X-API-Key": "fsh_0123456789abcdef_nope"})
    assert answer.status_code == 401
    return answer.json


def _audit(admin_engine: Engine, org: uuid.UUID, action: str) -> list[Any]:
    with admin_engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT actor_type::text AS actor, actor_id, resource_id, after "
                    "FROM audit_logs WHERE org_id = :o AND action = :a ORDER BY seq"
                ),
                {"o": org, "a": action},
            )
        )


def test_a_removed_owners_key_is_refused_like_an_unknown_key(
    client: FlaskClient, team_a: Team, team_b: Team, admin_engine: Engine
) -> None:
    org = team_a.org_id
    # Given a second owner whose owner key works
    second = signup(client)
    member_id = _member(team_a, second, "owner")
    key, key_id = _key(second, org, "owner")
    assert key.get(f"/orgs/{org}/audit").status_code == 200
    # When the first owner removes them
    assert team_a.owner.call("DELETE", f"/orgs/{org}/members/{member_id}").status_code == 204
    # Then the key gets exactly the answer of a key that does not exist, in every org
    unknown = _unknown_key_answer(client, org)
    for path in (f"/orgs/{org}", f"/orgs/{org}/audit", f"/orgs/{team_b.org_id}"):
        answer = key.get(path)
        assert (answer.status_code, answer.json) == (401, unknown), path
    # And it was revoked, audited as the remover's act, so adding the person back does not
    # revive it
    shown = team_a.owner.get(f"/orgs/{org}/api-keys/{key_id}").json
    assert shown["revoked_at"] is not None
    [revoked] = _audit(admin_engine, org, "api_key.revoke")
    assert (revoked.actor, revoked.actor_id, str(revoked.resource_id)) == (
        "user",
        team_a.owner.user_id,
        key_id,
    )
    assert revoked.after["reason"] == "its creator was removed from the organisation"
    _member(team_a, second, "owner")
    assert key.get(f"/orgs/{org}").status_code == 401


def test_a_key_dies_with_its_creators_account(
    client: FlaskClient, team_a: Team, admin_engine: Engine
) -> None:
    org = team_a.org_id
    key, _ = _key(team_a.owner, org, "viewer")
    assert key.get(f"/orgs/{org}").status_code == 200
    unknown = _unknown_key_answer(client, org)
    # When the creator's account is disabled
    with admin_engine.begin() as conn:
        conn.execute(
            text("UPDATE users SET is_active = false WHERE id = :u"), {"u": team_a.owner.user_id}
        )
    answer = key.get(f"/orgs/{org}")
    assert (answer.status_code, answer.json) == (401, unknown)
    # And once the account is gone altogether (the key's creator becomes NULL)
    with admin_engine.begin() as conn:
        conn.execute(
            text("UPDATE users SET is_active = true WHERE id = :u"), {"u": team_a.owner.user_id}
        )
    assert key.get(f"/orgs/{org}").status_code == 200
    with admin_engine.begin() as conn:
        conn.execute(text("DELETE FROM users WHERE id = :u"), {"u": team_a.owner.user_id})
    assert count_rows(admin_engine, "api_keys", created_by=team_a.owner.user_id) == 0
    answer = key.get(f"/orgs/{org}")
    assert (answer.status_code, answer.json) == (401, unknown)


def test_a_key_acts_at_most_with_its_creators_current_role(
    client: FlaskClient, team_a: Team, admin_engine: Engine
) -> None:
    org = f"/orgs/{team_a.org_id}"
    # Given an owner key made by a second owner
    second = signup(client)
    member_id = _member(team_a, second, "owner")
    key, key_id = _key(second, team_a.org_id, "owner")
    assert key.get(f"{org}/audit").status_code == 200
    # When its creator is made an operator
    demoted = team_a.owner.call("PATCH", f"{org}/members/{member_id}", json={"role": "operator"})
    assert demoted.status_code == 200
    # Then the key acts as an operator: operator work yes, owner work no
    assert key.post(f"{org}/products", json={"title": "by key"}).status_code == 201
    refused = key.get(f"{org}/audit")
    assert refused.status_code == 403
    assert refused.json["detail"] == "This action needs the owner role or higher."
    renamed = key.call("PATCH", org, json={"name": "Taken over"})
    assert renamed.status_code == 403
    assert team_a.viewer.get(org).json["name"] == "Alpha"
    # And as a viewer once its creator is one
    team_a.owner.call("PATCH", f"{org}/members/{member_id}", json={"role": "viewer"})
    assert key.post(f"{org}/products", json={"title": "no"}).status_code == 403
    assert key.get(f"{org}/products").status_code == 200
    # And as an owner again once its creator is one again (its own role is the ceiling)
    team_a.owner.call("PATCH", f"{org}/members/{member_id}", json={"role": "owner"})
    assert key.get(f"{org}/audit").status_code == 200
    assert team_a.owner.get(f"{org}/api-keys/{key_id}").json["role"] == "owner"


def test_keys_cannot_manage_members_or_keys(team_a: Team, admin_engine: Engine) -> None:
    org = f"/orgs/{team_a.org_id}"
    key, key_id = _key(team_a.owner, team_a.org_id, "owner")
    keys_before = count_rows(admin_engine, "api_keys", org_id=team_a.org_id)
    members_before = count_rows(admin_engine, "org_members", org_id=team_a.org_id)
    invitations_before = count_rows(admin_engine, "org_invitations", org_id=team_a.org_id)
    viewer = team_a.member_ids["viewer"]
    attempts = [
        ("POST", f"{org}/api-keys", {"name": "more", "role": "owner"}),
        ("GET", f"{org}/api-keys", None),
        ("GET", f"{org}/api-keys/{key_id}", None),
        ("DELETE", f"{org}/api-keys/{key_id}", None),
        ("POST", f"{org}/api-keys/revoke-all", None),
        ("POST", f"{org}/invitations", {"email": "someone@example.test", "role": "owner"}),
        ("GET", f"{org}/invitations", None),
        ("PATCH", f"{org}/members/{viewer}", {"role": "owner"}),
        ("DELETE", f"{org}/members/{viewer}", None),
    ]
    for method, path, body in attempts:
        # When an owner key tries to manage keys or members
        answer = key.call(method, path, json=body)
        # Then it is refused, saying why, and nothing changed
        assert answer.status_code == 403, (method, path, answer.json)
        assert answer.content_type == "application/problem+json"
        assert answer.json["detail"] == PEOPLE_ONLY
    assert count_rows(admin_engine, "api_keys", org_id=team_a.org_id) == keys_before
    assert count_rows(admin_engine, "org_members", org_id=team_a.org_id) == members_before
    assert count_rows(admin_engine, "org_invitations", org_id=team_a.org_id) == invitations_before
    assert key.get(org).status_code == 200  # not revoked either
    roles = {m["role"] for m in team_a.owner.get(f"{org}/members").json["items"]}
    assert roles == {"owner", "operator", "viewer"}
    # Reading the members is not managing them
    assert key.get(f"{org}/members").status_code == 200


def test_an_owner_revokes_every_key_at_once(
    team_a: Team, team_b: Team, admin_engine: Engine
) -> None:
    org = f"/orgs/{team_a.org_id}"
    first, first_id = _key(team_a.owner, team_a.org_id, "operator", "one")
    second, second_id = _key(team_a.owner, team_a.org_id, "viewer", "two")
    already = team_a.owner.call("DELETE", f"{org}/api-keys/{second_id}")
    assert already.status_code == 200
    other_org, _ = _key(team_b.owner, team_b.org_id, "viewer")
    assert first.get(org).status_code == 200
    # When the owner revokes all keys
    answer = team_a.owner.post(f"{org}/api-keys/revoke-all")
    # Then every live key of the org is revoked (the one already revoked is not listed), and
    # stops working; another org's key is untouched
    assert answer.status_code == 200, answer.json
    assert [k["id"] for k in answer.json["revoked"]] == [first_id]
    assert all(k["revoked_at"] for k in answer.json["revoked"])
    assert first.get(org).status_code == 401
    assert second.get(org).status_code == 401
    assert other_org.get(f"/orgs/{team_b.org_id}").status_code == 200
    # And it is audited: one entry for the act, one per key revoked, by the owner
    [act] = _audit(admin_engine, team_a.org_id, "api_key.revoke_all")
    assert (act.actor_id, act.after) == (team_a.owner.user_id, {"revoked": [first_id]})
    revocations = _audit(admin_engine, team_a.org_id, "api_key.revoke")
    assert [str(r.resource_id) for r in revocations] == [second_id, first_id]
    assert revocations[1].after["reason"] == "all keys of the organisation were revoked"
    # Again: nothing left to revoke, still audited
    again = team_a.owner.post(f"{org}/api-keys/revoke-all")
    assert (again.status_code, again.json) == (200, {"revoked": []})
    assert len(_audit(admin_engine, team_a.org_id, "api_key.revoke_all")) == 2
    # Only owners may
    assert team_a.operator.post(f"{org}/api-keys/revoke-all").status_code == 403


def test_every_key_shows_who_created_it(client: FlaskClient, team_a: Team) -> None:
    org = f"/orgs/{team_a.org_id}"
    email = team_a.owner.get("/me").json["user"]["email"]
    creator = {"user_id": str(team_a.owner.user_id), "email": email}
    made = team_a.owner.post(f"{org}/api-keys", json={"name": "ci", "role": "viewer"})
    assert made.status_code == 201
    assert made.json["created_by"] == creator
    listed = team_a.owner.get(f"{org}/api-keys").json["items"]
    assert [(k["id"], k["created_by"]) for k in listed] == [(made.json["id"], creator)]
    shown = team_a.owner.get(f"{org}/api-keys/{made.json['id']}")
    assert shown.status_code == 200 and shown.json["created_by"] == creator
    assert "key" not in shown.json and "secret_hash" not in shown.json
    revoked = team_a.owner.call("DELETE", f"{org}/api-keys/{made.json['id']}")
    assert revoked.json["created_by"] == creator
    assert team_a.owner.get(f"{org}/api-keys/{uuid.uuid4()}").status_code == 404
