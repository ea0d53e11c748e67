"""Members join by invitation: the owner's answer never says whether an email has an account;
the invitee sees the invitation in GET /me and accepts or declines; invitations expire and
can be cancelled; nobody else can see or answer one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from tests.api.conftest import Caller, Team, signup

# What differs between two invitations by nature, not by what the hub knows of the email.
OWN = {"id", "email", "created_at", "updated_at", "expires_at"}


def _email(person: Caller) -> str:
    return str(person.get("/me").json["user"]["email"])


def _invite(team: Team, email: str, role: str = "operator") -> Any:
    return team.owner.post(f"/orgs/{team.org_id}/invitations", json={"email": email, "role": role})


def _open(person: Caller) -> list[dict[str, Any]]:
    return list(person.get("/me").json["invitations"])


def test_inviting_answers_alike_whether_or_not_the_email_has_an_account(
    client: FlaskClient, team_a: Team
) -> None:
    # Given an email with an account and one without
    registered = _email(signup(client))
    unknown = f"nobody-{uuid.uuid4().hex[:8]}@example.test"
    # When the owner invites each
    answers = [_invite(team_a, registered), _invite(team_a, unknown)]
    # Then both answers are the same but for the invitation's own id, email and times
    assert [a.status_code for a in answers] == [201, 201]
    first, second = ({k: v for k, v in a.json.items() if k not in OWN} for a in answers)
    assert first == second
    assert first["status"] == "pending" and first["answered_by"] is None
    # And the old way of adding a member by email is gone
    old = team_a.owner.post(
        f"/orgs/{team_a.org_id}/members", json={"email": registered, "role": "viewer"}
    )
    assert old.status_code == 405


def test_the_invitee_sees_the_invitation_and_accepting_makes_them_a_member(
    client: FlaskClient, team_a: Team, admin_engine: Engine
) -> None:
    person = signup(client)
    invited = _invite(team_a, _email(person).upper(), "viewer")
    assert invited.status_code == 201
    # The invitee sees it (the email matched case-insensitively), with the org's name
    [seen] = _open(person)
    assert seen["id"] == invited.json["id"] and seen["org_id"] == str(team_a.org_id)
    assert seen["org_name"] == "Alpha" and seen["role"] == "viewer"
    assert person.get(f"/orgs/{team_a.org_id}").status_code == 404
    # When they accept
    accepted = person.post(f"/me/invitations/{seen['id']}/accept")
    # Then they are a viewer of the org, and the invitation is answered
    assert accepted.status_code == 200
    assert accepted.json["role"] == "viewer" and accepted.json["user_id"] == str(person.user_id)
    me = person.get("/me").json
    assert me["invitations"] == [] and [o["role"] for o in me["orgs"]] == ["viewer"]
    assert person.get(f"/orgs/{team_a.org_id}/products").status_code == 200
    listed = team_a.owner.get(f"/orgs/{team_a.org_id}/invitations?status=accepted").json
    [answered] = [i for i in listed["items"] if i["id"] == seen["id"]]
    assert answered["answered_by"] == str(person.user_id) and answered["answered_at"]
    with admin_engine.connect() as conn:
        actions = conn.execute(
            text("SELECT action FROM audit_logs WHERE org_id = :o ORDER BY seq"),
            {"o": team_a.org_id},
        ).scalars()
        assert list(actions)[-3:] == ["invitation.create", "member.add", "invitation.accept"]
    # And it cannot be used twice
    assert person.post(f"/me/invitations/{seen['id']}/accept").status_code == 409


def test_declining_leaves_the_invitee_out(client: FlaskClient, team_a: Team) -> None:
    person = signup(client)
    invitation = _invite(team_a, _email(person)).json["id"]
    declined = person.post(f"/me/invitations/{invitation}/decline")
    assert declined.status_code == 200 and declined.json["status"] == "declined"
    assert _open(person) == []
    assert person.get(f"/orgs/{team_a.org_id}").status_code == 404
    assert person.post(f"/me/invitations/{invitation}/accept").status_code == 409


def test_nobody_else_sees_or_answers_an_invitation(client: FlaskClient, team_a: Team) -> None:
    invitee, other = signup(client), signup(client)
    invitation = _invite(team_a, _email(invitee)).json["id"]
    # Someone signed in with another email sees nothing and gets the unknown id's 404
    assert _open(other) == []
    answers = [
        other.post(f"/me/invitations/{invitation}/accept"),
        other.post(f"/me/invitations/{invitation}/decline"),
        other.post(f"/me/invitations/{uuid.uuid4()}/accept"),
    ]
    assert [a.status_code for a in answers] == [404, 404, 404]
    assert len({a.get_data() for a in answers}) == 1
    assert other.get(f"/orgs/{team_a.org_id}").status_code == 404
    # Members below owner cannot list the org's invitations (emails), and nobody anonymous
    assert team_a.operator.get(f"/orgs/{team_a.org_id}/invitations").status_code == 403
    assert client.post(f"/me/invitations/{invitation}/accept").status_code == 401
    # And the invitee still can
    assert invitee.post(f"/me/invitations/{invitation}/accept").status_code == 200


def test_an_email_that_signs_up_after_the_invitation_finds_it(
    client: FlaskClient, team_a: Team
) -> None:
    email = f"later-{uuid.uuid4().hex[:8]}@example.test"
    invitation = _invite(team_a, email, "operator").json["id"]
    person = signup(client, email)
    assert [i["id"] for i in _open(person)] == [invitation]
    accepted = person.post(f"/me/invitations/{invitation}/accept")
    assert accepted.status_code == 200 and accepted.json["role"] == "operator"


def test_an_expired_invitation_cannot_be_accepted_and_the_email_can_be_invited_again(
    client: FlaskClient, team_a: Team, admin_engine: Engine
) -> None:
    person = signup(client)
    email = _email(person)
    invitation = _invite(team_a, email).json["id"]
    assert _invite(team_a, email).status_code == 409  # one open invitation per email
    with admin_engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE org_invitations SET expires_at = now() - interval '1 minute' WHERE id = :i"
            ),
            {"i": invitation},
        )
    assert _open(person) == []
    assert person.post(f"/me/invitations/{invitation}/accept").status_code == 409
    again = _invite(team_a, email)
    assert again.status_code == 201
    assert [i["id"] for i in _open(person)] == [again.json["id"]]


def test_the_owner_cancels_an_invitation(client: FlaskClient, team_a: Team) -> None:
    person = signup(client)
    invitation = _invite(team_a, _email(person)).json["id"]
    path = f"/orgs/{team_a.org_id}/invitations/{invitation}"
    cancelled = team_a.owner.call("DELETE", path)
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    assert _open(person) == []
    assert person.post(f"/me/invitations/{invitation}/accept").status_code == 409
    assert team_a.owner.call("DELETE", path).status_code == 409


def test_invitations_expire_after_the_configured_days(team_a: Team) -> None:
    answer = _invite(team_a, f"x-{uuid.uuid4().hex[:8]}@example.test")
    expires = datetime.fromisoformat(answer.json["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=7))) < timedelta(minutes=5)
