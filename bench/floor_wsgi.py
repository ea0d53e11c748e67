"""bench/api.py's floor for ``POST /orgs/{org}/jobs``: the hello-world plus the enqueue's own
round trips, with nothing of the hub's framework around them.

    gunicorn floor_wsgi:app   (PYTHONPATH=bench; fusion.runtime.services.api_server_command)

A Flask app like ``hello_wsgi`` that, for each ``POST /orgs/<org>/jobs``, does the database and
broker work the hub's endpoint does, in the same order and with the hub's own statements
(compiled once from the hub's constructs, so they stay the hub's as it changes): one
transaction on a psycopg2 connection of its thread, as the application role (RLS applies),
holding the org stamp, the caller's account and role in one read, the enqueue's one statement
(jobs, their log lines, the backlog count) and the audit entry; after the commit, the job's
Celery message published by the hub's own dispatcher. The token is the hub's
(``decode_access_token``, remembered as the hub remembers it); a store's platform is read once
per process, as the hub's enqueue remembers it.

What it leaves out is what bench/api.py's ``post_job_floor`` measures the hub against: Flask
routing through flask-smorest and webargs, marshmallow's parsing and rendering, the
SQLAlchemy session and ORM, the preflight, the quota and the job-type rules. The hub's figure
divided by this one is what those cost; this one divided by the hello-world's is what the
enqueue's round trips cost on this machine, whatever framework serves them.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg2
from flask import Flask, Response, request
from sqlalchemy.dialects.postgresql import psycopg2 as pg_dialect

from fusion.audit import service as audit
from fusion.auth import sessions
from fusion.auth.models import Role
from fusion.auth.tokens import decode_access_token
from fusion.config import Settings
from fusion.db.session import ORG_SETTING
from fusion.jobs import lanes
from fusion.jobs import service as jobs
from fusion.jobs.dispatch import JobLabel
from fusion.jobs.queues import queue_for
from workers.dispatcher import CeleryDispatcher, producer_app

SETTINGS = Settings.from_env()
_DIALECT = pg_dialect.dialect()
STAMP = "SELECT set_config(%(name)s, %(org)s, true)"
# The hub's prepared statements (fusion.db.prepared): prepared on each new connection, then
# executed by name, as the hub does.
PREPARED = (sessions._ACTIVE_MEMBER, jobs._INSERT, audit._INSERT)
MEMBER, ENQUEUE, AUDIT = (str(p.execute.compile(dialect=_DIALECT)) for p in PREPARED)
ENQUEUERS = {Role.OPERATOR, Role.OWNER}

app = Flask("floor")
_local = threading.local()
_platform_of: dict[str, str] = {}
_publisher = producer_app()
_publisher.conf.broker_url = SETTINGS.redis_url
_dispatcher = CeleryDispatcher(_publisher)


def _connection() -> Any:
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        url = SETTINGS.app_database_url or ""
        conn = _local.conn = psycopg2.connect(
            url.replace("postgresql+psycopg2://", "postgresql://")
        )
        with conn, conn.cursor() as cur:
            for prepared in PREPARED:
                cur.execute(prepared.definition, {})
    return conn


def _refused(status: int, detail: str) -> Response:
    return Response(
        json.dumps({"status": status, "detail": detail}), status, mimetype="application/json"
    )


@app.get("/healthz")
def healthz() -> Response:
    return Response("ok")


@app.post("/orgs/<org_id>/jobs")
def enqueue(org_id: str) -> Response:
    body = request.get_json()
    _, _, token = request.headers.get("Authorization", "").partition(" ")
    claims = decode_access_token(SETTINGS.jwt_secret, token)
    store_id = body["store_id"]
    now = datetime.now(UTC)
    job_id = uuid.uuid4()
    conn = _connection()
    with conn, conn.cursor() as cur:
        cur.execute(STAMP, {"name": ORG_SETTING, "org": org_id})
        cur.execute(
            MEMBER,
            {
                "user_id": str(claims.user_id),
                "session_id": str(claims.session_id),
                "org_id": org_id,
            },
        )
        member = cur.fetchone()
        names = [c.name for c in cur.description]
        if member is None or not member[names.index("is_active")] or member[-2]:
            return _refused(401, "user unknown, inactive or signed out")
        if Role(member[-1]) not in ENQUEUERS:
            return _refused(403, "operator or above")
        platform = _platform_of.get(store_id)
        if platform is None:
            cur.execute("SELECT platform FROM stores WHERE id = %s", (store_id,))
            platform = _platform_of[store_id] = cur.fetchone()[0]
        queue = queue_for(platform)
        row = {
            "id": str(job_id), "org_id": org_id, "store_id": store_id,
            "job_type": body["job_type"],
            "queue": queue, "priority": 0, "payload": body.get("payload") or {},
            "max_attempts": SETTINGS.max_attempts, "scheduled_at": now.isoformat(),
            "dispatched_at": now.isoformat(), "idempotency_key": None,
            "created_by": str(claims.user_id),
        }  # fmt: skip
        entry = {"job_id": str(job_id), "message": "enqueued", "n": 0,
                 "data": {"status": "pending", "queue": queue}}  # fmt: skip
        cur.execute(
            ENQUEUE,
            {"rows": json.dumps([row]), "entries": json.dumps([entry]), "count_backlog": True},
        )
        inserted = cur.fetchone()
        job = dict(zip([c.name for c in cur.description], inserted, strict=True))
        after = {"job_type": row["job_type"], "store_id": store_id, "payload": row["payload"]}
        audit_entry = {
            "id": str(uuid.uuid4()), "org_id": org_id, "actor_type": "user",
            "actor_id": str(claims.user_id), "action": "job.enqueue", "resource_type": "job",
            "resource_id": str(job_id), "before": None, "after": json.dumps(after),
        }  # fmt: skip
        cur.execute(AUDIT, audit_entry)
    lane = lanes.lane_for(priority=0, backlog=(job.pop("waiting") or 0) + 1)
    label = JobLabel(row["job_type"], uuid.UUID(org_id), uuid.UUID(store_id))
    _dispatcher.publish([(job_id, queue)], lane, {job_id: label})
    return Response(json.dumps(job, default=str), 202, mimetype="application/json")
