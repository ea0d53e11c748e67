"""The console in a real browser on a running hub: sign in, publish and watch the job row turn
completed without a reload, place a sandbox order and watch the stock figure drop (then follow
the order's links to its job and its webhook delivery), a ticked job kept ticked across a live
update of its row, and an operator's delete approved by the owner in the inbox."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from flask.testing import FlaskClient
from sqlalchemy import Engine

from tests.api.conftest import Team, count_rows, make_team
from tests.console.browser.conftest import Browsers, Tab
from tests.console.conftest import email_of
from tests.support.merchant import list_product, new_product, new_sku

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[3]
WAIT_MS = 30_000


def _eventually(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.3)


def _connect_sandbox_shop(tab: Tab, team: Team, sandbox_url: str) -> str:
    """Through the console's dev sandbox page: a new shop, connected; the store's id."""
    page = tab.open(f"/console/orgs/{team.org_id}/sandbox")
    page.fill("input[name=sandbox_url]", sandbox_url)
    page.fill("input[name=name]", "Demo shop")
    page.click("text=Create shop and connect it")
    page.wait_for_url("**/stores/*")
    return page.url.rstrip("/").rsplit("/", 1)[-1]


def _no_reload_marker(tab: Tab) -> None:
    tab.page.evaluate("window.__stayed = true")


def _stayed(tab: Tab) -> bool:
    return bool(tab.page.evaluate("window.__stayed === true"))


def _live(tab: Tab) -> None:
    """Wait until the page's event stream is open (htmx's SSE extension connected)."""
    tab.page.wait_for_function(
        "() => { const e = document.querySelector('[sse-connect]');"
        " return e && e['htmx-internal-data'] && e['htmx-internal-data'].sseEventSource"
        " && e['htmx-internal-data'].sseEventSource.readyState === 1; }",
        timeout=WAIT_MS,
    )


def test_publish_and_the_job_row_turns_completed_without_a_reload(
    browsers: Browsers, client: FlaskClient, admin_engine: Engine
) -> None:
    team = make_team(client, "Alpha")
    owner = browsers.tab()
    owner.sign_in(email_of(team.owner))
    store_id = _connect_sandbox_shop(owner, team, browsers.hub.shopify.url)
    product_id, _ = new_product(team, [new_sku()])

    jobs = browsers.tab(owner.page.context)  # a second tab of the same person
    jobs.open(f"/console/orgs/{team.org_id}/jobs")
    _live(jobs)
    _no_reload_marker(jobs)

    grid = owner.open(f"/console/orgs/{team.org_id}/publishing")
    grid.locator(f"#cell-{product_id}-{store_id} button", has_text="Publish").click()
    grid.wait_for_selector(".flash.ok")

    row = jobs.page.locator("tr[data-status=completed]", has_text="create_product")
    row.wait_for(timeout=WAIT_MS)
    assert _stayed(jobs), "the jobs page reloaded"
    assert count_rows(admin_engine, "listings", status="published") == 1
    dashboard = owner.open(f"/console/orgs/{team.org_id}/")
    _live(owner)
    kept = os.environ.get("FUSION_CONSOLE_SCREENSHOTS")
    if kept:
        dashboard.screenshot(path=str(Path(kept) / "console-dashboard.png"), full_page=True)
        shutil.copy(Path(kept) / "console-dashboard.png", ROOT / "docs" / "console-dashboard.png")


def test_a_sandbox_order_drops_the_stock_figure_without_a_reload(
    browsers: Browsers, client: FlaskClient
) -> None:
    team = make_team(client, "Alpha")
    owner = browsers.tab()
    owner.sign_in(email_of(team.owner))
    store_id = _connect_sandbox_shop(owner, team, browsers.hub.shopify.url)
    sku = new_sku()
    product_id, _ = new_product(team, [sku], quantity=5)
    grid = owner.open(f"/console/orgs/{team.org_id}/publishing")
    grid.locator(f"#cell-{product_id}-{store_id} button", has_text="Publish").click()
    grid.locator(f'#cell-{product_id}-{store_id}[data-status="published"]').wait_for(
        timeout=WAIT_MS
    )

    stock = browsers.tab(owner.page.context)
    stock.open(f"/console/orgs/{team.org_id}/products")
    figure = stock.page.locator(f'input.qty[data-sku="{sku}"]')
    assert figure.input_value() == "5"
    _live(stock)
    _no_reload_marker(stock)

    shop = owner.open(f"/console/orgs/{team.org_id}/sandbox")
    shop.fill("input[name=sku]", sku)
    shop.fill("input[name=quantity]", "2")
    shop.click("text=Place order")
    shop.wait_for_selector(".flash.ok")

    stock.page.wait_for_function(
        f"() => document.querySelector('input.qty[data-sku=\"{sku}\"]').value === '3'",
        timeout=WAIT_MS,
    )
    assert _stayed(stock), "the products page reloaded"

    # The order the signed webhook brought links to the job that stored it and the delivery
    orders = owner.open(f"/console/orgs/{team.org_id}/orders")
    orders.locator("a.order-job").first.click()
    orders.wait_for_url("**/jobs/*")
    assert "process_webhook" in orders.locator("h1").inner_text()
    orders = owner.open(f"/console/orgs/{team.org_id}/orders")
    orders.locator("a.order-delivery").first.click()
    orders.wait_for_url("**/webhook-deliveries/*")
    assert orders.locator("dd.topic").inner_text() == "orders/create"
    orders.locator("a.delivery-order").first.click()
    orders.wait_for_url("**/orders/*")
    assert sku in orders.locator("table").inner_text()


def test_an_operators_delete_waits_for_the_owner_who_approves_it_in_the_inbox(
    browsers: Browsers, client: FlaskClient, admin_engine: Engine
) -> None:
    team = make_team(client, "Alpha")
    product_id, _ = new_product(team, [new_sku()])
    operator = browsers.tab()
    operator.sign_in(email_of(team.operator))
    owner = browsers.tab()
    owner.sign_in(email_of(team.owner))
    inbox = owner.open(f"/console/orgs/{team.org_id}/approvals")
    _live(owner)
    _no_reload_marker(owner)

    products = operator.open(f"/console/orgs/{team.org_id}/products")
    products.click("text=Delete product")
    products.wait_for_selector("text=waits for an owner's approval")
    assert count_rows(admin_engine, "products", id=product_id) == 1

    card = inbox.locator("article.approval", has_text="delete")
    card.wait_for(timeout=WAIT_MS)  # the inbox shows it without a reload
    assert _stayed(owner)
    card.locator("input[name=note]").fill("fine by me")
    card.locator("button", has_text="Approve").click()
    inbox.wait_for_selector("text=Approval approved")
    _eventually(lambda: count_rows(admin_engine, "products", id=product_id) == 0)


def test_swagger_ui_loads_from_the_hub_alone(browsers: Browsers) -> None:
    tab = browsers.tab()
    page = tab.open("/docs")
    page.wait_for_selector("text=Fusion Stage Hub", timeout=WAIT_MS)
    page.wait_for_selector(".opblock", timeout=WAIT_MS)


def _knobs(sandbox_url: str, **values: object) -> None:
    answer = requests.post(f"{sandbox_url}/_sandbox/knobs", json=values, timeout=5)
    assert answer.status_code == 200, answer.text


def test_an_outage_fails_jobs_grouped_on_the_dashboard_and_retry_all_completes_them(
    browsers: Browsers, client: FlaskClient, admin_engine: Engine
) -> None:
    team = make_team(client, "Alpha")
    owner = browsers.tab()
    owner.sign_in(email_of(team.owner))
    shop = browsers.hub.shopify.url
    store_id = _connect_sandbox_shop(owner, team, shop)
    # The shop's order webhooks are subscribed first (a job of its own), before the outage.
    subscribed = {"org_id": team.org_id, "job_type": "subscribe_order_events"}
    _eventually(lambda: count_rows(admin_engine, "jobs", status="completed", **subscribed) == 1)
    _knobs(shop, outage=True)
    try:
        for _ in range(2):
            product_id, _ = new_product(team, [new_sku()])
            list_product(team, product_id, store_id)
        # The workers try, the sandbox answers 503 every time, the jobs run out of attempts.
        failed = {"org_id": team.org_id, "status": "failed"}
        _eventually(lambda: count_rows(admin_engine, "jobs", **failed) == 2, timeout=90)
    finally:
        _knobs(shop, outage=False)

    dashboard = owner.open(f"/console/orgs/{team.org_id}/")
    group = dashboard.locator("tr.failure-group")
    assert group.count() == 1
    assert group.get_attribute("data-count") == "2"
    assert "503" in group.inner_text()
    group.locator("button", has_text="Retry all").click()
    dashboard.wait_for_selector(".flash.ok")
    assert "Retried 2 job(s)" in dashboard.locator(".flash.ok").inner_text()
    _eventually(lambda: count_rows(admin_engine, "listings", status="published") == 2, 60)
    assert count_rows(admin_engine, "audit_logs", action="job.bulk_retry") == 1
    again = owner.open(f"/console/orgs/{team.org_id}/")
    assert again.locator("tr.failure-group").count() == 0


def _parked_job(team: Team) -> str:
    """A job that stays pending until cancelled: its store is on Etsy, whose queue no worker of
    these tests takes."""
    org = f"/orgs/{team.org_id}"
    store = team.owner.post(
        f"{org}/stores",
        json={
            "platform": "etsy",
            "name": "Parked",
            "external_id": "4242",
            "credentials": {"keystring": "ks", "shared_secret": "ss", "access_token": "1.tok"},
        },
    )
    assert store.status_code == 201, store.json
    job = team.owner.post(
        f"{org}/jobs", json={"job_type": "list_products", "store_id": store.json["id"]}
    )
    assert job.status_code == 202, job.json
    return str(job.json["id"])


def test_a_ticked_job_stays_ticked_when_a_live_update_redraws_its_row(
    browsers: Browsers, client: FlaskClient
) -> None:
    team = make_team(client, "Alpha")
    job_id = _parked_job(team)
    operator = browsers.tab()
    operator.sign_in(email_of(team.operator))
    jobs = operator.open(f"/console/orgs/{team.org_id}/jobs")
    _live(operator)
    _no_reload_marker(operator)
    # Given the job's row ticked
    jobs.check(f"#pick-{job_id}")
    # When the job changes elsewhere and the live update redraws its row
    cancelled = team.owner.post(f"/orgs/{team.org_id}/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200, cancelled.json
    jobs.locator(f"tr#job-{job_id}[data-status=cancelled]").wait_for(timeout=WAIT_MS)
    # Then the row shows the change, still ticked, without a reload
    assert jobs.is_checked(f"#pick-{job_id}")
    assert _stayed(operator), "the jobs page reloaded"
    # And the selection still acts: Retry selected re-runs the ticked job
    jobs.click("button[value=retry-selected]")
    jobs.wait_for_selector(".flash.ok")
    assert "1 job(s), 0 skipped" in jobs.locator(".flash.ok").inner_text()
