"""With ``FUSION_PUBLIC_URL`` set, connecting a Shopify store through the API subscribes the
hub to its order events: the API enqueues ``subscribe_order_events``, the real engine runs it
against the sandbox, and an order placed there then reaches the hub's receiver over real
HTTP, is stored once and takes its stock. Without a public URL nothing is enqueued."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import Engine, text
from werkzeug.serving import make_server

from api.app import create_app
from fusion.config import Settings
from fusion.db.session import Database
from fusion.jobs import dispatch
from fusion.jobs.engine import Engine as JobEngine
from fusion.jobs.engine import Outcome
from fusion.plugins.base import ProductDraft, VariantDraft
from fusion.plugins.shopify import plugin as shopify
from fusion.sandbox.server import SandboxServer
from fusion.sandbox.shopify import ShopifySandbox
from tests.api.conftest import Team, make_team
from tests.sandbox.harness import connection, store_http
from tests.workers.conftest import wait_until

SECRET = "whsec_" + uuid.uuid4().hex


@dataclasses.dataclass
class LiveHub:
    app: Flask
    url: str
    settings: Settings


@pytest.fixture
def live_hub(settings: Settings) -> Iterator[LiveHub]:
    """The API served on a loopback port, its public URL pointing at itself."""
    holder: dict[str, Flask] = {}
    server = make_server("127.0.0.1", 0, lambda env, start: holder["app"](env, start))
    url = f"http://127.0.0.1:{server.server_port}"
    hub_settings = dataclasses.replace(settings, public_url=url, request_quota_per_minute=10**6)
    previous = dispatch.installed()
    holder["app"] = create_app(hub_settings)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LiveHub(holder["app"], url, hub_settings)
    finally:
        server.shutdown()
        server.server_close()
        dispatch.install(previous)
        holder["app"].extensions["fusion"].database.dispose()


@pytest.fixture
def shopify_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(ShopifySandbox()) as running:
        yield running


def _shop(sandbox: SandboxServer) -> dict[str, str]:
    details = {
        "shop": f"s{uuid.uuid4().hex[:8]}.myshopify.com",
        "token": f"shpat_{uuid.uuid4().hex}",
        "webhook_secret": SECRET,
    }
    requests.post(f"{sandbox.url}/_sandbox/shops", json=details, timeout=5).raise_for_status()
    return details


def _connect(team: Team, sandbox: SandboxServer, shop: dict[str, str]) -> Any:
    return team.owner.post(
        f"/orgs/{team.org_id}/stores",
        json={
            "platform": "shopify",
            "name": "Shop",
            "external_id": shop["shop"],
            "base_url": sandbox.url,
            "credentials": {"access_token": shop["token"]},
            "webhook_secret": SECRET,
        },
    )


def _jobs(admin: Engine, job_type: str) -> list[uuid.UUID]:
    with admin.connect() as conn:
        return list(
            conn.execute(text("SELECT id FROM jobs WHERE job_type = :t"), {"t": job_type}).scalars()
        )


def test_a_connected_store_sends_its_orders_to_the_hub(
    live_hub: LiveHub,
    shopify_sandbox: SandboxServer,
    database: Database,
    admin_engine: Engine,
) -> None:
    # Given a hub reachable at its public URL, and a Shopify shop selling MUG-1
    team = make_team(live_hub.app.test_client(), "Hooks")
    shop = _shop(shopify_sandbox)
    conn = connection(
        "shopify",
        shopify_sandbox.url,
        external_id=shop["shop"],
        credentials={"access_token": shop["token"]},
    )
    draft = ProductDraft(
        title="Mug", variants=[VariantDraft(sku="MUG-1", price=Decimal("12.50"), quantity=9)]
    )
    shopify.client(conn, store_http(conn)).create_product(draft)
    with admin_engine.begin() as db:
        product = uuid.uuid4()
        db.execute(
            text("INSERT INTO products (id, org_id, title) VALUES (:p, :o, 'Mug')"),
            {"p": product, "o": team.org_id},
        )
        db.execute(
            text(
                "INSERT INTO product_variants (id, org_id, product_id, sku, price, "
                "available_quantity) VALUES (:id, :o, :p, 'MUG-1', 12.50, 5)"
            ),
            {"id": uuid.uuid4(), "o": team.org_id, "p": product},
        )
    # When the owner connects the store with its webhook secret
    connected = _connect(team, shopify_sandbox, shop)
    assert connected.status_code == 201, connected.json
    store_id = connected.json["id"]
    # Then a subscription job is waiting, and running it subscribes the hub's receiver
    [job_id] = _jobs(admin_engine, "subscribe_order_events")
    engine = JobEngine(live_hub.settings, database, db_patience_s=5)
    engine.start()
    try:
        assert engine.execute(job_id) is Outcome.COMPLETED
        receiver = f"{live_hub.url}/webhooks/shopify/{store_id}"
        state = requests.get(f"{shopify_sandbox.url}/_sandbox/state", timeout=5).json()
        subscriptions = state["state"][shop["shop"]]["webhook_subscriptions"]
        assert sorted((s["topic"], s["uri"]) for s in subscriptions) == [
            ("ORDERS_CREATE", receiver),
            ("ORDERS_PAID", receiver),
            ("ORDERS_UPDATED", receiver),
            ("REFUNDS_CREATE", receiver),
        ]
        logs = team.viewer.get(f"/orgs/{team.org_id}/jobs/{job_id}").json
        assert logs["status"] == "completed" and logs["result"]["uri"] == receiver
        assert SECRET not in str(logs)
        # When a buyer orders 2 on Shopify
        requests.post(
            f"{shopify_sandbox.url}/_sandbox/orders",
            json={"shop": shop["shop"], "lines": [{"sku": "MUG-1", "quantity": 2}]},
            timeout=5,
        ).raise_for_status()
        # Then the delivery reaches the hub over HTTP, verified and stored with its job
        wait_until(lambda: bool(_jobs(admin_engine, "process_webhook")), 20)
        [process] = _jobs(admin_engine, "process_webhook")
        assert engine.execute(process) is Outcome.COMPLETED
    finally:
        engine.stop()
    with admin_engine.connect() as db:
        lines = db.execute(text("SELECT sku, quantity FROM order_lines")).all()
        held = db.execute(
            text("SELECT available_quantity FROM product_variants WHERE sku = 'MUG-1'")
        ).scalar_one()
    assert ([tuple(r) for r in lines], held) == ([("MUG-1", 2)], 3)


def test_without_a_public_url_connecting_subscribes_nothing(
    shopify_sandbox: SandboxServer, admin_engine: Engine, settings: Settings
) -> None:
    previous = dispatch.installed()
    app = create_app(dataclasses.replace(settings, public_url=None))
    try:
        team = make_team(app.test_client(), "Quiet")
        connected = _connect(team, shopify_sandbox, _shop(shopify_sandbox))
        assert connected.status_code == 201, connected.json
        assert _jobs(admin_engine, "subscribe_order_events") == []
    finally:
        dispatch.install(previous)
        app.extensions["fusion"].database.dispose()
