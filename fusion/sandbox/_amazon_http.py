"""The SP-API request/answer conventions of the Amazon sandbox: the ``{"errors": [...]}`` shape,
the wrapper that authenticates, spends usage-plan quota and adds the ``x-amzn-*`` headers, and
the query/body checks against the published models."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from fusion.sandbox import _amazon_contract as contract
from fusion.sandbox import _amazon_state as st

_ERROR_CODES = {
    400: "InvalidInput",
    403: "Unauthorized",
    404: "NotFound",
    405: "InvalidInput",
    413: "RequestTooLarge",
    415: "UnsupportedMediaType",
    429: "QuotaExceeded",
    500: "InternalFailure",
    503: "ServiceUnavailable",
}


class ApiError(Exception):
    """An SP-API error answer: status plus the ``{"errors": [...]}`` body."""

    def __init__(self, status: int, message: str, details: str = "", code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _ERROR_CODES.get(status, "InvalidInput")
        self.message = message
        self.details = details


def sp_error(status: int, message: str, details: str = "", code: str = "") -> Response:
    """An SP-API error answer: ``{"errors": [{code, message, details}]}``."""
    error = {
        "code": code or _ERROR_CODES.get(status, "InvalidInput"),
        "message": message,
        "details": details,
    }
    return Response(
        json.dumps({"errors": [error]}),
        status=status,
        mimetype="application/json",
        headers={"x-amzn-RequestId": str(uuid.uuid4()), "x-amzn-ErrorType": error["code"]},
    )


def api(operation: str) -> Callable[..., Callable[..., Response]]:
    """Wrap a handler: authenticate, validate the path's seller, spend the operation's quota,
    render ApiError in the SP-API shape, and add the request-id and rate-limit headers."""

    def wrap(handler: Callable[..., Any]) -> Callable[..., Response]:
        @functools.wraps(handler)
        def run(self: Any, request: Request, **values: Any) -> Response:
            try:
                with self.lock:
                    seller = self._authenticate(request, values.get("seller_id"))
                    rate = self._spend(seller, operation)
                    result = handler(self, request, seller, **values)
            except ApiError as exc:
                response = sp_error(exc.status, exc.message, exc.details, exc.code)
                if exc.status == 429:
                    self.knobs.note_throttled()
                    response.headers["x-amzn-RateLimit-Limit"] = exc.details
                return response
            status, body = result if isinstance(result, tuple) else (200, result)
            payload = b"" if status == 204 else json.dumps(body)  # No Content has no body
            response = Response(payload, status=status, mimetype="application/json")
            response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
            response.headers["x-amzn-RateLimit-Limit"] = f"{rate:g}"
            return response

        return run

    return wrap


def require_json(request: Request, document: str, definition: str) -> dict[str, Any]:
    """The JSON body, checked against ``definition`` of the model ``document`` (when present);
    raises ApiError 400 ``InvalidInput`` naming what is wrong."""
    try:
        body = json.loads(request.get_data() or b"")
    except ValueError as exc:
        raise ApiError(400, "Request body is not valid JSON.", str(exc)[:200]) from exc
    errors = contract.definition_errors(document, definition, body)
    if errors or not isinstance(body, dict):
        raise ApiError(400, "Request has missing or invalid parameters.", "; ".join(errors[:5]))
    return body


def marketplace(request: Request, seller: st.Seller, name: str = "marketplaceIds") -> None:
    """Require the ``name`` query parameter to list the seller's marketplace (else 400)."""
    ids = [m for v in request.args.getlist(name) for m in v.split(",") if m]
    if not ids:
        raise ApiError(400, f"Missing required parameter '{name}'.")
    if seller.marketplace_id not in ids:
        raise ApiError(400, f"Invalid marketplace identifier(s): {','.join(ids)}.")
