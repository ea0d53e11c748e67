"""Approvals: the inbox (what would change, who asked, until when), deciding with a note
(owners, never their own request), and the approval policies."""

from __future__ import annotations

import uuid

from flask import flash, render_template, request
from werkzeug.wrappers import Response

from api.context import hub
from api.pagination import page as keyset
from console import forms, validation
from console.scope import access, back, bp, page, tx
from fusion.approvals import service as approvals
from fusion.approvals.models import Approval, ApprovalPolicy, ApprovalStatus
from fusion.auth.models import Role
from schemas.approvals import DecisionSchema, PolicyCreateSchema


@bp.get("/orgs/<uuid:org_id>/approvals")
@page(Role.VIEWER)
def approvals_page(org_id: uuid.UUID) -> str:
    status = forms.choice("status", ApprovalStatus)
    if "status" not in request.args:
        status = ApprovalStatus.PENDING  # the inbox
    found = keyset(
        tx(), Approval, limit=forms.PAGE_SIZE, cursor=forms.cursor(), filters={"status": status}
    )
    policies = keyset(tx(), ApprovalPolicy, limit=100, cursor=None)
    return render_template(
        "console/approvals.html",
        found=found,
        status=status,
        statuses=list(ApprovalStatus),
        policies=policies["items"],
        more=forms.query_without("cursor"),
    )


@bp.post("/orgs/<uuid:org_id>/approvals/<uuid:approval_id>/decision")
@page(Role.OWNER)
def decide(org_id: uuid.UUID, approval_id: uuid.UUID) -> Response:
    body = validation.load(DecisionSchema(), {k: v for k, v in request.form.items() if k in (
        "decision", "note") and v})  # fmt: skip
    approval = approvals.decide(
        tx(),
        access(),
        approval_id,
        approve=body["decision"] == "approve",
        note=body["note"],
        settings=hub().settings,
    )
    flash(f"Approval {approval.status.value}.", "ok")
    return back("console.approvals_page", org_id=org_id)


@bp.post("/orgs/<uuid:org_id>/approval-policies")
@page(Role.OWNER)
def create_policy(org_id: uuid.UUID) -> Response:
    raw: dict[str, object] = {
        "resource_type": request.form.get("resource_type", ""),
        "action": request.form.get("action", ""),
        "requires_approval": request.form.get("requires_approval") == "on",
    }
    if request.form.get("expires_after_s"):
        raw["expires_after_s"] = request.form["expires_after_s"]
    approvals.create_policy(tx(), access(), **validation.load(PolicyCreateSchema(), raw))
    flash("Policy saved.", "ok")
    return back("console.approvals_page", org_id=org_id)


@bp.post("/orgs/<uuid:org_id>/approval-policies/<uuid:policy_id>/delete")
@page(Role.OWNER)
def delete_policy(org_id: uuid.UUID, policy_id: uuid.UUID) -> Response:
    approvals.delete_policy(tx(), access(), policy_id)
    flash("Policy removed.", "ok")
    return back("console.approvals_page", org_id=org_id)
