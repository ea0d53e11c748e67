"""Stores: connected with credentials that are encrypted at once and never returned."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.context import hub
from api.pagination import page
from api.security import access, org_scope, tx
from fusion.audit.service import audited_update, record, snapshot
from fusion.auth.models import Role
from fusion.catalog import deletes
from fusion.errors import JobError, ValidationFailed
from fusion.inventory import channels
from fusion.stores import service as stores
from fusion.stores.client import check_connection
from fusion.stores.models import Store
from fusion.webhooks import service as webhooks
from schemas.store_settings import parse_settings
from schemas.stores import (
    ConnectionTestSchema,
    CredentialsSchema,
    StoreChangeSchema,
    StoreConnectSchema,
    StoreDeletedSchema,
    StorePageSchema,
    StoreQuerySchema,
    StoreSchema,
    StoreUpdateSchema,
)

blp = Blueprint("stores", __name__, url_prefix="/orgs", description="Connected stores.")
FIELDS = (
    "platform",
    "name",
    "external_id",
    "base_url",
    "status",
    "rate_limit_config",
    "settings",
    "stock_rules",
)


@dataclass(frozen=True)
class _Changed:
    """A store as StoreChangeSchema renders it: the store's own fields and what it left."""

    store: Store
    left_live_and_unmanaged: list[dict[str, Any]] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@blp.route("/<uuid:org_id>/stores")
class Stores(MethodView):
    @blp.arguments(StoreQuerySchema, location="query")
    @blp.response(200, StorePageSchema)
    @org_scope(Role.VIEWER)
    def get(self, query: dict[str, Any], org_id: uuid.UUID) -> dict[str, Any]:
        """The organisation's stores (credentials are never included)."""
        return page(
            tx(),
            Store,
            limit=query["limit"],
            cursor=query["cursor"],
            filters={"platform": query["platform"], "status": query["status"]},
        )

    @blp.arguments(StoreConnectSchema)
    @blp.response(201, StoreSchema)
    @org_scope(Role.OWNER)
    def post(self, body: dict[str, Any], org_id: uuid.UUID) -> Store:
        """Connect a store. Credentials are encrypted before they are stored. With a public
        URL set (`FUSION_PUBLIC_URL`) and a webhook secret given, a `subscribe_order_events`
        job asks the platform to send the store's order events here; a store naming its order
        queue (Amazon's `sqs_queue_url`) gets its `consume_order_queue` listener at once."""
        if "stock_rules" in body:
            body["stock_rules"] = channels.checked_rules(body["stock_rules"])
        store = stores.connect_store(tx(), org_id=org_id, settings=hub().settings, **body)
        webhooks.subscribe_on_connect(tx(), hub().settings, store)
        webhooks.start_order_listener(tx(), hub().settings, store)
        record(
            tx(),
            org_id=org_id,
            actor=access().principal,
            action="store.connect",
            resource_type="store",
            resource_id=store.id,
            after=snapshot(store, FIELDS),
        )
        return store


@blp.route("/<uuid:org_id>/stores/<uuid:store_id>")
class StoreView(MethodView):
    @blp.response(200, StoreSchema)
    @org_scope(Role.VIEWER)
    def get(self, org_id: uuid.UUID, store_id: uuid.UUID) -> Store:
        """One store."""
        return stores.get_store(tx(), store_id)

    @blp.arguments(StoreUpdateSchema)
    @blp.response(200, StoreChangeSchema)
    @org_scope(Role.OPERATOR)
    def patch(self, body: dict[str, Any], org_id: uuid.UUID, store_id: uuid.UUID) -> _Changed:
        """Rename a store, pause or disconnect it, change its settings (a setting given as null
        goes back to the plugin's default) or its stock rules (the figures they change are
        pushed at once). Disconnecting never takes the merchant's products down:
        `left_live_and_unmanaged` lists the listings it leaves on sale."""
        store = stores.get_store(tx(), store_id)
        disconnecting = body.get("status") == deletes.DISCONNECTED != store.status
        if "settings" in body:
            body["settings"] = stores.settings_after(
                store, parse_settings(store.platform, body["settings"]), settings=hub().settings
            )
        if "stock_rules" in body:
            body["stock_rules"] = channels.checked_rules(body["stock_rules"])
        audited_update(
            tx(),
            org_id=org_id,
            actor=access().principal,
            obj=store,
            changes=body,
            action="store.update",
            resource_type="store",
            fields=FIELDS,
        )
        if "stock_rules" in body:
            channels.store_rules_changed(tx(), org_id, store.id)
        webhooks.start_order_listener(tx(), hub().settings, store)
        if not disconnecting:
            return _Changed(store)
        left = deletes.disconnected(tx(), access(), store)
        return _Changed(store, [item.as_dict() for item in left])

    @blp.response(200, StoreDeletedSchema)
    @org_scope(Role.OWNER)
    def delete(self, org_id: uuid.UUID, store_id: uuid.UUID) -> dict[str, Any]:
        """Forget a store with its credentials, listings and jobs. The merchant's products
        stay on the platform: `left_live_and_unmanaged` lists the listings left on sale there,
        which the hub no longer manages (the `store.delete` audit entry lists them too)."""
        left = deletes.delete_store(tx(), access(), store_id, fields=FIELDS)
        return {
            "store_id": store_id,
            "left_live_and_unmanaged": [item.as_dict() for item in left],
        }


@blp.route("/<uuid:org_id>/stores/<uuid:store_id>/credentials")
class StoreCredentials(MethodView):
    @blp.arguments(CredentialsSchema)
    @blp.response(200, StoreSchema)
    @org_scope(Role.OWNER)
    def put(self, body: dict[str, Any], org_id: uuid.UUID, store_id: uuid.UUID) -> Store:
        """Replace a store's credentials and/or webhook secret (write only)."""
        store = stores.update_credentials(
            tx(), store=stores.get_store(tx(), store_id), settings=hub().settings, **body
        )
        record(
            tx(),
            org_id=org_id,
            actor=access().principal,
            action="store.credentials",
            resource_type="store",
            resource_id=store.id,
            after={"rotated": sorted(body)},
        )
        return store


@blp.route("/<uuid:org_id>/stores/<uuid:store_id>/test-connection")
class StoreConnectionTest(MethodView):
    @blp.response(200, ConnectionTestSchema)
    @org_scope(Role.OPERATOR, transaction=False)
    def post(self, org_id: uuid.UUID, store_id: uuid.UUID) -> dict[str, Any]:
        """Call the platform once with the store's credentials, within a hard deadline and no
        transaction open. The platform's answer is not echoed (it could carry anything);
        only whether it worked."""
        try:
            count = check_connection(
                hub().settings, hub().database, org_id=org_id, store_id=store_id
            )
        except ValidationFailed as exc:
            return {"ok": False, "detail": f"The store is incomplete: {', '.join(exc.fields)}."}
        except JobError as exc:
            return {
                "ok": False,
                "detail": f"The platform refused or did not answer ({type(exc).__name__}).",
            }
        return {"ok": True, "detail": f"Connected; the store holds {count} product(s)."}
