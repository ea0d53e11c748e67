"""The catalog's category and base price, and a store's catalog rules (price rule, category
and attribute mappings), through the HTTP API: what is kept, what is audited, and 422s that
name the field."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine, text

from tests.api.conftest import Team


def _store(team: Team, **extra: Any) -> Any:
    return team.owner.post(
        f"/orgs/{team.org_id}/stores",
        json={
            "platform": "etsy",
            "name": "Etsy",
            "external_id": str(uuid.uuid4().int % 10**8),
            "base_url": "http://127.0.0.1:9",
            "credentials": {"keystring": "k", "shared_secret": "s", "access_token": "1.t"},
            **extra,
        },
    )


def _rules(team: Team, store_id: str, body: Any, caller: Any = None) -> Any:
    return (caller or team.operator).call(
        "PUT", f"/orgs/{team.org_id}/stores/{store_id}/catalog-rules", json=body
    )


def test_a_product_has_a_category_and_a_base_price_its_variants_without_one_sell_at(
    team_a: Team,
) -> None:
    org = f"/orgs/{team_a.org_id}"
    # Given a product with a category and a base price
    product = team_a.operator.post(
        f"{org}/products", json={"title": "Mug", "category": "mugs", "base_price": "12.00"}
    )
    assert product.status_code == 201, product.json
    assert (product.json["category"], product.json["base_price"]) == ("mugs", "12.00")
    # When a variant is made without a price, and another with its own
    inherits = team_a.operator.post(
        f"{org}/products/{product.json['id']}/variants", json={"sku": f"M-{uuid.uuid4().hex[:6]}"}
    )
    own = team_a.operator.post(
        f"{org}/products/{product.json['id']}/variants",
        json={"sku": f"M-{uuid.uuid4().hex[:6]}", "price": "15.50"},
    )
    # Then the first has no price of its own (null: the base price), the second keeps its own
    assert inherits.status_code == 201, inherits.json
    assert inherits.json["price"] is None
    assert own.json["price"] == "15.50"
    # And the base price cannot be unset while a variant sells at it: 422 naming it
    unset = team_a.operator.call(
        "PATCH", f"{org}/products/{product.json['id']}", json={"base_price": None}
    )
    assert unset.status_code == 422
    assert list(unset.json["errors"]) == ["base_price"]
    assert team_a.viewer.get(f"{org}/products/{product.json['id']}").json["base_price"] == "12.00"
    # But it can be changed, and the category too
    changed = team_a.operator.call(
        "PATCH",
        f"{org}/products/{product.json['id']}",
        json={"base_price": "13.00", "category": "cups"},
    )
    assert (changed.json["base_price"], changed.json["category"]) == ("13.00", "cups")


def test_a_variant_without_a_price_of_a_product_without_a_base_price_is_refused(
    team_a: Team, admin_engine: Engine
) -> None:
    org = f"/orgs/{team_a.org_id}"
    product = team_a.operator.post(f"{org}/products", json={"title": "Mug"}).json
    assert product["base_price"] is None and product["category"] == ""
    sku = f"M-{uuid.uuid4().hex[:6]}"
    refused = team_a.operator.post(f"{org}/products/{product['id']}/variants", json={"sku": sku})
    assert refused.status_code == 422
    assert list(refused.json["errors"]) == ["price"]
    assert "base_price" in refused.json["errors"]["price"][0]
    with admin_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM product_variants WHERE sku = :s"),
                            {"s": sku}).scalar() == 0  # fmt: skip
    # And a variant's price cannot be unset either
    variant = team_a.operator.post(
        f"{org}/products/{product['id']}/variants", json={"sku": sku, "price": "5.00"}
    ).json
    unset = team_a.operator.call("PATCH", f"{org}/variants/{variant['id']}", json={"price": None})
    assert unset.status_code == 422 and list(unset.json["errors"]) == ["price"]
    bad = team_a.operator.post(f"{org}/products", json={"title": "M", "base_price": "-1"})
    assert bad.status_code == 422 and list(bad.json["errors"]) == ["base_price"]


def test_a_store_catalog_rules_are_replaced_shown_and_audited(team_a: Team) -> None:
    org = f"/orgs/{team_a.org_id}"
    store = _store(team_a)
    assert store.status_code == 201, store.json
    store_id = store.json["id"]
    # Given a new store: no markup, nothing mapped
    empty = {
        "pricing": {"markup_percent": "0", "rounding": "cents", "overrides": {}},
        "categories": {},
        "attributes": {},
    }
    assert team_a.viewer.get(f"{org}/stores/{store_id}/catalog-rules").json == empty
    # When an operator sets its rules
    body = {
        "pricing": {"markup_percent": 12.5, "rounding": "up_to_99", "overrides": {"A": "9.00"}},
        "categories": {"mugs": "1106", "*": "1"},
        "attributes": {"size": "Size"},
    }
    put = _rules(team_a, store_id, body)
    # Then they are kept and shown, on their own and with the store
    expected = {
        "pricing": {"markup_percent": "12.5", "rounding": "up_to_99", "overrides": {"A": "9.00"}},
        "categories": {"*": "1", "mugs": "1106"},
        "attributes": {"size": "Size"},
    }
    assert put.status_code == 200, put.json
    assert put.json == expected
    assert team_a.viewer.get(f"{org}/stores/{store_id}/catalog-rules").json == expected
    assert team_a.viewer.get(f"{org}/stores/{store_id}").json["catalog_rules"] == expected
    # And the change is audited with what it replaced
    audit = team_a.owner.get(f"{org}/audit", query_string={"action": "store.catalog_rules"})
    entry = next(e for e in audit.json["items"] if e["resource_id"] == store_id)
    assert entry["before"] == {"catalog_rules": {}}
    assert entry["after"] == {"catalog_rules": expected}
    # And a viewer may not change them
    assert _rules(team_a, store_id, {}, team_a.viewer).status_code == 403


def test_bad_catalog_rules_are_refused_naming_the_field(team_a: Team) -> None:
    org = f"/orgs/{team_a.org_id}"
    store_id = _store(team_a, catalog_rules={"categories": {"*": "1"}}).json["id"]
    for body, field in (
        ({"pricing": {"rounding": "to_5"}}, "pricing"),
        ({"pricing": {"markup_percent": -150}}, "pricing"),
        ({"pricing": {"markup_percent": "a lot"}}, "pricing"),
        ({"pricing": {"overrides": {"A": "1.234"}}}, "pricing"),
        ({"categories": {"mugs": ""}}, "categories"),
        ({"attributes": {"size": 3}}, "attributes"),
        ({"margin": 3}, "margin"),
    ):
        response = _rules(team_a, store_id, body)
        assert response.status_code == 422, (body, response.json)
        assert list(response.json["errors"]) == [field], (body, response.json)
    nested = _rules(team_a, store_id, {"pricing": {"rounding": "to_5"}}).json["errors"]
    assert list(nested["pricing"]) == ["rounding"]
    # Nothing was changed by the refusals
    shown = team_a.viewer.get(f"{org}/stores/{store_id}/catalog-rules").json
    assert shown["categories"] == {"*": "1"}
    # And a store connected with bad rules is not connected
    refused = _store(team_a, catalog_rules={"pricing": {"rounding": "sometimes"}})
    assert refused.status_code == 422 and list(refused.json["errors"]) == ["catalog_rules"]


def test_etsy_stores_no_longer_take_a_taxonomy_id_setting(team_a: Team) -> None:
    # The category mapping replaced it: the setting is refused, naming it
    refused = _store(team_a, settings={"taxonomy_id": 1})
    assert refused.status_code == 422
    assert list(refused.json["errors"]) == ["settings.taxonomy_id"]
