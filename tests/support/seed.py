"""One row in every tenant table for an org, written as the owner (RLS does not apply)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, text

from fusion.models import TENANT_TABLES


def _insert(conn: Connection, table: str, **values: Any) -> uuid.UUID:
    values.setdefault("id", uuid.uuid4())
    cols = ", ".join(values)
    params = ", ".join(f":{k}" for k in values)
    conn.execute(text(f"INSERT INTO {table} ({cols}) VALUES ({params})"), values)
    return values["id"]


def seed_org(engine: Engine, org: uuid.UUID) -> dict[str, uuid.UUID]:
    """Create a row in each tenant table for ``org``; returns {table: row id}."""
    tag = uuid.uuid4().hex[:8]
    ids: dict[str, uuid.UUID] = {}
    with engine.begin() as conn:
        user = _insert(conn, "users", email=f"u-{tag}@example.test", password_hash="x")
        plugin = conn.execute(
            text(
                "INSERT INTO plugins (id, slug, name, version, auth_type) "
                "VALUES (:id, :slug, 'Seed', '1', 'api_key') "
                "ON CONFLICT (slug) DO UPDATE SET name = EXCLUDED.name RETURNING id"
            ),
            {"id": uuid.uuid4(), "slug": "seed-plugin"},
        ).scalar_one()
        ids["org_members"] = _insert(conn, "org_members", org_id=org, user_id=user, role="owner")
        ids["org_invitations"] = _insert(
            conn,
            "org_invitations",
            org_id=org,
            email=f"invited-{tag}@example.test",
            role="viewer",
            expires_at=datetime.now(UTC) + timedelta(days=7),
        )
        ids["api_keys"] = _insert(
            conn, "api_keys", org_id=org, name="k", public_id=tag, secret_hash="h", role="viewer"
        )
        ids["plugin_instances"] = _insert(conn, "plugin_instances", org_id=org, plugin_id=plugin)
        ids["stores"] = _insert(
            conn, "stores", org_id=org, platform="shopify", name="S", external_id=f"shop-{tag}"
        )
        ids["products"] = _insert(conn, "products", org_id=org, title="P")
        ids["product_variants"] = _insert(
            conn,
            "product_variants",
            org_id=org,
            product_id=ids["products"],
            sku="SKU-1",
            price=10,
        )
        ids["listings"] = _insert(
            conn, "listings", org_id=org, product_id=ids["products"], store_id=ids["stores"]
        )
        ids["jobs"] = _insert(
            conn, "jobs", org_id=org, store_id=ids["stores"], job_type="noop", queue="default"
        )
        ids["job_logs"] = _insert(
            conn, "job_logs", org_id=org, job_id=ids["jobs"], level="info", message="m"
        )
        ids["approvals"] = _insert(
            conn,
            "approvals",
            org_id=org,
            resource_type="listing",
            action="delete",
            expires_at=datetime(2999, 1, 1, tzinfo=UTC),
        )
        ids["approval_policies"] = _insert(
            conn, "approval_policies", org_id=org, resource_type="listing", action="delete"
        )
        ids["orders"] = _insert(
            conn, "orders", org_id=org, store_id=ids["stores"], external_id="o-1"
        )
        ids["order_lines"] = _insert(
            conn, "order_lines", org_id=org, order_id=ids["orders"], sku="SKU-1", quantity=1
        )
        ids["webhooks"] = _insert(
            conn,
            "webhooks",
            org_id=org,
            store_id=ids["stores"],
            platform="shopify",
            delivery_id="d-1",
            topic="orders/create",
            body_sha256="0" * 64,
        )
        ids["stock_movements"] = _insert(
            conn,
            "stock_movements",
            org_id=org,
            variant_id=ids["product_variants"],
            sku="SKU-1",
            kind="manual_set",
            delta=0,
            on_hand_after=0,
            actor="system",
        )
        ids["listing_stock"] = _insert(
            conn, "listing_stock", org_id=org, listing_id=ids["listings"], sku="SKU-1"
        )
        ids["job_items"] = _insert(
            conn, "job_items", org_id=org, job_id=ids["jobs"], key="SKU-1", status="ok"
        )
        ids["catalog_imports"] = _insert(conn, "catalog_imports", org_id=org)
        ids["catalog_import_rows"] = _insert(
            conn,
            "catalog_import_rows",
            org_id=org,
            import_id=ids["catalog_imports"],
            line=2,
            sku="SKU-1",
            data="{}",
        )
        ids["audit_logs"] = _insert(
            conn,
            "audit_logs",
            org_id=org,
            actor_type="system",
            action="seed",
            resource_type="org",
        )
        ids["notification_channels"] = _insert(
            conn,
            "notification_channels",
            org_id=org,
            name="ops",
            kind="webhook",
            target="http://127.0.0.1:9/hook",
        )
        ids["notification_deliveries"] = _insert(
            conn,
            "notification_deliveries",
            org_id=org,
            channel_id=ids["notification_channels"],
            event="test",
            message_id=f"msg_{tag}",
        )
        ids["store_adoptions"] = _insert(
            conn, "store_adoptions", org_id=org, store_id=ids["stores"]
        )
        ids["store_adoption_listings"] = _insert(
            conn,
            "store_adoption_listings",
            org_id=org,
            adoption_id=ids["store_adoptions"],
            position=1,
            external_id="L-1",
            variants="[]",
        )
        ids["product_images"] = _insert(
            conn,
            "product_images",
            org_id=org,
            product_id=ids["products"],
            position=0,
            content_type="image/png",
            size_bytes=1,
            sha256="0" * 64,
            storage_key=f"images/{org}/seed-{tag}.png",
        )
        ids["fulfilments"] = _insert(
            conn,
            "fulfilments",
            org_id=org,
            order_id=ids["orders"],
            carrier="UPS",
            tracking_number=f"T-{tag}",
        )
        ids["order_returns"] = _insert(
            conn,
            "order_returns",
            org_id=org,
            order_id=ids["orders"],
            order_line_id=ids["order_lines"],
            source_key=f"seed-{tag}",
            quantity=1,
            restocked=1,
        )
    missing = set(TENANT_TABLES) - set(ids)
    assert not missing, f"seed_org does not cover {sorted(missing)}: add them here"
    return ids
