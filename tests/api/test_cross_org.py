"""Cross-org access: org A's owner naming org B's objects (in the path, the query or the body)
gets the same 404 as for an id that does not exist, and nothing changes anywhere."""

from __future__ import annotations

import uuid

from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from fusion.models import TENANT_TABLES
from tests.api.conftest import Team
from tests.api.kit import ENDPOINTS, make_kit

ID_KEYS = (
    "member_id",
    "key_id",
    "store_id",
    "product_id",
    "variant_id",
    "listing_id",
    "published_listing_id",
    "job_id",
    "failed_job_id",
    "order_id",
    "approval_id",
    "policy_id",
)


def _fingerprint(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {
            table: conn.execute(
                text(
                    f"SELECT coalesce(md5(string_agg(t::text, ',' ORDER BY t.id)), '') "
                    f"FROM {table} t"
                )
            ).scalar_one()
            for table in (*TENANT_TABLES, "orgs", "users")
        }


def test_other_orgs_ids_in_paths_are_not_found(
    client: FlaskClient, team_a: Team, team_b: Team, admin_engine: Engine
) -> None:
    # Given objects of every kind in both orgs
    mine = make_kit(admin_engine, team_a.org_id, team_a.operator.user_id, bulk=True)
    theirs = make_kit(admin_engine, team_b.org_id, team_b.operator.user_id, bulk=True)
    before = _fingerprint(admin_engine)
    checked = 0
    for endpoint in ENDPOINTS:
        if not any("{" + key + "}" in endpoint.path for key in ID_KEYS):
            continue
        # When A's owner names B's object under A's org, and a random id likewise
        crossed = {**mine, **{k: theirs[k] for k in ID_KEYS}}
        unknown = {**mine, **{k: uuid.uuid4() for k in ID_KEYS}}
        answer = team_a.owner.call(endpoint.method, endpoint.url(crossed), json=endpoint.json(mine))
        control = team_a.owner.call(
            endpoint.method, endpoint.url(unknown), json=endpoint.json(mine)
        )
        # Then both are the same 404, with no trace of B's object
        assert answer.status_code == 404, (endpoint, answer.json)
        assert control.status_code == 404
        body = answer.get_data(as_text=True)
        for key in ID_KEYS:
            body = body.replace(str(theirs[key]), "<id>")
        reference = control.get_data(as_text=True)
        for key in ID_KEYS:
            reference = reference.replace(str(unknown[key]), "<id>")
        assert body == reference
        checked += 1
        # And under B's org path, A's owner is not a member: 404 as well
        in_b = team_a.owner.call(endpoint.method, endpoint.url(theirs), json=endpoint.json(theirs))
        assert in_b.status_code == 404
    assert checked >= 25
    # And nothing changed in any table
    assert _fingerprint(admin_engine) == before


def test_other_orgs_ids_in_bodies_and_filters_are_not_found(
    client: FlaskClient, team_a: Team, team_b: Team, admin_engine: Engine
) -> None:
    mine = make_kit(admin_engine, team_a.org_id, team_a.operator.user_id)
    theirs = make_kit(admin_engine, team_b.org_id, team_b.operator.user_id)
    before = _fingerprint(admin_engine)
    org = f"/orgs/{team_a.org_id}"
    owner = team_a.owner
    # Bodies: B's store for a job, B's product or store for a listing
    answers = [
        owner.post(
            f"{org}/jobs", json={"job_type": "list_products", "store_id": str(theirs["store_id"])}
        ),
        owner.post(
            f"{org}/listings",
            json={"product_id": str(theirs["product_id"]), "store_id": str(mine["store_id"])},
        ),
        owner.post(
            f"{org}/listings",
            json={"product_id": str(mine["product_id"]), "store_id": str(theirs["store_id"])},
        ),
        # Query filters naming B's objects
        owner.get(f"{org}/jobs?store_id={theirs['store_id']}"),
        owner.get(f"{org}/listings?product_id={theirs['product_id']}"),
        owner.get(f"{org}/listings?store_id={theirs['store_id']}"),
        owner.get(f"{org}/orders?store_id={theirs['store_id']}"),
    ]
    assert [a.status_code for a in answers] == [404] * len(answers)
    # Unfiltered lists show only A's rows
    jobs = owner.get(f"{org}/jobs").json["items"]
    assert {j["id"] for j in jobs} == {str(mine["job_id"]), str(mine["failed_job_id"])}
    assert _fingerprint(admin_engine) == before
