"""What a person does to a store, audited in the same transaction: connect it, change it,
rotate its credentials, forget it.

The API and the console call these; ``fusion.stores.service`` holds the unaudited primitives
(the hub's own fixtures and tools use them). Each call checks the caller's role itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from fusion.audit.service import audited_update, record, snapshot
from fusion.auth.access import Access
from fusion.auth.models import Role
from fusion.catalog import deletes
from fusion.catalog.deletes import LeftLive
from fusion.config import Settings
from fusion.inventory import channels
from fusion.stores import catalog_rules, service
from fusion.stores.models import Store
from fusion.webhooks import service as webhooks

# What a store's audit entries hold of it (never a credential: see audit.SECRET_FIELDS).
FIELDS = (
    "platform",
    "name",
    "external_id",
    "base_url",
    "status",
    "rate_limit_config",
    "settings",
    "stock_rules",
    "catalog_rules",
)


def connect(session: Session, access: Access, *, settings: Settings, **fields: Any) -> Store:
    """Connect a store (``service.connect_store``, which raises as it documents; stock rules
    checked first), ask its platform for order events when the hub can receive them
    (``subscribe_order_events``), start its order-queue listener when it names one and audit
    ``store.connect``. Owner only."""
    access.require(Role.OWNER)
    if "stock_rules" in fields:
        fields["stock_rules"] = channels.checked_rules(fields["stock_rules"])
    store = service.connect_store(session, org_id=access.org_id, settings=settings, **fields)
    webhooks.subscribe_on_connect(session, settings, store)
    webhooks.start_order_listener(session, settings, store)
    record(
        session,
        org_id=access.org_id,
        actor=access.principal,
        action="store.connect",
        resource_type="store",
        resource_id=store.id,
        after=snapshot(store, FIELDS),
    )
    return store


def update(
    session: Session,
    access: Access,
    store_id: uuid.UUID,
    changes: Mapping[str, Any],
    *,
    settings: Settings,
) -> tuple[Store, list[LeftLive]]:
    """Rename, pause or disconnect a store, merge setting changes (None unsets one) or replace
    its stock rules (every listed SKU is pushed again), audited as ``store.update``. Returns
    the store and, when this disconnected it, the listings left live and unmanaged (audited
    as ``store.disconnect``). Raises NotFound, ValidationFailed for bad settings or rules,
    PermissionDenied below operator."""
    access.require(Role.OPERATOR)
    store = service.get_store(session, store_id)
    body = dict(changes)
    disconnecting = body.get("status") == deletes.DISCONNECTED != store.status
    if "settings" in body:
        body["settings"] = service.settings_after(store, body["settings"], settings=settings)
    if "stock_rules" in body:
        body["stock_rules"] = channels.checked_rules(body["stock_rules"])
    audited_update(
        session,
        org_id=access.org_id,
        actor=access.principal,
        obj=store,
        changes=body,
        action="store.update",
        resource_type="store",
        fields=FIELDS,
    )
    if "stock_rules" in body:
        channels.store_rules_changed(session, access.org_id, store.id)
    webhooks.start_order_listener(session, settings, store)
    left = deletes.disconnected(session, access, store) if disconnecting else []
    return store, left


def rotate_credentials(
    session: Session,
    access: Access,
    store_id: uuid.UUID,
    *,
    settings: Settings,
    credentials: Mapping[str, str] | None = None,
    webhook_secret: str | None = None,
) -> Store:
    """Replace a store's credentials and/or webhook secret (``service.update_credentials``),
    audited as ``store.credentials`` naming what was rotated, never a value. Owner only."""
    access.require(Role.OWNER)
    store = service.update_credentials(
        session,
        store=service.get_store(session, store_id),
        credentials=credentials,
        webhook_secret=webhook_secret,
        settings=settings,
    )
    given = {"credentials": credentials, "webhook_secret": webhook_secret}
    record(
        session,
        org_id=access.org_id,
        actor=access.principal,
        action="store.credentials",
        resource_type="store",
        resource_id=store.id,
        after={"rotated": sorted(k for k, v in given.items() if v is not None)},
    )
    return store


def delete(session: Session, access: Access, store_id: uuid.UUID) -> list[LeftLive]:
    """Forget a store (``deletes.delete_store``, audited as ``store.delete``): returns the
    listings it left live and unmanaged. Owner only."""
    access.require(Role.OWNER)
    return deletes.delete_store(session, access, store_id, fields=FIELDS)


def set_catalog_rules(
    session: Session, access: Access, store_id: uuid.UUID, rules: Mapping[str, Any]
) -> Store:
    """Replace the store's catalog rules (its price rule and its category and attribute
    mappings, ``fusion.stores.catalog_rules``), audited as ``store.catalog_rules``. They apply
    from the store's next publish or update. Raises NotFound, ValidationFailed naming the
    key, PermissionDenied below operator."""
    access.require(Role.OPERATOR)
    store = service.get_store(session, store_id)
    before = snapshot(store, ("catalog_rules",))
    store.catalog_rules = catalog_rules.checked(rules)
    session.flush()
    record(
        session,
        org_id=access.org_id,
        actor=access.principal,
        action="store.catalog_rules",
        resource_type="store",
        resource_id=store.id,
        before=before,
        after=snapshot(store, ("catalog_rules",)),
    )
    return store
