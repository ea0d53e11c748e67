"""Fresh objects of every resource for one org, written as the owner (fast, no API calls),
and the table of every endpoint with the role it needs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text


def _insert(conn: Any, table: str, **values: Any) -> uuid.UUID:
    values.setdefault("id", uuid.uuid4())
    cols = ", ".join(values)
    params = ", ".join(f":{k}" for k in values)
    conn.execute(text(f"INSERT INTO {table} ({cols}) VALUES ({params})"), values)
    return values["id"]


def make_kit(
    engine: Engine, org: uuid.UUID, requester: uuid.UUID | None, *, bulk: bool = False
) -> dict[str, Any]:
    """One of each resource in ``org``; the approval is requested by ``requester``. With
    ``bulk``, also a completed bulk job with a failed item (a third job: tests that count the
    kit's jobs leave it out)."""
    tag = uuid.uuid4().hex[:10]
    with engine.begin() as conn:
        user = _insert(conn, "users", email=f"kit-{tag}@example.test", password_hash="x")
        kit: dict[str, Any] = {"org_id": org}
        kit["member_id"] = _insert(conn, "org_members", org_id=org, user_id=user, role="viewer")
        kit["invitation_id"] = _insert(
            conn,
            "org_invitations",
            org_id=org,
            email=f"invited-{tag}@example.test",
            role="operator",
            expires_at=datetime.now(UTC) + timedelta(days=7),
        )
        kit["key_id"] = _insert(
            conn,
            "api_keys",
            org_id=org,
            name="k",
            public_id=tag,
            secret_hash="0" * 64,
            role="viewer",
        )
        kit["store_id"] = _insert(
            conn, "stores", org_id=org, platform="shopify", name="S", external_id=f"shop-{tag}"
        )
        kit["product_id"] = _insert(conn, "products", org_id=org, title="P")
        kit["variant_id"] = _insert(
            conn,
            "product_variants",
            org_id=org,
            product_id=kit["product_id"],
            sku=f"SKU-{tag}",
            price=10,
        )
        kit["listing_id"] = _insert(
            conn, "listings", org_id=org, product_id=kit["product_id"], store_id=kit["store_id"]
        )
        product2 = _insert(conn, "products", org_id=org, title="P2")
        kit["published_listing_id"] = _insert(
            conn,
            "listings",
            org_id=org,
            product_id=product2,
            store_id=kit["store_id"],
            status="published",
        )
        kit["job_id"] = _insert(
            conn,
            "jobs",
            org_id=org,
            store_id=kit["store_id"],
            job_type="list_products",
            queue="shopify",
        )
        kit["failed_job_id"] = _insert(
            conn,
            "jobs",
            org_id=org,
            store_id=kit["store_id"],
            job_type="list_products",
            queue="shopify",
            status="failed",
        )
        if bulk:
            kit["bulk_job_id"] = _insert(
                conn,
                "jobs",
                org_id=org,
                store_id=kit["store_id"],
                job_type="bulk_operations",
                queue="shopify",
                status="completed",
            )
            _insert(conn, "job_items", org_id=org, job_id=kit["bulk_job_id"], key=f"SKU-{tag}",
                    status="failed", reason="refused")  # fmt: skip
        kit["import_id"] = _insert(conn, "catalog_imports", org_id=org, rows=1)
        _insert(conn, "catalog_import_rows", org_id=org, import_id=kit["import_id"], line=2,
                sku=f"SKU-{tag}", data=f'{{"sku": "SKU-{tag}"}}')  # fmt: skip
        kit["order_id"] = _insert(
            conn, "orders", org_id=org, store_id=kit["store_id"], external_id=f"o-{tag}"
        )
        kit["order_line_id"] = _insert(
            conn, "order_lines", org_id=org, order_id=kit["order_id"], sku="S", quantity=1,
            external_line_id=f"l-{tag}",
        )  # fmt: skip
        kit["approval_id"] = _insert(
            conn,
            "approvals",
            org_id=org,
            resource_type="listing",
            action="publish",
            requested_by=requester,
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        )
        kit["policy_id"] = _insert(
            conn, "approval_policies", org_id=org, resource_type=f"r-{tag}", action="publish"
        )
        kit["channel_id"] = _insert(
            conn,
            "notification_channels",
            org_id=org,
            name="c",
            kind="webhook",
            target="http://127.0.0.1:9/hook",
        )
        kit["image_id"] = _insert(
            conn,
            "product_images",
            org_id=org,
            product_id=kit["product_id"],
            position=0,
            content_type="image/png",
            size_bytes=1,
            sha256="0" * 64,
            storage_key=f"images/{org}/kit-{tag}.png",
        )
        kit["delivery_id"] = _insert(
            conn, "webhooks", org_id=org, store_id=kit["store_id"], platform="shopify",
            delivery_id=f"d-{tag}", topic="orders/create", body_sha256="0" * 64,
        )  # fmt: skip
        kit["adoption_id"] = _insert(
            conn, "store_adoptions", org_id=org, store_id=kit["store_id"], status="previewed"
        )
        kit["tag"] = tag
        kit["slug"] = "shopify"
    return kit


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # str.format over the kit
    role: str  # the least role allowed
    body: dict[str, Any] | None = None
    ok: dict[str, int] = field(default_factory=dict)  # expected success status by role

    def url(self, kit: dict[str, Any]) -> str:
        return self.path.format(**kit)

    def json(self, kit: dict[str, Any]) -> dict[str, Any] | None:
        if self.body is None:
            return None
        return {k: _formatted(v, kit) for k, v in self.body.items()}

    def expected_success(self, role: str) -> int:
        return self.ok.get(role, self.ok.get("*", 200))


def _formatted(value: Any, kit: dict[str, Any]) -> Any:
    """``value`` with every string in it, however deep, formatted over the kit."""
    if isinstance(value, str):
        return value.format(**kit)
    if isinstance(value, dict):
        return {k: _formatted(v, kit) for k, v in value.items()}
    if isinstance(value, list):
        return [_formatted(v, kit) for v in value]
    return value


ORG = "/orgs/{org_id}"
ENDPOINTS = [
    Endpoint("GET", ORG, "viewer"),
    Endpoint("PATCH", ORG, "owner", {"name": "Renamed"}),
    Endpoint("GET", ORG + "/members", "viewer"),
    Endpoint("GET", ORG + "/invitations", "owner"),
    Endpoint(
        "POST",
        ORG + "/invitations",
        "owner",
        {"email": "kit-{tag}@example.test", "role": "viewer"},
        {"*": 201},
    ),
    Endpoint("DELETE", ORG + "/invitations/{invitation_id}", "owner"),
    Endpoint("GET", ORG + "/members/{member_id}", "viewer"),
    Endpoint("PATCH", ORG + "/members/{member_id}", "owner", {"role": "operator"}),
    Endpoint("DELETE", ORG + "/members/{member_id}", "owner", ok={"*": 204}),
    Endpoint("GET", ORG + "/api-keys", "owner"),
    Endpoint("POST", ORG + "/api-keys", "owner", {"name": "k", "role": "viewer"}, {"*": 201}),
    Endpoint("GET", ORG + "/api-keys/{key_id}", "owner"),
    Endpoint("DELETE", ORG + "/api-keys/{key_id}", "owner"),
    Endpoint("POST", ORG + "/api-keys/revoke-all", "owner"),
    Endpoint("GET", ORG + "/stores", "viewer"),
    Endpoint(
        "POST",
        ORG + "/stores",
        "owner",
        {
            "platform": "shopify",
            "name": "New",
            "external_id": "new-{tag}",
            "base_url": "http://127.0.0.1:9",
            "credentials": {"access_token": "t-{tag}"},
        },
        {"*": 201},
    ),
    Endpoint("GET", ORG + "/stores/{store_id}", "viewer"),
    Endpoint("PATCH", ORG + "/stores/{store_id}", "operator", {"name": "Renamed"}),
    Endpoint("DELETE", ORG + "/stores/{store_id}", "owner"),
    Endpoint(
        "PUT",
        ORG + "/stores/{store_id}/credentials",
        "owner",
        {"credentials": {"access_token": "new-{tag}"}},
    ),
    Endpoint("POST", ORG + "/stores/{store_id}/test-connection", "operator"),
    Endpoint("GET", ORG + "/plugins", "viewer"),
    Endpoint("GET", ORG + "/plugins/{slug}", "viewer"),
    Endpoint("GET", ORG + "/products", "viewer"),
    Endpoint("POST", ORG + "/products", "operator", {"title": "T"}, {"*": 201}),
    Endpoint("GET", ORG + "/products/{product_id}", "viewer"),
    Endpoint("PATCH", ORG + "/products/{product_id}", "operator", {"title": "T2"}),
    Endpoint(
        "DELETE", ORG + "/products/{product_id}", "operator", ok={"owner": 204, "operator": 202}
    ),
    Endpoint("GET", ORG + "/products/{product_id}/variants", "viewer"),
    Endpoint(
        "POST",
        ORG + "/products/{product_id}/variants",
        "operator",
        {"sku": "N-{tag}", "price": "9.99"},
        {"*": 201},
    ),
    Endpoint("GET", ORG + "/variants", "viewer"),
    Endpoint("GET", ORG + "/variants/{variant_id}", "viewer"),
    Endpoint("PATCH", ORG + "/variants/{variant_id}", "operator", {"available_quantity": 7}),
    Endpoint(
        "DELETE", ORG + "/variants/{variant_id}", "operator", ok={"owner": 204, "operator": 202}
    ),
    Endpoint("GET", ORG + "/variants/{variant_id}/stock", "viewer"),
    Endpoint(
        "POST",
        ORG + "/variants/{variant_id}/stock-adjustments",
        "operator",
        {"delta": 5, "reason": "found on the shelf"},
        {"*": 201},
    ),
    Endpoint("GET", ORG + "/listings", "viewer"),
    Endpoint(
        "POST",
        ORG + "/listings",
        "operator",
        {"product_id": "{product_id}", "store_id": "{store_id}"},
        {"*": 409},
    ),
    Endpoint("GET", ORG + "/listings/{listing_id}", "viewer"),
    Endpoint("PATCH", ORG + "/listings/{listing_id}", "operator", {"stock_rules": {"buffer": 2}}),
    Endpoint("GET", ORG + "/listings/{listing_id}/stock", "viewer"),
    Endpoint("POST", ORG + "/listings/{listing_id}/publish", "operator", ok={"*": 202}),
    Endpoint("POST", ORG + "/listings/{published_listing_id}/update", "operator", ok={"*": 202}),
    Endpoint("POST", ORG + "/listings/{published_listing_id}/delist", "operator", ok={"*": 202}),
    Endpoint("GET", ORG + "/jobs", "viewer"),
    Endpoint(
        "POST",
        ORG + "/jobs",
        "operator",
        {"job_type": "list_products", "store_id": "{store_id}"},
        {"*": 202},
    ),
    Endpoint("GET", ORG + "/jobs/{job_id}", "viewer"),
    Endpoint("GET", ORG + "/jobs/failure-groups", "viewer"),
    Endpoint("POST", ORG + "/jobs/bulk-retry", "operator", {"filter": {"status": "failed"}}),
    Endpoint("POST", ORG + "/jobs/bulk-cancel", "operator", {"filter": {"job_type": "x"}}),
    Endpoint("POST", ORG + "/jobs/{job_id}/cancel", "operator"),
    Endpoint("POST", ORG + "/jobs/{failed_job_id}/rerun", "operator"),
    Endpoint("GET", ORG + "/jobs/{bulk_job_id}/items", "viewer"),
    Endpoint("POST", ORG + "/jobs/{bulk_job_id}/retry-failed", "operator", ok={"*": 202}),
    Endpoint("GET", ORG + "/exports/catalog.csv", "viewer"),
    # A JSON body is not a spreadsheet: 422 naming the file, once the role is allowed.
    Endpoint("POST", ORG + "/imports", "operator", {"rows": []}, {"*": 422}),
    Endpoint("GET", ORG + "/imports/{import_id}", "viewer"),
    Endpoint("POST", ORG + "/imports/{import_id}/confirm", "operator", {}, {"*": 202}),
    Endpoint("POST", ORG + "/stores/{store_id}/adoptions", "operator", ok={"*": 202}),
    Endpoint("GET", ORG + "/stores/{store_id}/adoptions/{adoption_id}", "viewer"),
    Endpoint("GET", ORG + "/stores/{store_id}/adoptions/{adoption_id}/listings", "viewer"),
    Endpoint(
        "POST",
        ORG + "/stores/{store_id}/adoptions/{adoption_id}/confirm",
        "operator",
        {"create_unmatched": False},
        {"*": 202},
    ),
    Endpoint("GET", ORG + "/orders", "viewer"),
    Endpoint("GET", ORG + "/orders/{order_id}", "viewer"),
    Endpoint(
        "POST",
        ORG + "/orders/{order_id}/fulfilments",
        "operator",
        {
            "carrier": "UPS",
            "tracking_number": "T-{tag}",
            "lines": [{"line_id": "{order_line_id}", "quantity": 1}],
        },
        {"*": 202},
    ),
    Endpoint(
        "POST",
        ORG + "/orders/{order_id}/returns",
        "operator",
        {"lines": [{"line_id": "{order_line_id}", "quantity": 1}]},
        {"*": 201},
    ),
    Endpoint("GET", ORG + "/approvals", "viewer"),
    Endpoint("GET", ORG + "/approvals/{approval_id}", "viewer"),
    Endpoint("POST", ORG + "/approvals/{approval_id}/decision", "owner", {"decision": "reject"}),
    Endpoint("GET", ORG + "/approval-policies", "viewer"),
    Endpoint(
        "POST",
        ORG + "/approval-policies",
        "owner",
        {"resource_type": "n-{tag}", "action": "publish"},
        {"*": 201},
    ),
    Endpoint("GET", ORG + "/approval-policies/{policy_id}", "viewer"),
    Endpoint(
        "PATCH", ORG + "/approval-policies/{policy_id}", "owner", {"requires_approval": False}
    ),
    Endpoint("DELETE", ORG + "/approval-policies/{policy_id}", "owner", ok={"*": 204}),
    Endpoint("GET", ORG + "/notification-channels", "viewer"),
    Endpoint(
        "POST",
        ORG + "/notification-channels",
        "owner",
        {"name": "n", "kind": "webhook", "target": "http://127.0.0.1:9/h", "events": ["stock.out"]},
        {"*": 201},
    ),
    Endpoint("GET", ORG + "/notification-channels/{channel_id}", "viewer"),
    Endpoint("PATCH", ORG + "/notification-channels/{channel_id}", "owner", {"name": "R"}),
    Endpoint("DELETE", ORG + "/notification-channels/{channel_id}", "owner", ok={"*": 204}),
    Endpoint("POST", ORG + "/notification-channels/{channel_id}/test", "owner", ok={"*": 202}),
    Endpoint("GET", ORG + "/notification-deliveries", "viewer"),
    Endpoint("GET", ORG + "/audit", "owner"),
    Endpoint("GET", ORG + "/events", "viewer"),
    Endpoint("GET", ORG + "/stats/hourly", "viewer"),
    Endpoint("GET", ORG + "/runtime", "viewer"),
    Endpoint("GET", ORG + "/products/{product_id}/images", "viewer"),
    # A JSON body is not an upload: 422 naming the file, once the role is allowed.
    Endpoint("POST", ORG + "/products/{product_id}/images", "operator", {"alt": "x"}, {"*": 422}),
    Endpoint("GET", ORG + "/products/{product_id}/images/{image_id}", "viewer"),
    Endpoint(
        "PUT",
        ORG + "/products/{product_id}/images/order",
        "operator",
        {"image_ids": []},
        {"*": 422},
    ),
    Endpoint("DELETE", ORG + "/products/{product_id}/images/{image_id}", "operator", ok={"*": 204}),
    Endpoint("GET", ORG + "/stores/{store_id}/catalog-rules", "viewer"),
    Endpoint(
        "PUT",
        ORG + "/stores/{store_id}/catalog-rules",
        "operator",
        {"pricing": {"markup_percent": 10}, "categories": {"*": "Mugs"}},
    ),
    Endpoint("GET", ORG + "/webhook-deliveries/{delivery_id}", "viewer"),
]
