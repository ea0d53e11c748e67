"""Spreadsheets in and out, through the HTTP API on a running hub: the catalog exported as
CSV, a CSV with good and bad rows previewed (each bad row named by line and column), refused
as a whole until the person confirms its good rows alone, then applied by a worker as a job
with a result per row, its stock changes in the ledger and on the channel."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from fusion.config import Settings
from fusion.onboarding.spreadsheet import COLUMNS
from tests.api.conftest import Team, make_team
from tests.support.merchant import channel_shows, connect, ok
from tests.support.stack import Stack, eventually, live_stack

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::celery.exceptions.CPendingDeprecationWarning"),
]
HEADER = ",".join(COLUMNS)


@pytest.fixture(scope="module")
def stack(hub_env: dict[str, str], settings: Settings) -> Iterator[Stack]:
    with live_stack(hub_env, settings, ("shopify",)) as running:
        yield running


def finished(team: Team, job_id: str) -> dict[str, Any]:
    path = f"/orgs/{team.org_id}/jobs/{job_id}"
    return eventually(  # type: ignore[no-any-return]
        lambda: (b := team.viewer.get(path).json)["status"] in ("completed", "failed") and b,
        f"job {job_id} finished",
    )


def upload(team: Team, text: str, *, multipart: bool = True) -> Any:
    org = f"/orgs/{team.org_id}/imports"
    if multipart:
        data = {"file": (io.BytesIO(text.encode()), "catalog.csv")}
        return team.operator.post(org, data=data, content_type="multipart/form-data")
    return team.operator.post(org, data=text.encode(), content_type="text/csv")


def published(team: Team, stack: Stack, sku: str, quantity: int) -> tuple[str, str, Any]:
    """A product of one SKU published on a Shopify store: (variant id, product id, shop)."""
    org = f"/orgs/{team.org_id}"
    store_id, shop = connect(team, stack.servers["shopify"], "shopify")
    product = ok(team.owner.post(f"{org}/products", json={"title": "Mug"}), 201)
    body = {"sku": sku, "price": "12.00", "available_quantity": quantity}
    variant = ok(team.owner.post(f"{org}/products/{product['id']}/variants", json=body), 201)
    new_listing = {"product_id": product["id"], "store_id": store_id}
    listing = ok(team.owner.post(f"{org}/listings", json=new_listing), 201)
    ok(team.owner.post(f"{org}/listings/{listing['id']}/publish"), 202)
    eventually(
        lambda: channel_shows("shopify", stack.servers["shopify"], shop, sku) == quantity,
        "Shopify shows the SKU",
    )
    return str(variant["id"]), str(product["id"]), shop


def test_a_csv_with_good_and_bad_rows_is_previewed_then_its_good_rows_applied(
    stack: Stack,
) -> None:
    team = make_team(stack.app.test_client(), "Sheets")
    org = f"/orgs/{team.org_id}"
    sold = f"MUG-{uuid.uuid4().hex[:6].upper()}"
    variant_id, product_id, shop = published(team, stack, sold, 5)
    new_a, new_b = (f"NEW-{n}-{uuid.uuid4().hex[:5].upper()}" for n in "AB")
    # Given a file that restocks the published SKU, adds two SKUs of a new product, and has
    # three bad rows
    text = "\n".join(
        [
            HEADER,
            f"{product_id},,,{sold},,13.50,,42",  # line 2
            f",Teapot,Cast iron,{new_a},Black,30.00,usd,7",  # line 3
            f",Teapot,,{new_b},Red,abc,,3",  # line 4: price
            f",Teapot,,{new_b},Red,31.00,,-1",  # line 5: quantity
            f",,,{uuid.uuid4().hex[:6]},,9.00,,1",  # line 6: no product for a new SKU
            f",Teapot,,{new_b},Red,31.00,,3",  # line 7
        ]
    )
    # When it is uploaded
    preview = ok(upload(team, text), 201)
    # Then the preview names each bad row by line and column, with the reason
    assert (preview["rows"], preview["good_rows"], preview["bad_rows"]) == (6, 3, 3)
    assert preview["problems"] == [
        {"line": 4, "column": "price", "reason": "not a number"},
        {"line": 5, "column": "available_quantity", "reason": "not a whole number of 0 or more"},
        {
            "line": 6,
            "column": "product_title",
            "reason": "a new SKU needs its product's id or title",
        },
    ]
    # and confirming it as it is applies nothing
    refused = team.operator.post(f"{org}/imports/{preview['id']}/confirm", json={})
    assert refused.status_code == 409, refused.json
    assert "3 bad rows" in refused.json["detail"]
    assert ok(team.viewer.get(f"{org}/imports/{preview['id']}"))["status"] == "previewed"
    titles = [p["title"] for p in team.viewer.get(f"{org}/products").json["items"]]
    assert titles == ["Mug"]
    assert channel_shows("shopify", stack.servers["shopify"], shop, sold) == 5

    # When the person confirms the good rows alone
    body = {"good_rows_only": True}
    job = ok(team.operator.post(f"{org}/imports/{preview['id']}/confirm", json=body), 202)
    done = finished(team, job["id"])

    # Then a worker applied them, with a result per row
    assert done["status"] == "completed", done["last_error"]
    assert done["result"] == {"ok": 3, "failed": 0, "skipped": 0}
    rows = ok(team.viewer.get(f"{org}/jobs/{job['id']}/items", query_string={"limit": 50}))
    assert sorted(i["key"] for i in rows["items"]) == ["line 2", "line 3", "line 7"]
    assert ok(team.viewer.get(f"{org}/imports/{preview['id']}"))["status"] == "applied"
    # and the restock went through the ledger and reached the channel
    stock = ok(team.viewer.get(f"{org}/variants/{variant_id}/stock"))
    assert stock["available_quantity"] == 42
    assert stock["items"][0]["kind"] == "import"
    eventually(
        lambda: channel_shows("shopify", stack.servers["shopify"], shop, sold) == 42,
        "Shopify shows the imported figure",
    )
    # and the export shows the catalog as the file made it
    exported = team.viewer.get(f"{org}/exports/catalog.csv")
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    table = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    seen = {r["sku"]: (r["product_title"], r["price"], r["currency"], r["available_quantity"])
            for r in table}  # fmt: skip
    assert seen == {
        sold: ("Mug", "13.50", "USD", "42"),
        new_a: ("Teapot", "30.00", "USD", "7"),
        new_b: ("Teapot", "31.00", "USD", "3"),
    }
    teapot = {r["product_id"] for r in table if r["product_title"] == "Teapot"}
    assert len(teapot) == 1


def test_an_exported_catalog_imports_back_as_no_change(stack: Stack) -> None:
    team = make_team(stack.app.test_client(), "Round trip")
    org = f"/orgs/{team.org_id}"
    product = ok(team.owner.post(f"{org}/products", json={"title": "Bowl"}), 201)
    for n in range(3):
        body = {"sku": f"BOWL-{n}-{uuid.uuid4().hex[:4]}", "price": "5.00", "available_quantity": n}
        ok(team.owner.post(f"{org}/products/{product['id']}/variants", json=body), 201)
    exported = team.viewer.get(f"{org}/exports/catalog.csv").get_data(as_text=True)

    preview = ok(upload(team, exported, multipart=False), 201)
    job = ok(team.operator.post(f"{org}/imports/{preview['id']}/confirm", json={}), 202)

    assert (preview["rows"], preview["bad_rows"]) == (3, 0)
    assert finished(team, job["id"])["result"] == {"ok": 0, "failed": 0, "skipped": 3}


def test_a_file_that_is_not_the_catalogs_is_refused_naming_the_file(stack: Stack) -> None:
    team = make_team(stack.app.test_client(), "Wrong file")
    answer = upload(team, "name,colour\nmug,blue\n")
    assert answer.status_code == 422, answer.json
    assert answer.json["errors"]["file"] == [
        f"unknown column 'name' (columns: {HEADER.replace(',', ', ')})",
        f"unknown column 'colour' (columns: {HEADER.replace(',', ', ')})",
        "the sku column is required",
    ]
