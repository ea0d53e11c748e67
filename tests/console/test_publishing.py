"""Publishing a selection of the products x stores grid: ticked cells (a plain form POST, no
JavaScript needed) published, updated or delisted through the same service as one cell's
button (approval where the org's policy asks, one audit entry per listing)."""

from __future__ import annotations

import html
from typing import Any

from sqlalchemy import Engine, text

from tests.api.conftest import count_rows
from tests.console.conftest import ConsoleTeam
from tests.support.merchant import new_sku, ok


def _store(crew: ConsoleTeam, name: str) -> str:
    made: dict[str, Any] = ok(
        crew.team.owner.post(
            f"/orgs/{crew.team.org_id}/stores",
            json={
                "platform": "shopify",
                "name": name,
                "external_id": f"{new_sku().lower()}.myshopify.com",
                "base_url": "http://127.0.0.1:9",
                "credentials": {"access_token": "shpat_x"},
            },
        ),
        201,
    )
    return str(made["id"])


def _product(crew: ConsoleTeam, title: str) -> str:
    org = f"/orgs/{crew.team.org_id}"
    product = ok(
        crew.team.owner.post(f"{org}/products", json={"title": title, "description": title})
    )
    ok(
        crew.team.owner.post(
            f"{org}/products/{product['id']}/variants",
            json={"sku": new_sku(), "price": "5.00", "available_quantity": 3},
        ),
        201,
    )
    return str(product["id"])


def _listings(admin_engine: Engine, org_id: Any) -> dict[tuple[str, str], str]:
    with admin_engine.connect() as conn:
        rows = conn.execute(
            text("SELECT product_id, store_id, status FROM listings WHERE org_id = :o"),
            {"o": org_id},
        ).all()
    return {(str(r.product_id), str(r.store_id)): r.status for r in rows}


def _count(admin_engine: Engine, crew: ConsoleTeam, table: str, **where: Any) -> int:
    return count_rows(admin_engine, table, org_id=crew.team.org_id, **where)


def test_an_operator_publishes_then_updates_a_selection_of_cells(
    crew: ConsoleTeam, admin_engine: Engine
) -> None:
    shop, market = _store(crew, "Shop"), _store(crew, "Market")
    mug, bowl = _product(crew, "Mug"), _product(crew, "Bowl")
    path = f"{crew.org}/publishing"
    grid = crew.operator.get(path).get_data(as_text=True)
    for product in (mug, bowl):
        for store in (shop, market):
            assert f'name="cells" value="{product}:{store}"' in grid
    # Given three of the four cells ticked, when Publish selected is pressed
    picked = [f"{mug}:{shop}", f"{mug}:{market}", f"{bowl}:{shop}"]
    answer = crew.operator.post(
        f"{path}/selection", {"do": "publish", "cells": picked, "back": path}
    )
    assert answer.status_code == 303 and answer.headers["Location"].endswith(path)
    # Then each ticked cell is listed and asked to publish, as its own button would do
    assert _listings(admin_engine, crew.team.org_id) == {
        (mug, shop): "staged",
        (mug, market): "staged",
        (bowl, shop): "staged",
    }
    assert _count(admin_engine, crew, "jobs", job_type="create_product") == 3
    assert _count(admin_engine, crew, "audit_logs", action="listing.publish") == 3
    shown = html.unescape(crew.operator.get(path).get_data(as_text=True))
    assert "Publish: 3 job(s) queued, 0 waiting for an owner's approval, 0 skipped" in shown
    # And a selection whose cells are not all in a state for the action skips those
    with admin_engine.begin() as conn:
        conn.execute(
            text("UPDATE listings SET status = 'published' WHERE product_id = :p"), {"p": mug}
        )
    again = crew.operator.post(
        f"{path}/selection",
        {"do": "update", "cells": [f"{mug}:{shop}", f"{bowl}:{shop}", f"{bowl}:{market}"]},
    )
    assert again.status_code == 303
    assert _count(admin_engine, crew, "jobs", job_type="update_product") == 1
    assert _count(admin_engine, crew, "audit_logs", action="listing.update") == 1
    assert (bowl, market) not in _listings(admin_engine, crew.team.org_id)
    shown = html.unescape(crew.operator.get(path).get_data(as_text=True))
    assert "Update: 1 job(s) queued, 0 waiting for an owner's approval, 2 skipped" in shown


def test_a_selection_waits_for_approval_where_the_policy_asks(
    crew: ConsoleTeam, admin_engine: Engine
) -> None:
    shop = _store(crew, "Shop")
    mug, bowl = _product(crew, "Mug"), _product(crew, "Bowl")
    ok(
        crew.team.owner.post(
            f"/orgs/{crew.team.org_id}/approval-policies",
            json={"resource_type": "listing", "action": "publish"},
        ),
        201,
    )
    path = f"{crew.org}/publishing"
    crew.operator.get(path)
    answer = crew.operator.post(
        f"{path}/selection", {"do": "publish", "cells": [f"{mug}:{shop}", f"{bowl}:{shop}"]}
    )
    assert answer.status_code == 303
    assert _count(admin_engine, crew, "approvals", status="pending", action="publish") == 2
    assert _count(admin_engine, crew, "jobs") == 0
    shown = html.unescape(crew.operator.get(path).get_data(as_text=True))
    assert "0 job(s) queued, 2 waiting for an owner's approval" in shown
    assert shown.count("waiting for approval</span>") == 2


def test_a_viewer_sees_no_selection_and_a_forged_one_is_refused(
    crew: ConsoleTeam, admin_engine: Engine
) -> None:
    shop, mug = _store(crew, "Shop"), _product(crew, "Mug")
    path = f"{crew.org}/publishing"
    grid = crew.viewer.get(path).get_data(as_text=True)
    assert 'name="cells"' not in grid and "Publish selected" not in grid
    forged = crew.viewer.post(f"{path}/selection", {"do": "publish", "cells": f"{mug}:{shop}"})
    assert forged.status_code == 403
    assert _listings(admin_engine, crew.team.org_id) == {}


def test_an_empty_or_bad_selection_is_refused_naming_the_field(crew: ConsoleTeam) -> None:
    path = f"{crew.org}/publishing"
    crew.operator.get(path)
    for form, reason in (
        ({"do": "publish"}, "cells: Tick at least one cell."),
        ({"do": "publish", "cells": "not-a-pair"}, "cells: Not a product and store id pair."),
        ({"do": "sell", "cells": "x"}, "do: Must be one of: publish, update, delist."),
    ):
        answer = crew.operator.post(f"{path}/selection", {**form, "back": path})
        assert answer.status_code == 303
        assert reason in html.unescape(crew.operator.get(path).get_data(as_text=True))
