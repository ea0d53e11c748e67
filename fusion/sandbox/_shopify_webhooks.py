"""Webhooks in the Shopify sandbox (a mixin of ShopifySandbox): the subscriptions an app
makes (``webhookSubscriptions``, ``webhookSubscriptionCreate``) and the signed order
deliveries (orders, refunds) sent to them and to the shop's ``webhook_url``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from fusion.sandbox._shopify_state import ResolveContext, Shop, connection, user_error
from fusion.security.signing import shopify_hmac

if TYPE_CHECKING:
    from fusion.sandbox.server import Delivery

ORDER_TOPIC = "orders/create"


class WebhookSubscriptions:
    """Subscription resolvers and order deliveries; the sandbox provides ids and delivery."""

    if TYPE_CHECKING:

        def _gid(self, kind: str) -> str: ...

        def deliver(
            self,
            *,
            url: str,
            body: bytes,
            headers: Mapping[str, str],
            delivery_id: str,
            topic: str,
        ) -> Delivery: ...

    def _resolve_webhookSubscriptions(self, ctx: ResolveContext, args: dict[str, Any]) -> Any:
        nodes = [
            s
            for s in ctx.shop.subscriptions.values()
            if (not args.get("uri") or s["uri"] == args["uri"])
            and (not args.get("topics") or s["topic"] in args["topics"])
        ]
        return connection(nodes[: int(args.get("first") or 50)])

    def _resolve_webhookSubscriptionCreate(self, ctx: ResolveContext, args: dict[str, Any]) -> Any:
        topic = args["topic"]
        uri = str((args.get("webhookSubscription") or {}).get("uri") or "")
        if urlsplit(uri).scheme not in ("http", "https"):
            return {
                "webhookSubscription": None,
                "userErrors": [user_error(["webhookSubscription", "uri"], "Address is invalid")],
            }
        if any(s["topic"] == topic and s["uri"] == uri for s in ctx.shop.subscriptions.values()):
            return {
                "webhookSubscription": None,
                "userErrors": [
                    user_error(
                        ["webhookSubscription", "uri"],
                        "Address for this topic has already been taken",
                    )
                ],
            }
        subscription = {
            "id": self._gid("WebhookSubscription"),
            "topic": topic,
            "uri": uri,
            "format": "JSON",
            "createdAt": datetime.now(UTC).isoformat(),
        }
        ctx.shop.subscriptions[subscription["id"]] = subscription
        return {"webhookSubscription": subscription, "userErrors": []}

    def send_order_webhooks(self, shop: Shop, order: Mapping[str, Any]) -> None:
        """Deliver ``orders/create`` for ``order`` to the shop's ``webhook_url`` and to every
        subscription to ORDERS_CREATE, each its own signed delivery."""
        self.send_webhooks(shop, ORDER_TOPIC, order)

    def send_webhooks(self, shop: Shop, topic: str, payload: Mapping[str, Any]) -> None:
        """Deliver ``topic`` (``orders/create``, ``refunds/create``) with ``payload`` to the
        shop's ``webhook_url`` and to every subscription to it (``ORDERS_CREATE``, ...), each
        its own signed delivery naming the order."""
        subscribed = topic.upper().replace("/", "_")
        urls = [s["uri"] for s in shop.subscriptions.values() if s["topic"] == subscribed]
        if shop.webhook_url:
            urls.insert(0, shop.webhook_url)
        body = json.dumps(payload).encode()
        order_id = payload["order_id"] if "order_id" in payload else payload["id"]
        for url in urls:
            delivery_id = str(uuid.uuid4())
            self.deliver(
                url=url,
                body=body,
                delivery_id=delivery_id,
                topic=topic,
                headers={
                    "X-Shopify-Topic": topic,
                    "X-Shopify-Hmac-Sha256": shopify_hmac(shop.webhook_secret, body),
                    "X-Shopify-Shop-Domain": shop.domain,
                    "X-Shopify-API-Version": "2026-07",
                    "X-Shopify-Webhook-Id": delivery_id,
                    "X-Shopify-Event-Id": str(uuid.uuid4()),
                    "X-Shopify-Triggered-At": datetime.now(UTC).isoformat(),
                    "X-Shopify-Order-Id": str(order_id),
                },
            )
