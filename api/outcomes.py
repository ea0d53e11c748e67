"""The 202 answer of every asynchronous action: the job, or the approval it waits for."""

from __future__ import annotations

from flask import Response, jsonify

from fusion.approvals.models import Approval
from fusion.catalog.deletes import Deletion
from fusion.jobs.models import Job
from schemas.approvals import OutcomeSchema
from schemas.catalog import DeleteOutcomeSchema


def outcome(result: Job | Approval) -> dict[str, object]:
    if isinstance(result, Approval):
        return {"kind": "approval", "job": None, "approval": result}
    return {"kind": "job", "job": result, "approval": None}


def accepted(result: Job | Approval) -> Response:
    """A 202 response carrying ``result`` (for views whose main response is not 202)."""
    response = jsonify(OutcomeSchema().dump(outcome(result)))
    response.status_code = 202
    return response


def deletion_accepted(result: Approval | Deletion) -> Response | None:
    """None (204) for a delete that is done; else a 202 with the approval it waits for or the
    jobs that come first."""
    if isinstance(result, Deletion) and result.deleted:
        return None
    if isinstance(result, Approval):
        body: dict[str, object] = {**outcome(result), "jobs": [], "refused": []}
    else:
        body = {"kind": "jobs", "job": None, "approval": None, "jobs": result.jobs,
                "refused": result.refused}  # fmt: skip
    response = jsonify(DeleteOutcomeSchema().dump(body))
    response.status_code = 202
    return response
