"""Liveness and readiness probes."""

from __future__ import annotations

from flask import Blueprint
from sqlalchemy import text

from api.context import hub
from api.security import public

blp = Blueprint("health", __name__)


@blp.get("/healthz")
@public
def healthz() -> tuple[dict[str, str], int]:
    """The process is alive."""
    return {"status": "ok"}, 200


@blp.get("/readyz")
@public
def readyz() -> tuple[dict[str, object], int]:
    """The database and the broker both answer."""
    checks: dict[str, str] = {}
    try:
        with hub().database.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready; the reason is not a secret
        checks["database"] = f"unavailable: {type(exc).__name__}"
    try:
        hub().redis.ping()
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"unavailable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return {"status": "ready" if ready else "unavailable", "checks": checks}, 200 if ready else 503
