"""Flower says what a job is: the Celery message of a job, as published to the real broker,
shows its job type, org and store in ``argsrepr`` (for a bulk message its types and count),
and never a payload value. Read back from Redis exactly as Flower and the workers get it."""

from __future__ import annotations

import json
import uuid
from typing import Any

from flask import Flask
from sqlalchemy import Engine

from fusion.db.session import Database
from fusion.jobs import service
from fusion.jobs.dispatch import JobLabel
from tests.api.conftest import Team
from tests.api.kit import make_kit
from workers.dispatcher import argsrepr


def _messages(broker: Any, queue: str) -> list[dict[str, Any]]:
    """Every message waiting on ``queue`` (kombu keeps one list per priority level)."""
    found = []
    for key in broker.keys(f"{queue}*"):
        if key == queue.encode() or key.startswith(queue.encode() + b"\x06\x16"):
            found += [json.loads(raw) for raw in broker.lrange(key, 0, -1)]
    return found


def test_a_jobs_message_names_its_type_org_and_store_never_its_payload(
    app: Flask, team_a: Team, admin_engine: Engine
) -> None:
    kit = make_kit(admin_engine, team_a.org_id, None)
    secret_sku = f"PAYLOAD-ONLY-{uuid.uuid4().hex}"
    # When an operator enqueues a push of one SKU through the API
    body = {
        "job_type": "real_time_inventory",
        "store_id": str(kit["store_id"]),
        "payload": {"skus": [secret_sku]},
    }
    answer = team_a.operator.post(f"/orgs/{team_a.org_id}/jobs", json=body)
    assert answer.status_code == 202, answer.json
    job_id = answer.json["id"]
    # Then its message, as the broker holds it, says what the job is
    broker = app.extensions["fusion"].redis
    mine = [m for m in _messages(broker, "shopify") if job_id in m["headers"]["argsrepr"]]
    assert len(mine) == 1
    headers = mine[0]["headers"]
    assert headers["task"] == "fusion.run_job"
    assert headers["argsrepr"] == (
        f"{job_id} real_time_inventory org={team_a.org_id} store={kit['store_id']}"
    )
    # And nothing of the payload is anywhere in it (the body carries the id only)
    assert secret_sku not in json.dumps(mine[0])


def test_a_bulk_message_names_its_job_types_and_count(
    app: Flask, team_a: Team, admin_engine: Engine, database: Database
) -> None:
    kit = make_kit(admin_engine, team_a.org_id, None)
    broker = app.extensions["fusion"].redis
    before = {json.dumps(m) for m in _messages(broker, "shopify")}
    # When 128 jobs of two types are enqueued at once (a backlog: the bulk lane, spread
    # over 16 messages of 8)
    specs = [
        {"job_type": kind, "store_id": kit["store_id"]}
        for _ in range(64)
        for kind in ("list_products", "sync_inventory")
    ]
    with database.org_session(team_a.org_id) as session:
        service.enqueue_many(session, org_id=team_a.org_id, specs=specs)
    new = [m for m in _messages(broker, "shopify") if json.dumps(m) not in before]
    # Then each message says how many jobs of which types, and of how many orgs
    assert len(new) == 16
    assert {m["headers"]["task"] for m in new} == {"fusion.run_jobs"}
    assert {m["headers"]["argsrepr"] for m in new} == {
        "8 jobs (list_products x4, sync_inventory x4) in 1 org(s)"
    }


def test_jobs_without_a_label_show_their_ids_only() -> None:
    # A sweep republishes by id alone: the message shows what Celery would, never a guess
    known, unknown = uuid.uuid4(), uuid.uuid4()
    labels = {known: JobLabel("sync_inventory", uuid.uuid4(), None)}
    assert argsrepr([str(unknown)], labels) == repr((str(unknown),))
    assert argsrepr([str(known), str(unknown)], labels) == (
        "2 jobs (sync_inventory x1, 1 unlabelled) in 1 org(s)"
    )
    assert argsrepr([str(unknown), str(uuid.uuid4())], {}) == "2 jobs"
