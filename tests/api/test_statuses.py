"""Product and store statuses through the API: the enum's values in and out, anything else a
422 naming the field, with nothing changed."""

from __future__ import annotations

import uuid

from sqlalchemy import Engine, text

from tests.api.conftest import Team

PROBLEM = "application/problem+json"
PRODUCT_CHOICES = {"status": ["Must be one of: active, draft, archived."]}
# A filter may also ask for the products being deleted (the hub's own status).
FILTER_CHOICES = {"status": ["Must be one of: active, draft, archived, deleting."]}
STORE_CHOICES = {"status": ["Must be one of: active, paused, disconnected."]}
# A filter may also ask for the stores waiting for new credentials (the hub's own status).
STORE_FILTER_CHOICES = {"status": ["Must be one of: active, paused, disconnected, needs_reauth."]}


def _count(admin_engine: Engine, table: str, org: uuid.UUID) -> int:
    with admin_engine.connect() as conn:
        return int(
            conn.execute(
                text(f"SELECT count(*) FROM {table} WHERE org_id = :o"), {"o": org}
            ).scalar_one()
        )


def test_a_product_status_is_one_of_the_enums_values(team_a: Team, admin_engine: Engine) -> None:
    path = f"/orgs/{team_a.org_id}/products"
    # When a product is created with an unknown status
    bad = team_a.operator.post(path, json={"title": "Tee", "status": "bogus"})
    # Then it is a 422 naming the field, and no product exists
    assert (bad.status_code, bad.content_type) == (422, PROBLEM)
    assert bad.json["errors"] == PRODUCT_CHOICES
    assert _count(admin_engine, "products", team_a.org_id) == 0

    # When one is created as a draft, then it reads back as one and the filter finds it
    made = team_a.operator.post(path, json={"title": "Tee", "status": "draft"})
    assert (made.status_code, made.json["status"]) == (201, "draft"), made.json
    drafts = team_a.viewer.get(f"{path}?status=draft").json["items"]
    assert [p["id"] for p in drafts] == [made.json["id"]]
    assert team_a.viewer.get(f"{path}?status=active").json["items"] == []

    # An unknown status in the filter or in a change is a 422 too, and the product stays a draft
    query = team_a.viewer.get(f"{path}?status=bogus")
    assert (query.status_code, query.json["errors"]) == (422, FILTER_CHOICES)
    change = team_a.operator.call("PATCH", f"{path}/{made.json['id']}", json={"status": "gone"})
    assert (change.status_code, change.json["errors"]) == (422, PRODUCT_CHOICES)
    assert team_a.viewer.get(f"{path}/{made.json['id']}").json["status"] == "draft"


def test_a_store_status_is_one_of_the_enums_values(team_a: Team, admin_engine: Engine) -> None:
    # Given a connected store (active by default)
    store_id = uuid.uuid4()
    with admin_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO stores (id, org_id, platform, name, external_id) "
                "VALUES (:id, :org, 'shopify', 'S', :ext)"
            ),
            {"id": store_id, "org": team_a.org_id, "ext": store_id.hex},
        )
    path = f"/orgs/{team_a.org_id}/stores"
    assert team_a.viewer.get(f"{path}/{store_id}").json["status"] == "active"

    # When it is set to an unknown status, then it is a 422 naming the field and stays active
    bad = team_a.operator.call("PATCH", f"{path}/{store_id}", json={"status": "bogus"})
    assert (bad.status_code, bad.content_type) == (422, PROBLEM)
    assert bad.json["errors"] == STORE_CHOICES
    assert team_a.viewer.get(f"{path}/{store_id}").json["status"] == "active"

    # When it is paused, then it reads back paused and the filter finds it
    paused = team_a.operator.call("PATCH", f"{path}/{store_id}", json={"status": "paused"})
    assert (paused.status_code, paused.json["status"]) == (200, "paused"), paused.json
    found = team_a.viewer.get(f"{path}?status=paused").json["items"]
    assert [s["id"] for s in found] == [str(store_id)]
    query = team_a.viewer.get(f"{path}?status=bogus")
    assert (query.status_code, query.json["errors"]) == (422, STORE_FILTER_CHOICES)
