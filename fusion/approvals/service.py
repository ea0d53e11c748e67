"""Approval requests, decisions and the per-org policies that ask for them.

This module holds the rules the API needs now: when an action needs approval, how a request is
recorded, and the four-eyes decision that enqueues the approved job. Expiry (beat) and the
events of the full workflow build on these functions.

Four eyes compare people, not credentials. A request records the person who asked
(``requested_by``: the caller, or the creator of the API key that called) and the key, if one
was used (``requested_by_key_id``). Only a person decides: API keys never decide approvals,
so neither a requester's own key nor anyone else's can wave a change through, and nobody
decides a request they made, in person or through a key. What an approval releases is the
content snapshotted when it was asked for (``content``, see ``fusion.approvals.binding``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fusion.approvals.binding import content_digest
from fusion.approvals.expiry import approval_data
from fusion.approvals.models import Approval, ApprovalPolicy, ApprovalStatus
from fusion.audit.service import audited_delete, audited_update, record, snapshot
from fusion.auth.access import Access, Principal
from fusion.auth.models import Role
from fusion.config import Settings
from fusion.errors import Conflict, NotFound, PermissionDenied
from fusion.notifications import service as notifications
from fusion.notifications.models import Event

DEFAULT_EXPIRY_S = 86400
DELETES = frozenset({"delete", "delist"})
APPROVAL_FIELDS = (
    "resource_type",
    "resource_id",
    "action",
    "status",
    "requested_by",
    "requested_by_key_id",
    "decided_by",
    "job_id",
    "content_digest",
)
KEYS_NEVER_DECIDE = "API keys cannot decide approvals: a person must, signed in as themselves."
FOUR_EYES = (
    "An approval must be decided by someone other than the person who asked for it "
    "(directly or through one of their API keys)."
)
POLICY_FIELDS = (
    "resource_type",
    "action",
    "requires_approval",
    "auto_approve_threshold",
    "expires_after_s",
)


def policy_for(session: Session, resource_type: str, action: str) -> ApprovalPolicy | None:
    return session.scalar(
        select(ApprovalPolicy).where(
            ApprovalPolicy.resource_type == resource_type, ApprovalPolicy.action == action
        )
    )


def _under_threshold(threshold: Mapping[str, Any], amounts: Mapping[str, Any]) -> bool:
    """True when every limit of the threshold is given and respected (``max_price`` bounds
    ``price``, ``max_quantity`` bounds ``quantity``); an empty threshold never waives."""
    if not threshold:
        return False
    for key, limit in threshold.items():
        name = key.removeprefix("max_")
        value = amounts.get(name)
        if value is None or Decimal(str(value)) > Decimal(str(limit)):
            return False
    return True


def needs_approval(
    session: Session,
    access: Access,
    *,
    resource_type: str,
    action: str,
    amounts: Mapping[str, Any] | None = None,
) -> bool:
    """Whether ``access`` must ask before doing ``action``: an operator's deletes always need
    approval; otherwise the org's policy decides, waived under its threshold."""
    if action in DELETES and access.role is Role.OPERATOR:
        return True
    policy = policy_for(session, resource_type, action)
    if policy is None or not policy.requires_approval:
        return False
    return not _under_threshold(policy.auto_approve_threshold, amounts or {})


def request_approval(
    session: Session,
    access: Access,
    *,
    resource_type: str,
    resource_id: uuid.UUID | None,
    action: str,
    payload: Mapping[str, Any],
    content: Mapping[str, Any],
) -> Approval:
    """A pending approval carrying the change (``payload``: job_type, store_id, job_payload)
    and the snapshot of what it would do (``content``: JSON-able, with its digest), asked for
    by the caller's person (and key, if one called), expiring after the policy's period."""
    principal = access.principal
    return _ask(
        session,
        org_id=access.org_id,
        actor=principal,
        resource_type=resource_type,
        resource_id=resource_id,
        action=action,
        payload=payload,
        content=content,
        requested_by=principal.person_id,
        requested_by_key_id=principal.actor_id if principal.is_key else None,
    )


def _ask(
    session: Session,
    *,
    org_id: uuid.UUID,
    actor: Principal | None,
    resource_type: str,
    resource_id: uuid.UUID | None,
    action: str,
    payload: Mapping[str, Any],
    content: Mapping[str, Any],
    requested_by: uuid.UUID | None,
    requested_by_key_id: uuid.UUID | None,
    extra: Mapping[str, Any] | None = None,
) -> Approval:
    policy = policy_for(session, resource_type, action)
    expires_s = policy.expires_after_s if policy else DEFAULT_EXPIRY_S
    approval = Approval(
        org_id=org_id,
        resource_type=resource_type,
        resource_id=resource_id,
        action=action,
        payload=dict(payload),
        requested_by=requested_by,
        requested_by_key_id=requested_by_key_id,
        content=dict(content),
        content_digest=content_digest(content),
        expires_at=datetime.now(UTC) + timedelta(seconds=expires_s),
    )
    session.add(approval)
    session.flush()
    record(
        session,
        org_id=org_id,
        actor=actor,
        action="approval.request",
        resource_type="approval",
        resource_id=approval.id,
        after={**snapshot(approval, APPROVAL_FIELDS), **(extra or {})},
    )
    # The architecture's "notify approvers": the org's channels for approval.waiting.
    notifications.emit(
        session,
        org_id=org_id,
        event=Event.APPROVAL_WAITING,
        data=approval_data(approval),
        dedup_key=f"approval.waiting:{approval.id}",
        link_path=f"/orgs/{org_id}/approvals/{approval.id}",
    )
    return approval


def ask_again(session: Session, approval: Approval, content: Mapping[str, Any]) -> Approval:
    """A new pending approval for the same change as ``approval``, on behalf of the same
    requester, carrying ``content`` (what the change would do now); the system asks, and the
    audit entry names the approval it supersedes. ``approval`` itself is left as it is."""
    return _ask(
        session,
        org_id=approval.org_id,
        actor=None,
        resource_type=approval.resource_type,
        resource_id=approval.resource_id,
        action=approval.action,
        payload={**approval.payload, "supersedes": str(approval.id)},
        content=content,
        requested_by=approval.requested_by,
        requested_by_key_id=approval.requested_by_key_id,
        extra={"supersedes": str(approval.id), "reason": "the content changed after approval"},
    )


def get_approval(session: Session, approval_id: uuid.UUID) -> Approval:
    approval = session.get(Approval, approval_id)
    if approval is None:
        raise NotFound("No such approval.")
    return approval


def decide(
    session: Session,
    access: Access,
    approval_id: uuid.UUID,
    *,
    approve: bool,
    note: str | None,
    settings: Settings | None = None,
) -> Approval:
    """Approve or reject a pending approval. Approving enqueues the job its payload describes
    (``settings`` give it its default max_attempts, as in ``fusion.jobs.service.enqueue``).

    Raises PermissionDenied when the caller is an API key (keys never decide), NotFound for an
    unknown id, Conflict if it is no longer pending (decided, or past its expiry), and
    PermissionDenied when the decider is the person who asked (four eyes).
    """
    if access.user_id is None:
        raise PermissionDenied(KEYS_NEVER_DECIDE)
    approval = session.scalar(select(Approval).where(Approval.id == approval_id).with_for_update())
    if approval is None:
        raise NotFound("No such approval.")
    if approval.status is not ApprovalStatus.PENDING:
        raise Conflict(f"This approval is already {approval.status.value}.")
    now = datetime.now(UTC)
    if approval.expires_at <= now:
        raise Conflict("This approval has expired.")
    if approval.requested_by is not None and approval.requested_by == access.user_id:
        raise PermissionDenied(FOUR_EYES)
    before = snapshot(approval, APPROVAL_FIELDS)
    approval.status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
    approval.decided_by = access.user_id
    approval.decided_at = now
    approval.decision_note = note
    if approve and approval.payload.get("job_type"):
        from fusion.jobs import service as jobs

        job = jobs.enqueue(
            session,
            org_id=access.org_id,
            job_type=str(approval.payload["job_type"]),
            payload=approval.payload.get("job_payload") or {},
            store_id=_uuid_or_none(approval.payload.get("store_id")),
            created_by=approval.requested_by,
            settings=settings,
        )
        approval.job_id = job.id
    session.flush()
    record(
        session,
        org_id=access.org_id,
        actor=access.principal,
        action="approval.approve" if approve else "approval.reject",
        resource_type="approval",
        resource_id=approval.id,
        before=before,
        after=snapshot(approval, APPROVAL_FIELDS),
    )
    return approval


def _uuid_or_none(value: Any) -> uuid.UUID | None:
    return uuid.UUID(str(value)) if value else None


def get_policy(session: Session, policy_id: uuid.UUID) -> ApprovalPolicy:
    policy = session.get(ApprovalPolicy, policy_id)
    if policy is None:
        raise NotFound("No such approval policy.")
    return policy


def create_policy(session: Session, access: Access, **fields: Any) -> ApprovalPolicy:
    """A policy for one (resource_type, action). Raises Conflict if the org already has one."""
    policy = ApprovalPolicy(org_id=access.org_id, **fields)
    session.add(policy)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise Conflict("A policy for this resource type and action exists.") from None
    record(
        session,
        org_id=access.org_id,
        actor=access.principal,
        action="policy.create",
        resource_type="approval_policy",
        resource_id=policy.id,
        after=snapshot(policy, POLICY_FIELDS),
    )
    return policy


def update_policy(
    session: Session, access: Access, policy_id: uuid.UUID, **changes: Any
) -> ApprovalPolicy:
    """Change the given fields of a policy (others unchanged)."""
    policy = get_policy(session, policy_id)
    audited_update(
        session,
        org_id=access.org_id,
        actor=access.principal,
        obj=policy,
        changes=changes,
        action="policy.update",
        resource_type="approval_policy",
        fields=POLICY_FIELDS,
    )
    return policy


def delete_policy(session: Session, access: Access, policy_id: uuid.UUID) -> None:
    policy = get_policy(session, policy_id)
    audited_delete(
        session,
        org_id=access.org_id,
        actor=access.principal,
        obj=policy,
        action="policy.delete",
        resource_type="approval_policy",
        fields=POLICY_FIELDS,
    )


def check_released(
    session: Session, *, job_id: uuid.UUID, content: Mapping[str, Any]
) -> Approval | None:
    """Whether job ``job_id`` may do what it is about to (``content``, built as the domain
    built the approval's snapshot): None when no approval released the job, or when the
    content is what was approved; otherwise the new pending approval asked for on the
    requester's behalf (an approval from before content was snapshotted is asked again too).
    The released approval is locked and keeps its status; an ``approval.content_changed``
    entry names the job and the new approval. The caller must then not act, and must commit
    for the new approval to exist."""
    approval = session.scalar(select(Approval).where(Approval.job_id == job_id).with_for_update())
    if approval is None:
        return None
    digest = content_digest(content)
    if approval.content_digest == digest:
        return None
    again = ask_again(session, approval, content)
    record(
        session,
        org_id=approval.org_id,
        actor=None,
        action="approval.content_changed",
        resource_type="approval",
        resource_id=approval.id,
        before={"content_digest": approval.content_digest},
        after={"content_digest": digest, "job_id": str(job_id), "asked_again": str(again.id)},
    )
    return again


def asked_again_reason(again: Approval) -> str:
    """Why a released job did nothing, naming the approval ``again`` asks in its place."""
    was = again.payload.get("supersedes", "?")
    return (
        f"what approval {was} approved has changed since: nothing was done; "
        f"approval {again.id} asks again with the current content"
    )
