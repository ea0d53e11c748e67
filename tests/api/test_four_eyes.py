"""Four eyes compare people, not credentials: an approval records the person who asked (in
person, or the creator of the key that asked, with the key), only a person decides (API keys
never do), and nobody decides what they asked for, directly or through a key."""

from __future__ import annotations

import uuid

from flask.testing import FlaskClient
from sqlalchemy import Engine

from fusion.approvals.service import FOUR_EYES, KEYS_NEVER_DECIDE
from tests.api.conftest import Caller, Team, count_rows, join, signup
from tests.api.kit import make_kit


def _key(creator: Caller, org: uuid.UUID, role: str) -> tuple[Caller, str]:
    made = creator.post(f"/orgs/{org}/api-keys", json={"name": "ci", "role": role})
    assert made.status_code == 201, made.json
    return Caller(creator.client, {"X-API-Key": made.json["key"]}), str(made.json["id"])


def _second_owner(client: FlaskClient, team: Team) -> Caller:
    person = signup(client)
    join(team.owner, team.org_id, person, "owner")
    return person


def _require_approval_to_publish(team: Team) -> None:
    policy = team.owner.post(
        f"/orgs/{team.org_id}/approval-policies",
        json={"resource_type": "listing", "action": "publish"},
    )
    assert policy.status_code == 201, policy.json


def test_an_owner_cannot_approve_their_own_request_through_their_key(
    client: FlaskClient, team_a: Team, admin_engine: Engine
) -> None:
    org = f"/orgs/{team_a.org_id}"
    kit = make_kit(admin_engine, team_a.org_id, None)
    _require_approval_to_publish(team_a)
    other_owner = _second_owner(client, team_a)
    key, key_id = _key(team_a.owner, team_a.org_id, "owner")
    other_key, _ = _key(other_owner, team_a.org_id, "owner")
    # Given the owner asks, through their own key, to publish
    asked = key.post(f"{org}/listings/{kit['listing_id']}/publish")
    assert asked.status_code == 202 and asked.json["kind"] == "approval", asked.json
    approval = asked.json["approval"]
    # Then the approval names the owner as the person who asked, and the key
    assert (approval["requested_by"], approval["requested_by_key_id"]) == (
        str(team_a.owner.user_id),
        key_id,
    )
    decision = f"{org}/approvals/{approval['id']}/decision"
    jobs_before = count_rows(admin_engine, "jobs", org_id=team_a.org_id)
    # When the same key, the owner in person, or another owner's key tries to approve it
    by_key = key.post(decision, json={"decision": "approve"})
    in_person = team_a.owner.post(decision, json={"decision": "approve"})
    by_other_key = other_key.post(decision, json={"decision": "approve"})
    # Then each is refused, saying why, and nothing is released
    assert (by_key.status_code, by_key.json["detail"]) == (403, KEYS_NEVER_DECIDE)
    assert (in_person.status_code, in_person.json["detail"]) == (403, FOUR_EYES)
    assert (by_other_key.status_code, by_other_key.json["detail"]) == (403, KEYS_NEVER_DECIDE)
    shown = team_a.viewer.get(f"{org}/approvals/{approval['id']}").json
    assert (shown["status"], shown["job_id"]) == ("pending", None)
    assert count_rows(admin_engine, "jobs", org_id=team_a.org_id) == jobs_before
    # And another owner, in person, may
    approved = other_owner.post(decision, json={"decision": "approve"})
    assert approved.status_code == 200, approved.json
    assert (approved.json["status"], approved.json["decided_by"]) == (
        "approved",
        str(other_owner.user_id),
    )


def test_a_request_made_in_person_cannot_be_decided_by_the_requesters_key(
    team_a: Team, admin_engine: Engine
) -> None:
    org = f"/orgs/{team_a.org_id}"
    kit = make_kit(admin_engine, team_a.org_id, None)
    # Given an operator asks, in person, to delete a product
    asked = team_a.operator.call("DELETE", f"{org}/products/{kit['product_id']}")
    assert asked.status_code == 202, asked.json
    approval = asked.json["approval"]
    assert (approval["requested_by"], approval["requested_by_key_id"]) == (
        str(team_a.operator.user_id),
        None,
    )
    # When an owner key (of the org's owner, not the requester) tries to decide
    key, _ = _key(team_a.owner, team_a.org_id, "owner")
    answer = key.post(f"{org}/approvals/{approval['id']}/decision", json={"decision": "reject"})
    # Then it is refused: keys never decide, approving nor rejecting
    assert (answer.status_code, answer.json["detail"]) == (403, KEYS_NEVER_DECIDE)
    assert team_a.viewer.get(f"{org}/approvals/{approval['id']}").json["status"] == "pending"


def test_an_operators_key_asks_on_the_operators_behalf(
    client: FlaskClient, team_a: Team, admin_engine: Engine
) -> None:
    org = f"/orgs/{team_a.org_id}"
    kit = make_kit(admin_engine, team_a.org_id, None)
    # Given an operator who was an owner when they made an owner key
    operator = _second_owner(client, team_a)
    key, key_id = _key(operator, team_a.org_id, "owner")
    members = team_a.owner.get(f"{org}/members").json["items"]
    [member] = [m for m in members if m["user_id"] == str(operator.user_id)]
    team_a.owner.call("PATCH", f"{org}/members/{member['id']}", json={"role": "operator"})
    # When the key deletes a product, it acts as an operator: the delete asks for approval
    asked = key.call("DELETE", f"{org}/products/{kit['product_id']}")
    assert asked.status_code == 202 and asked.json["kind"] == "approval", asked.json
    approval = asked.json["approval"]
    assert (approval["requested_by"], approval["requested_by_key_id"]) == (
        str(operator.user_id),
        key_id,
    )
    # And the person behind the key, made owner again, still cannot approve it
    team_a.owner.call("PATCH", f"{org}/members/{member['id']}", json={"role": "owner"})
    own = operator.post(f"{org}/approvals/{approval['id']}/decision", json={"decision": "approve"})
    assert (own.status_code, own.json["detail"]) == (403, FOUR_EYES)
    other = team_a.owner.post(
        f"{org}/approvals/{approval['id']}/decision", json={"decision": "approve"}
    )
    assert other.status_code == 200, other.json
