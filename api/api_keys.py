"""Org API keys for machine clients (owners manage them in person; the key is shown once)."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.pagination import page
from api.security import access, org_scope, tx
from fusion.auth.models import ApiKey, Role
from fusion.orgs import service as orgs
from fusion.orgs.service import KeyView
from schemas.orgs import (
    ApiKeyCreatedSchema,
    ApiKeyCreateSchema,
    ApiKeyPageSchema,
    ApiKeyQuerySchema,
    ApiKeySchema,
    RevokedKeysSchema,
)

blp = Blueprint("api_keys", __name__, url_prefix="/orgs", description="API keys.")


@blp.route("/<uuid:org_id>/api-keys")
class ApiKeys(MethodView):
    @blp.arguments(ApiKeyQuerySchema, location="query")
    @blp.response(200, ApiKeyPageSchema)
    @org_scope(Role.OWNER, people_only=True)
    def get(self, query: dict[str, Any], org_id: uuid.UUID) -> dict[str, Any]:
        """The organisation's keys (never their secrets), each with who created it."""
        found = page(tx(), ApiKey, limit=query["limit"], cursor=query["cursor"])
        return {**found, "items": orgs.describe_keys(tx(), found["items"])}

    @blp.arguments(ApiKeyCreateSchema)
    @blp.response(201, ApiKeyCreatedSchema)
    @org_scope(Role.OWNER, people_only=True)
    def post(self, body: dict[str, Any], org_id: uuid.UUID) -> dict[str, Any]:
        """Create a key acting for you, never above your role. The response holds the key
        itself, once: store it now."""
        issued = orgs.create_api_key(tx(), access(), **body)
        [view] = orgs.describe_keys(tx(), [issued.key])
        return {**vars(view), "key": issued.plaintext}


@blp.post("/<uuid:org_id>/api-keys/revoke-all")
@blp.response(200, RevokedKeysSchema)
@org_scope(Role.OWNER, people_only=True)
def revoke_all(org_id: uuid.UUID) -> dict[str, Any]:
    """Revoke every key of the organisation at once; they stop working on their next call."""
    revoked = orgs.revoke_all_api_keys(tx(), access())
    return {"revoked": orgs.describe_keys(tx(), revoked)}


@blp.route("/<uuid:org_id>/api-keys/<uuid:key_id>")
class ApiKeyView(MethodView):
    @blp.response(200, ApiKeySchema)
    @org_scope(Role.OWNER, people_only=True)
    def get(self, org_id: uuid.UUID, key_id: uuid.UUID) -> KeyView:
        """One key (never its secret), with who created it."""
        return orgs.get_api_key(tx(), key_id)

    @blp.response(200, ApiKeySchema)
    @org_scope(Role.OWNER, people_only=True)
    def delete(self, org_id: uuid.UUID, key_id: uuid.UUID) -> KeyView:
        """Revoke a key (it stops working at once)."""
        key = orgs.revoke_api_key(tx(), access(), key_id)
        return orgs.describe_keys(tx(), [key])[0]
