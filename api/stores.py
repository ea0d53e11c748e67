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
from fusion.actions import stores as actions
from fusion.auth.models import Role
from fusion.errors import JobError, ValidationFailed
from fusion.stores import service as stores
from fusion.stores.client import check_connection
from fusion.stores.models import Store
from schemas.catalog_rules import CatalogRulesSchema, CatalogRulesShownSchema, shown_rules
from schemas.store_settings import parse_settings
from schemas.stores import (
    ConnectionTestSchema,
    CredentialsSchema,
    StoreChangeSchema,
    StoreConnectSchema,
    StoreDeletedSchema,
    StoreDetailSchema,
    StorePageSchema,
    StoreQuerySchema,
    StoreSchema,
    StoreUpdateSchema,
)

blp = Blueprint("stores", __name__, url_prefix="/orgs", description="Connected stores.")


@dataclass(frozen=True)
class _Shown:
    """A store as a schema renders it: the store's own fields and what the view adds."""

    store: Store
    extra: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        if name in self.extra:
            return self.extra[name]
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
        job asks the platform to send the store's order events here."""
        return actions.connect(tx(), access(), settings=hub().settings, **body)


@blp.route("/<uuid:org_id>/stores/<uuid:store_id>")
class StoreView(MethodView):
    @blp.response(200, StoreDetailSchema)
    @org_scope(Role.VIEWER)
    def get(self, org_id: uuid.UUID, store_id: uuid.UUID) -> _Shown:
        """One store, with its rate-limit state: the bucket as the workers last wrote it, its
        fill, and how many calls were throttled in the last hour."""
        store = stores.get_store(tx(), store_id)
        return _Shown(store, {"rate_limit": stores.rate_limit(store, hub().redis)})

    @blp.arguments(StoreUpdateSchema)
    @blp.response(200, StoreChangeSchema)
    @org_scope(Role.OPERATOR)
    def patch(self, body: dict[str, Any], org_id: uuid.UUID, store_id: uuid.UUID) -> _Shown:
        """Rename a store, pause or disconnect it, change its settings (a setting given as null
        goes back to the plugin's default) or its stock rules (the figures they change are
        pushed at once). Disconnecting never takes the merchant's products down:
        `left_live_and_unmanaged` lists the listings it leaves on sale."""
        if "settings" in body:
            platform = stores.get_store(tx(), store_id).platform
            body["settings"] = parse_settings(platform, body["settings"])
        store, left = actions.update(tx(), access(), store_id, body, settings=hub().settings)
        return _Shown(store, {"left_live_and_unmanaged": [item.as_dict() for item in left]})

    @blp.response(200, StoreDeletedSchema)
    @org_scope(Role.OWNER)
    def delete(self, org_id: uuid.UUID, store_id: uuid.UUID) -> dict[str, Any]:
        """Forget a store with its credentials, listings and jobs. The merchant's products
        stay on the platform: `left_live_and_unmanaged` lists the listings left on sale there,
        which the hub no longer manages (the `store.delete` audit entry lists them too)."""
        left = actions.delete(tx(), access(), store_id)
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
        return actions.rotate_credentials(tx(), access(), store_id, settings=hub().settings, **body)


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


@blp.route("/<uuid:org_id>/stores/<uuid:store_id>/catalog-rules")
class StoreCatalogRules(MethodView):
    @blp.response(200, CatalogRulesShownSchema)
    @org_scope(Role.VIEWER)
    def get(self, org_id: uuid.UUID, store_id: uuid.UUID) -> dict[str, Any]:
        """The store's price rule and its mappings of the hub's categories and variant
        attributes to the platform's."""
        return shown_rules(stores.get_store(tx(), store_id).catalog_rules)

    @blp.arguments(CatalogRulesSchema)
    @blp.response(200, CatalogRulesShownSchema)
    @org_scope(Role.OPERATOR)
    def put(self, body: dict[str, Any], org_id: uuid.UUID, store_id: uuid.UUID) -> dict[str, Any]:
        """Replace the store's catalog rules (audited as `store.catalog_rules`). They apply
        to the store's next publish and update: a listing's price is its SKU's override here,
        else the hub's price marked up and rounded; its category and variant attributes go
        out under the platform's names mapped here."""
        store = actions.set_catalog_rules(tx(), access(), store_id, body)
        return shown_rules(store.catalog_rules)
