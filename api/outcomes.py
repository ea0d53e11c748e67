"""The 202 answer of every asynchronous action: the job, or the approval it waits for."""

from __future__ import annotations

from flask import Response, jsonify

from fusion.approvals.models import Approval
from fusion.jobs.models import Job
from schemas.approvals import OutcomeSchema


def outcome(result: Job | Approval) -> dict[str, object]:
    if isinstance(result, Approval):
        return {"kind": "approval", "job": None, "approval": result}
    return {"kind": "job", "job": result, "approval": None}


def accepted(result: Job | Approval) -> Response:
    """A 202 response carrying ``result`` (for views whose main response is not 202)."""
    response = jsonify(OutcomeSchema().dump(outcome(result)))
    response.status_code = 202
    return response
