"""Org API keys for machine clients (owners manage them; the key is shown once)."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.pagination import page
from api.security import access, org_scope, tx
from fusion.auth.models import ApiKey, Role
from fusion.orgs import service as orgs
from schemas.orgs import (
    ApiKeyCreatedSchema,
    ApiKeyCreateSchema,
    ApiKeyPageSchema,
    ApiKeyQuerySchema,
    ApiKeySchema,
)

blp = Blueprint("api_keys", __name__, url_prefix="/orgs", description="API keys.")


@blp.route("/<uuid:org_id>/api-keys")
class ApiKeys(MethodView):
    @blp.arguments(ApiKeyQuerySchema, location="query")
    @blp.response(200, ApiKeyPageSchema)
    @org_scope(Role.OWNER)
    def get(self, query: dict[str, Any], org_id: uuid.UUID) -> dict[str, Any]:
        """The organisation's keys (never their secrets)."""
        return page(tx(), ApiKey, limit=query["limit"], cursor=query["cursor"])

    @blp.arguments(ApiKeyCreateSchema)
    @blp.response(201, ApiKeyCreatedSchema)
    @org_scope(Role.OWNER)
    def post(self, body: dict[str, Any], org_id: uuid.UUID) -> dict[str, Any]:
        """Create a key. The response holds the key itself, once: store it now."""
        issued = orgs.create_api_key(tx(), access(), **body)
        fields = ApiKeySchema().fields
        return {**{name: getattr(issued.key, name) for name in fields}, "key": issued.plaintext}


@blp.route("/<uuid:org_id>/api-keys/<uuid:key_id>")
class ApiKeyView(MethodView):
    @blp.response(200, ApiKeySchema)
    @org_scope(Role.OWNER)
    def delete(self, org_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey:
        """Revoke a key (it stops working at once)."""
        return orgs.revoke_api_key(tx(), access(), key_id)
