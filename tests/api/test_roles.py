"""The role matrix: every org endpoint x {owner, operator, viewer, member of another org,
anonymous, removed member}, each on fresh objects, against one table of expectations."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine

from api.security import SCOPE_ATTR
from fusion.auth.access import RANK
from fusion.auth.models import Role
from tests.api.conftest import Caller, Team, join, signup
from tests.api.kit import ENDPOINTS, ORG, make_kit


def _removed_member(client: FlaskClient, team: Team) -> Caller:
    person = signup(client)
    member_id = join(team.owner, team.org_id, person, "operator")
    assert person.get(f"/orgs/{team.org_id}").status_code == 200
    removed = team.owner.call("DELETE", f"/orgs/{team.org_id}/members/{member_id}")
    assert removed.status_code == 204
    return person


def test_role_matrix(client: FlaskClient, team_a: Team, team_b: Team, admin_engine: Engine) -> None:
    # Given people of every standing towards org A (the removed one still holds a valid token)
    callers = {
        "owner": team_a.owner,
        "operator": team_a.operator,
        "viewer": team_a.viewer,
        "other org": team_b.owner,
        "anonymous": Caller(client, {}),
        "removed": _removed_member(client, team_a),
    }
    mismatches = []
    for endpoint in ENDPOINTS:
        for name, caller in callers.items():
            # When each calls the endpoint on objects made just for this call
            kit = make_kit(admin_engine, team_a.org_id, team_a.operator.user_id, bulk=True)
            response = caller.call(endpoint.method, endpoint.url(kit), json=endpoint.json(kit))
            status = response.status_code
            response.close()
            # Then the answer is exactly what the table says
            if name == "anonymous":
                expected = 401
            elif name in ("other org", "removed"):
                expected = 404
            elif RANK[Role(name)] < RANK[Role(endpoint.role)]:
                expected = 403
            else:
                expected = endpoint.expected_success(name)
            if status != expected:
                detail = response.get_json(silent=True)
                mismatches.append(
                    f"{endpoint.method} {endpoint.path} as {name}: {status} != {expected} {detail}"
                )
    assert not mismatches, "\n".join(mismatches)


# What no API key may do, whatever its role: manage members, invitations or keys, or decide
# an approval.
PEOPLE_ONLY = {
    ("GET", ORG + "/api-keys"),
    ("POST", ORG + "/api-keys"),
    ("GET", ORG + "/api-keys/{key_id}"),
    ("DELETE", ORG + "/api-keys/{key_id}"),
    ("POST", ORG + "/api-keys/revoke-all"),
    ("GET", ORG + "/invitations"),
    ("POST", ORG + "/invitations"),
    ("DELETE", ORG + "/invitations/{invitation_id}"),
    ("PATCH", ORG + "/members/{member_id}"),
    ("DELETE", ORG + "/members/{member_id}"),
    ("POST", ORG + "/approvals/{approval_id}/decision"),
}


def test_an_owner_key_may_do_what_its_owner_may_but_manage_people_keys_or_approvals(
    client: FlaskClient, team_a: Team, admin_engine: Engine
) -> None:
    # Given an owner key made by the owner
    made = team_a.owner.post(
        f"/orgs/{team_a.org_id}/api-keys", json={"name": "ci", "role": "owner"}
    )
    key = Caller(client, {"X-API-Key": made.json["key"]})
    mismatches = []
    for endpoint in ENDPOINTS:
        # When it calls each endpoint on objects made just for this call
        kit = make_kit(admin_engine, team_a.org_id, team_a.operator.user_id, bulk=True)
        response = key.call(endpoint.method, endpoint.url(kit), json=endpoint.json(kit))
        status = response.status_code
        response.close()
        # Then it gets the owner's answer, except 403 where only a person may act
        people_only = (endpoint.method, endpoint.path) in PEOPLE_ONLY
        expected = 403 if people_only else endpoint.expected_success("owner")
        if status != expected:
            detail = response.get_json(silent=True)
            mismatches.append(f"{endpoint.method} {endpoint.path}: {status} != {expected} {detail}")
    assert not mismatches, "\n".join(mismatches)


def test_account_endpoints(client: FlaskClient, team_a: Team) -> None:
    assert client.get("/me").status_code == 401
    assert client.post("/orgs", json={"name": "X"}).status_code == 401
    me = team_a.viewer.get("/me")
    assert me.status_code == 200
    assert [o["role"] for o in me.json["orgs"]] == ["viewer"]


def test_every_route_declares_who_may_call_it(app: Flask) -> None:
    # A route without a declared scope would be open by accident (default deny).
    undeclared = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("static",) or rule.endpoint.startswith("api-docs."):
            continue
        view = app.view_functions[rule.endpoint]
        view_class = getattr(view, "view_class", None)
        handlers = (
            [
                getattr(view_class, m.lower())
                for m in rule.methods or ()
                if hasattr(view_class, m.lower())
            ]
            if view_class
            else [view]
        )
        for handler in handlers:
            if not _declared(handler):
                undeclared.append(f"{rule.rule} {handler.__name__}")
    assert not undeclared
    # And every org route is in the matrix above
    matrix = {(e.method, e.path.replace("{", "<").replace("}", ">")) for e in ENDPOINTS}
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/orgs/<uuid:org_id>"):
            for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
                path = _normalise(rule.rule)
                if not any(m == method and _normalise(p) == path for m, p in matrix):
                    missing.append(f"{method} {rule.rule}")
    assert not missing


def _normalise(path: str) -> str:
    import re

    return re.sub(r"<[^>]+>", "<>", path)


def _declared(handler: object) -> bool:
    seen = handler
    for _ in range(20):
        if getattr(seen, SCOPE_ATTR, None):
            return True
        seen = getattr(seen, "__wrapped__", None)
        if seen is None:
            return False
    return False
