"""Approvals (owners decide, never their own request) and the policies that ask for them."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.context import hub
from api.pagination import page
from api.security import access, org_scope, tx
from fusion.approvals import service as approvals
from fusion.approvals.models import Approval, ApprovalPolicy
from fusion.auth.models import Role
from schemas.approvals import (
    ApprovalPageSchema,
    ApprovalQuerySchema,
    ApprovalSchema,
    DecisionSchema,
    PolicyCreateSchema,
    PolicyPageSchema,
    PolicySchema,
    PolicyUpdateSchema,
)
from schemas.common import PageQuerySchema

blp = Blueprint("approvals", __name__, url_prefix="/orgs", description="Approvals.")


@blp.get("/<uuid:org_id>/approvals")
@blp.arguments(ApprovalQuerySchema, location="query")
@blp.response(200, ApprovalPageSchema)
@org_scope(Role.VIEWER)
def list_approvals(query: dict[str, Any], org_id: uuid.UUID) -> dict[str, Any]:
    """Approvals, newest first, filtered by status or resource type."""
    filters = {k: query[k] for k in ("status", "resource_type")}
    return page(tx(), Approval, limit=query["limit"], cursor=query["cursor"], filters=filters)


@blp.get("/<uuid:org_id>/approvals/<uuid:approval_id>")
@blp.response(200, ApprovalSchema)
@org_scope(Role.VIEWER)
def get_approval(org_id: uuid.UUID, approval_id: uuid.UUID) -> Approval:
    """One approval."""
    return approvals.get_approval(tx(), approval_id)


@blp.post("/<uuid:org_id>/approvals/<uuid:approval_id>/decision")
@blp.arguments(DecisionSchema)
@blp.response(200, ApprovalSchema)
@org_scope(Role.OWNER)
def decide(body: dict[str, Any], org_id: uuid.UUID, approval_id: uuid.UUID) -> Approval:
    """Approve (the job is enqueued) or reject (nothing runs). Not your own request."""
    return approvals.decide(
        tx(),
        access(),
        approval_id,
        approve=body["decision"] == "approve",
        note=body["note"],
        settings=hub().settings,
    )


@blp.route("/<uuid:org_id>/approval-policies")
class Policies(MethodView):
    @blp.arguments(PageQuerySchema, location="query")
    @blp.response(200, PolicyPageSchema)
    @org_scope(Role.VIEWER)
    def get(self, query: dict[str, Any], org_id: uuid.UUID) -> dict[str, Any]:
        """The organisation's approval policies."""
        return page(tx(), ApprovalPolicy, limit=query["limit"], cursor=query["cursor"])

    @blp.arguments(PolicyCreateSchema)
    @blp.response(201, PolicySchema)
    @org_scope(Role.OWNER)
    def post(self, body: dict[str, Any], org_id: uuid.UUID) -> ApprovalPolicy:
        """Require approval for one action on one resource type."""
        return approvals.create_policy(tx(), access(), **body)


@blp.route("/<uuid:org_id>/approval-policies/<uuid:policy_id>")
class Policy(MethodView):
    @blp.response(200, PolicySchema)
    @org_scope(Role.VIEWER)
    def get(self, org_id: uuid.UUID, policy_id: uuid.UUID) -> ApprovalPolicy:
        """One policy."""
        return approvals.get_policy(tx(), policy_id)

    @blp.arguments(PolicyUpdateSchema)
    @blp.response(200, PolicySchema)
    @org_scope(Role.OWNER)
    def patch(
        self, body: dict[str, Any], org_id: uuid.UUID, policy_id: uuid.UUID
    ) -> ApprovalPolicy:
        """Change a policy."""
        return approvals.update_policy(tx(), access(), policy_id, **body)

    @blp.response(204)
    @org_scope(Role.OWNER)
    def delete(self, org_id: uuid.UUID, policy_id: uuid.UUID) -> None:
        """Remove a policy."""
        approvals.delete_policy(tx(), access(), policy_id)
