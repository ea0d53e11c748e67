"""The organisation's audit log (read only; owners)."""

from __future__ import annotations

import uuid
from typing import Any

from flask_smorest import Blueprint
from sqlalchemy import select

from api.pagination import page
from api.security import org_scope, tx
from fusion.audit.models import AuditLog
from fusion.auth.models import Role
from schemas.audit import AuditPageSchema, AuditQuerySchema

blp = Blueprint("audit", __name__, url_prefix="/orgs", description="Audit log.")


@blp.get("/<uuid:org_id>/audit")
@blp.arguments(AuditQuerySchema, location="query")
@blp.response(200, AuditPageSchema)
@org_scope(Role.OWNER)
def list_audit(query: dict[str, Any], org_id: uuid.UUID) -> dict[str, Any]:
    """Who did what, newest first, filtered by action or resource."""
    filters = {k: query[k] for k in ("action", "resource_type", "resource_id")}
    return page(
        tx(),
        AuditLog,
        limit=query["limit"],
        cursor=query["cursor"],
        filters=filters,
        stmt=select(AuditLog),
    )
