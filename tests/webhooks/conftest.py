"""Fixtures of the webhook tests: the real app in-process, stores with webhook secrets in two
orgs, and helpers that sign deliveries the way the platforms (and our sandboxes) do."""

from __future__ import annotations

import base64
import dataclasses
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from api.app import create_app
from fusion.config import Settings
from fusion.db.session import Database
from fusion.jobs import dispatch
from fusion.security.signing import shopify_hmac
from fusion.stores.service import connect_store

MAX_BODY = 64 * 1024
SHOPIFY_SECRET = "shpss_test-webhook-secret"
ETSY_SECRET = "whsec_" + base64.b64encode(b"etsy-test-webhook-secret-32bytes").decode()


@pytest.fixture(scope="module")
def app(settings: Settings) -> Iterator[Flask]:
    previous = dispatch.installed()
    app = create_app(
        dataclasses.replace(settings, request_quota_per_minute=100_000, max_body_bytes=MAX_BODY)
    )
    app.config["TESTING"] = True
    yield app
    dispatch.install(previous)
    app.extensions["fusion"].database.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def add_store(
    database: Database,
    settings: Settings,
    org_id: uuid.UUID,
    platform: str,
    secret: str | None,
    external_id: str | None = None,
) -> uuid.UUID:
    """A connected store; its shop is ``external_id`` (a fresh Shopify domain, or a fresh
    ``<platform>-...`` id, by default): what its deliveries must name."""
    tag = uuid.uuid4().hex[:8]
    if external_id is None:
        external_id = f"shop-{tag}.myshopify.com" if platform == "shopify" else f"{platform}-{tag}"
    with database.org_session(org_id) as session:
        store = connect_store(
            session,
            org_id=org_id,
            platform=platform,
            name=f"{platform} store",
            external_id=external_id,
            base_url=None,
            credentials={"access_token": "tok-" + uuid.uuid4().hex},
            webhook_secret=secret,
            settings=settings,
        )
        return store.id


@pytest.fixture
def shop_a(database: Database, settings: Settings, org_a: uuid.UUID) -> uuid.UUID:
    return add_store(database, settings, org_a, "shopify", SHOPIFY_SECRET)


def shopify_order(
    order_id: int = 1001, lines: list[tuple[str, int]] | None = None
) -> dict[str, Any]:
    return {
        "id": order_id,
        "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "total_price": "30.00",
        "currency": "USD",
        "financial_status": "paid",
        # Placed now: after its store was connected (an older one would be history).
        "created_at": datetime.now(UTC).isoformat(),
        "line_items": [
            {"id": order_id * 10 + i, "sku": sku, "quantity": qty, "price": "10.00"}
            for i, (sku, qty) in enumerate(lines or [("SKU-RED", 2)])
        ],
    }


def shopify_delivery(
    payload: dict[str, Any] | bytes,
    *,
    shop: str,
    topic: str = "orders/create",
    delivery_id: str | None = None,
    secret: str = SHOPIFY_SECRET,
) -> tuple[bytes, dict[str, str]]:
    """A delivery signed as Shopify signs one, from the shop domain ``shop``."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return body, {
        "Content-Type": "application/json",
        "X-Shopify-Hmac-SHA256": shopify_hmac(secret, body),
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-Webhook-Id": delivery_id or str(uuid.uuid4()),
        "X-Shopify-Topic": topic,
    }


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def external_id(engine: Engine, store_id: uuid.UUID) -> str:
    """The shop the store is (its domain on Shopify), as its deliveries name it."""
    with engine.connect() as conn:
        return str(
            conn.execute(
                text("SELECT external_id FROM stores WHERE id = :id"), {"id": store_id}
            ).scalar_one()
        )
