"""The Orders page's links followed from an order that arrived by a real signed webhook (posted
to the hub's receiver, processed by the job engine): to the job that stored it and to the
delivery that brought it, each landing on its own page."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from fusion.jobs.engine import Engine as JobEngine
from tests.api.test_order_origin import connect_signed_shop, deliver_order, shopify_order
from tests.console.conftest import ConsoleTeam
from tests.support.merchant import ok, run


def _href(page: str, css: str) -> str:
    found = re.search(rf'<a class="{css}"[^>]* href="([^"]+)"', page)
    assert found, f"no {css} link"
    return found.group(1)


def test_an_orders_links_land_on_its_job_and_its_webhook_delivery(
    crew: ConsoleTeam, client: FlaskClient, job_engine: JobEngine
) -> None:
    team = crew.team
    store_id, shop = connect_signed_shop(team)
    deliver_order(client, store_id, shop, shopify_order(8101, "SKU-LINKS"))
    jobs = ok(
        team.viewer.get(f"/orgs/{team.org_id}/jobs", query_string={"job_type": "process_webhook"})
    )
    job_id = jobs["items"][0]["id"]
    run(job_engine, job_id)
    order = ok(team.viewer.get(f"/orgs/{team.org_id}/orders"))["items"][0]
    delivery_id = ok(team.viewer.get(f"/orgs/{team.org_id}/orders/{order['id']}"))[
        "webhook_delivery_id"
    ]
    viewer = crew.viewer
    listed = viewer.get(f"{crew.org}/orders").get_data(as_text=True)
    assert '<td class="lines">1 \u00d7 SKU-LINKS</td>' in listed  # each order's lines
    # From the list and from the order's own page, the job link lands on the storing job
    for page in (listed, viewer.get(f"{crew.org}/orders/{order['id']}").get_data(as_text=True)):
        job_page = viewer.get(_href(page, "order-job"))
        assert job_page.status_code == 200
        shown = job_page.get_data(as_text=True)
        assert f"<dd>{job_id}</dd>" in shown and "process_webhook" in shown
        # And the delivery link on the delivery that brought the order
        delivery_page = viewer.get(_href(page, "order-delivery"))
        assert delivery_page.status_code == 200
        shown = delivery_page.get_data(as_text=True)
        assert f'<dd class="delivery-id">{delivery_id}</dd>' in shown
        assert '<dd class="topic">orders/create</dd>' in shown
        assert _href(shown, "delivery-job").endswith(f"/jobs/{job_id}")
        assert _href(shown, "delivery-order").endswith(f"/orders/{order['id']}")
