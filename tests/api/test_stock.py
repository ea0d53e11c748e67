"""Stock through the HTTP API: a variant's ledger, manual adjustments, the absolute set of
the variant PATCH with If-Match, and per-channel stock rules on stores and listings."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from tests.api.conftest import Caller, Team, count_rows


def _variant(team: Team, quantity: int = 10, sku: str | None = None) -> dict[str, Any]:
    product = team.operator.post(f"/orgs/{team.org_id}/products", json={"title": "Mug"})
    assert product.status_code == 201, product.json
    sku = sku or f"MUG-{uuid.uuid4().hex[:6]}"
    variant = team.operator.post(
        f"/orgs/{team.org_id}/products/{product.json['id']}/variants",
        json={"sku": sku, "price": "9.50", "available_quantity": quantity},
    )
    assert variant.status_code == 201, variant.json
    return dict(variant.json)


def _stock(caller: Caller, team: Team, variant_id: str, **query: Any) -> Any:
    return caller.get(f"/orgs/{team.org_id}/variants/{variant_id}/stock", query_string=query)


def _adjust(caller: Caller, team: Team, variant_id: str, body: Any) -> Any:
    return caller.post(f"/orgs/{team.org_id}/variants/{variant_id}/stock-adjustments", json=body)


def _patch(caller: Caller, team: Team, variant_id: str, body: Any, **headers: str) -> Any:
    return caller.call(
        "PATCH", f"/orgs/{team.org_id}/variants/{variant_id}", json=body, headers=headers
    )


def _published_on_a_store(admin: Engine, team: Team, variant: dict[str, Any]) -> str:
    """A Shopify store with a published listing of the variant's product: its id."""
    store = team.owner.post(
        f"/orgs/{team.org_id}/stores",
        json={
            "platform": "shopify",
            "name": "Shop",
            "external_id": f"shop-{uuid.uuid4().hex[:8]}",
            "base_url": "http://127.0.0.1:9",
            "credentials": {"access_token": "t"},
        },
    )
    assert store.status_code == 201, store.json
    with admin.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO listings (id, org_id, product_id, store_id, status, external_id) "
                "VALUES (:id, :o, :p, :s, 'published', 'gid://shopify/Product/1')"
            ),
            {"id": uuid.uuid4(), "o": team.org_id, "p": variant["product_id"],
             "s": store.json["id"]},
        )  # fmt: skip
    return str(store.json["id"])


def _pushes(admin: Engine, store_id: str) -> list[list[str]]:
    with admin.connect() as conn:
        return [
            list(p.get("skus") or [])
            for p in conn.execute(
                text(
                    "SELECT payload FROM jobs WHERE store_id = :s "
                    "AND job_type = 'real_time_inventory'"
                ),
                {"s": store_id},
            ).scalars()
        ]


def test_a_new_variants_opening_stock_is_the_first_movement_of_its_ledger(
    team_a: Team,
) -> None:
    # Given a variant created with 10 units
    variant = _variant(team_a, 10)
    # When a viewer reads its stock
    stock = _stock(team_a.viewer, team_a, variant["id"])
    # Then it holds 10, explained by one manual set by the operator who created it
    assert stock.status_code == 200, stock.json
    assert stock.json["available_quantity"] == 10
    assert stock.headers["ETag"] == stock.json["etag"]
    [movement] = stock.json["items"]
    assert (movement["kind"], movement["delta"], movement["on_hand_after"]) == (
        "manual_set",
        10,
        10,
    )
    assert movement["actor"] == f"user:{team_a.operator.user_id}"
    assert movement["sku"] == variant["sku"]
    assert stock.json["next_cursor"] is None


def test_adjustments_are_movements_newest_first_paginated_and_audited(
    team_a: Team, admin_engine: Engine
) -> None:
    variant = _variant(team_a, 10)
    # When the operator adjusts three times
    for delta, reason in ((5, "returned to shelf"), (-2, "damaged"), (1, "recount")):
        made = _adjust(team_a.operator, team_a, variant["id"], {"delta": delta, "reason": reason})
        assert made.status_code == 201, made.json
    # Then each answer carries the movement and the new figure
    assert made.json["available_quantity"] == 14
    assert made.json["movement"]["kind"] == "manual_adjustment"
    assert (made.json["movement"]["delta"], made.json["movement"]["reason"]) == (1, "recount")
    assert made.headers["ETag"] == made.json["etag"]
    # And the ledger lists them newest first, two by two
    first = _stock(team_a.viewer, team_a, variant["id"], limit=2)
    assert [m["delta"] for m in first.json["items"]] == [1, -2]
    assert [m["on_hand_after"] for m in first.json["items"]] == [14, 13]
    rest = _stock(team_a.viewer, team_a, variant["id"], limit=2, cursor=first.json["next_cursor"])
    assert [m["delta"] for m in rest.json["items"]] == [5, 10]
    assert rest.json["next_cursor"] is None
    # And each adjustment is in the audit log
    audit = team_a.owner.get(
        f"/orgs/{team_a.org_id}/audit", query_string={"action": "stock.adjust"}
    )
    assert [e["after"]["delta"] for e in audit.json["items"]] == [1, -2, 5]
    assert audit.json["items"][0]["before"] == {"available_quantity": 13}


def test_an_adjustment_fans_out_at_once_to_every_store_listing_the_sku(
    team_a: Team, admin_engine: Engine
) -> None:
    variant = _variant(team_a, 10)
    store_id = _published_on_a_store(admin_engine, team_a, variant)
    made = _adjust(team_a.operator, team_a, variant["id"], {"delta": -3, "reason": "damaged"})
    assert made.status_code == 201, made.json
    assert _pushes(admin_engine, store_id) == [[variant["sku"]]]


def test_going_below_zero_is_a_409_naming_the_sku_and_figure_and_changes_nothing(
    team_a: Team,
) -> None:
    variant = _variant(team_a, 3)
    refused = _adjust(team_a.operator, team_a, variant["id"], {"delta": -4, "reason": "lost"})
    assert refused.status_code == 409
    assert refused.mimetype == "application/problem+json"
    assert (refused.json["sku"], refused.json["available_quantity"]) == (variant["sku"], 3)
    assert variant["sku"] in refused.json["detail"] and "3" in refused.json["detail"]
    stock = _stock(team_a.viewer, team_a, variant["id"])
    assert (stock.json["available_quantity"], len(stock.json["items"])) == (3, 1)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"delta": "5", "reason": "r"}, "delta"),
        ({"delta": 2.5, "reason": "r"}, "delta"),
        ({"delta": 0, "reason": "r"}, "delta"),
        ({"delta": 1_000_001, "reason": "r"}, "delta"),
        ({"delta": -1_000_001, "reason": "r"}, "delta"),
        ({"delta": True, "reason": "r"}, "delta"),
        ({"reason": "r"}, "delta"),
        ({"delta": 1}, "reason"),
        ({"delta": 1, "reason": "   "}, "reason"),
        ({"delta": 1, "reason": "r", "kind": "return"}, "kind"),
    ],
)
def test_a_bad_adjustment_is_a_422_naming_the_field_and_changes_nothing(
    team_a: Team, body: dict[str, Any], field: str
) -> None:
    variant = _variant(team_a, 3)
    refused = _adjust(team_a.operator, team_a, variant["id"], body)
    assert refused.status_code == 422, refused.json
    assert list(refused.json["errors"]) == [field]
    assert len(_stock(team_a.viewer, team_a, variant["id"]).json["items"]) == 1


def test_a_viewer_may_read_stock_but_not_adjust_it(team_a: Team) -> None:
    variant = _variant(team_a, 3)
    refused = _adjust(team_a.viewer, team_a, variant["id"], {"delta": 1, "reason": "r"})
    assert refused.status_code == 403
    assert (
        _adjust(team_a.owner, team_a, variant["id"], {"delta": 1, "reason": "r"}).status_code == 201
    )
    assert _stock(team_a.viewer, team_a, variant["id"]).json["available_quantity"] == 4


def test_the_patch_is_an_absolute_set_recorded_with_its_delta_and_fanned_out(
    team_a: Team, admin_engine: Engine
) -> None:
    variant = _variant(team_a, 10)
    store_id = _published_on_a_store(admin_engine, team_a, variant)
    # When the quantity is set without If-Match (as the quickstart does)
    changed = _patch(team_a.operator, team_a, variant["id"], {"available_quantity": 4})
    # Then it is 4, a manual set of -6, pushed at once
    assert changed.status_code == 200, changed.json
    assert changed.json["available_quantity"] == 4
    latest = _stock(team_a.viewer, team_a, variant["id"]).json["items"][0]
    assert (latest["kind"], latest["delta"], latest["on_hand_after"]) == ("manual_set", -6, 4)
    assert _pushes(admin_engine, store_id) == [[variant["sku"]]]
    # And a PATCH of other fields only writes no movement
    renamed = _patch(team_a.operator, team_a, variant["id"], {"title": "Large"})
    assert renamed.status_code == 200
    assert len(_stock(team_a.viewer, team_a, variant["id"]).json["items"]) == 2


def test_a_patch_with_a_stale_if_match_is_refused_with_the_current_figure(
    team_a: Team, admin_engine: Engine
) -> None:
    # Given a client that read the variant and its ETag
    variant = _variant(team_a, 10)
    read = team_a.viewer.get(f"/orgs/{team_a.org_id}/variants/{variant['id']}")
    etag = read.headers["ETag"]
    assert etag.startswith('W/"')
    # When an order (here an adjustment) changes the stock before its PATCH arrives
    _adjust(team_a.operator, team_a, variant["id"], {"delta": -1, "reason": "sold in shop"})
    stale = _patch(
        team_a.operator, team_a, variant["id"], {"available_quantity": 20}, **{"If-Match": etag}
    )
    # Then the PATCH is refused with the current figure and ETag, and nothing changes
    assert stale.status_code == 409, stale.json
    assert stale.mimetype == "application/problem+json"
    assert "precondition failed" in stale.json["detail"].lower()
    assert stale.json["available_quantity"] == 9
    assert stale.json["etag"] == stale.headers["ETag"] != etag
    stock = _stock(team_a.viewer, team_a, variant["id"]).json
    assert (stock["available_quantity"], len(stock["items"])) == (9, 2)
    # And with the ETag it now holds, the same PATCH goes through
    fresh = _patch(
        team_a.operator,
        team_a,
        variant["id"],
        {"available_quantity": 20},
        **{"If-Match": stale.json["etag"]},
    )
    assert fresh.status_code == 200, fresh.json
    assert fresh.json["available_quantity"] == 20
    assert fresh.headers["ETag"] not in (etag, stale.json["etag"])
    # And the variant's GET shows the new ETag
    again = team_a.viewer.get(f"/orgs/{team_a.org_id}/variants/{variant['id']}")
    assert again.headers["ETag"] == fresh.headers["ETag"]


def _store_body(**extra: Any) -> dict[str, Any]:
    return {
        "platform": "shopify",
        "name": "Shop",
        "external_id": f"shop-{uuid.uuid4().hex[:8]}",
        "base_url": "http://127.0.0.1:9",
        "credentials": {"access_token": "t"},
        **extra,
    }


@pytest.mark.parametrize(
    ("rules", "key"),
    [
        ({"buffer": -1}, "buffer"),
        ({"percent_shown": 101}, "percent_shown"),
        ({"max_shown": 1.5}, "max_shown"),
        ({"safety_stock": 3}, "safety_stock"),
    ],
)
def test_bad_stock_rules_are_a_422_naming_the_key_on_stores_and_listings(
    team_a: Team, admin_engine: Engine, rules: dict[str, Any], key: str
) -> None:
    org = team_a.org_id
    posted = team_a.owner.post(f"/orgs/{org}/stores", json=_store_body(stock_rules=rules))
    assert posted.status_code == 422, posted.json
    assert list(posted.json["errors"]["stock_rules"]) == [key]
    assert count_rows(admin_engine, "stores", org_id=org) == 0
    store = team_a.owner.post(f"/orgs/{org}/stores", json=_store_body())
    patched = team_a.operator.call(
        "PATCH", f"/orgs/{org}/stores/{store.json['id']}", json={"stock_rules": rules}
    )
    assert patched.status_code == 422
    assert list(patched.json["errors"]["stock_rules"]) == [key]
    variant = _variant(team_a, 5)
    listing = team_a.operator.post(
        f"/orgs/{org}/listings",
        json={"product_id": variant["product_id"], "store_id": store.json["id"]},
    )
    refused = team_a.operator.call(
        "PATCH", f"/orgs/{org}/listings/{listing.json['id']}", json={"stock_rules": rules}
    )
    assert refused.status_code == 422
    assert list(refused.json["errors"]["stock_rules"]) == [key]


def test_store_and_listing_rules_decide_what_the_channel_is_shown(
    client: FlaskClient, team_a: Team
) -> None:
    org = team_a.org_id
    # Given a store holding 3 back and a variant of 20 listed on it
    store = team_a.owner.post(f"/orgs/{org}/stores", json=_store_body(stock_rules={"buffer": 3}))
    assert store.status_code == 201, store.json
    assert store.json["stock_rules"] == {"buffer": 3}
    variant = _variant(team_a, 20)
    listing = team_a.operator.post(
        f"/orgs/{org}/listings",
        json={"product_id": variant["product_id"], "store_id": store.json["id"]},
    ).json
    stock = team_a.viewer.get(f"/orgs/{org}/listings/{listing['id']}/stock")
    assert stock.status_code == 200, stock.json
    [row] = stock.json["items"]
    assert (row["sku"], row["available"], row["shown"]) == (variant["sku"], 20, 17)
    assert (row["last_pushed"], row["remote"], row["drift"]) == (None, None, False)
    # When the listing shows half, at most 5, keeping the store's buffer
    patched = team_a.operator.call(
        "PATCH",
        f"/orgs/{org}/listings/{listing['id']}",
        json={"stock_rules": {"percent_shown": 50, "max_shown": 5}},
    )
    assert patched.status_code == 200, patched.json
    assert patched.json["stock_rules"] == {"percent_shown": 50, "max_shown": 5}
    stock = team_a.viewer.get(f"/orgs/{org}/listings/{listing['id']}/stock").json
    assert stock["items"][0]["shown"] == 5  # (20 - 3) * 50 % = 8, capped at 5
    assert stock["store_stock_rules"] == {"buffer": 3}
    # And a store rule change is seen by the listing too
    team_a.operator.call(
        "PATCH", f"/orgs/{org}/stores/{store.json['id']}", json={"stock_rules": {"buffer": 15}}
    )
    stock = team_a.viewer.get(f"/orgs/{org}/listings/{listing['id']}/stock").json
    assert stock["items"][0]["shown"] == 2  # (20 - 15) * 50 % = 2.5 -> 2
