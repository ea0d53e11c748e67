"""Jobs through the API: Idempotency-Key (also concurrently) gives one job; filters, detail,
cancel and re-run; listing actions answer 202 with the job or the approval."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine

from tests.api.conftest import Team, count_rows
from tests.api.kit import make_kit


def test_idempotency_key_gives_one_job_even_concurrently(
    app: Flask, team_a: Team, admin_engine: Engine
) -> None:
    kit = make_kit(admin_engine, team_a.org_id, None)
    path = f"/orgs/{team_a.org_id}/jobs"
    body = {"job_type": "list_products", "store_id": str(kit["store_id"])}
    headers = {**team_a.operator.headers, "Idempotency-Key": "sync-2026-11-28"}

    broker = app.extensions["fusion"].redis
    queued_before = _queued(broker, "shopify")

    def post(_: int) -> tuple[int, str]:
        response = app.test_client().post(path, json=body, headers=headers)
        return response.status_code, response.json["id"]

    # When the same key is sent twice in a row and then eight times at once
    first = post(0)
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(post, range(8)))
    # Then every answer is 202 with the same job, and one row exists
    assert {status for status, _ in [first, *answers]} == {202}
    assert {job for _, job in answers} == {first[1]}
    assert count_rows(admin_engine, "jobs", idempotency_key="sync-2026-11-28") == 1
    # And one message was published for it (after the commit), not one per request
    assert _queued(broker, "shopify") == queued_before + 1
    # A different key is a different job
    other = team_a.operator.post(path, json=body, headers={"Idempotency-Key": "other"})
    assert other.status_code == 202 and other.json["id"] != first[1]


def _queued(broker: Any, queue: str) -> int:
    # kombu's Redis transport keeps one list per priority level: "<queue>", "<queue>\x06\x16N".
    return sum(
        int(broker.llen(key))
        for key in broker.keys(f"{queue}*")
        if key == queue.encode() or key.startswith(queue.encode() + b"\x06\x16")
    )


def test_job_list_filters_detail_cancel_rerun(team_a: Team, admin_engine: Engine) -> None:
    kit = make_kit(admin_engine, team_a.org_id, None)
    org = f"/orgs/{team_a.org_id}"
    viewer, operator = team_a.viewer, team_a.operator
    failed = viewer.get(f"{org}/jobs?status=failed").json["items"]
    assert [j["id"] for j in failed] == [str(kit["failed_job_id"])]
    by_store = viewer.get(f"{org}/jobs?store_id={kit['store_id']}&job_type=list_products")
    assert len(by_store.json["items"]) == 2
    assert viewer.get(f"{org}/jobs?status=nonsense").status_code == 422
    detail = viewer.get(f"{org}/jobs/{kit['job_id']}")
    assert detail.status_code == 200 and isinstance(detail.json["logs"], list)
    cancelled = operator.post(f"{org}/jobs/{kit['job_id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    assert operator.post(f"{org}/jobs/{kit['job_id']}/cancel").status_code == 409
    rerun = operator.post(f"{org}/jobs/{kit['failed_job_id']}/rerun")
    assert rerun.status_code == 200 and rerun.json["status"] == "pending"
    assert count_rows(admin_engine, "audit_logs", action="job.cancel") == 1


def test_unknown_job_type_and_bad_payload_are_422(team_a: Team, admin_engine: Engine) -> None:
    kit = make_kit(admin_engine, team_a.org_id, None)
    path = f"/orgs/{team_a.org_id}/jobs"
    unknown = team_a.operator.post(path, json={"job_type": "mine_bitcoin"})
    assert unknown.status_code in (404, 422)
    bad = team_a.operator.post(
        path,
        json={
            "job_type": "real_time_inventory",
            "store_id": str(kit["store_id"]),
            "payload": {"skus": "not-a-list"},
        },
    )
    assert bad.status_code == 422 and "payload.skus" in bad.json["errors"]
    assert count_rows(admin_engine, "jobs", org_id=team_a.org_id) == 2  # only the kit's


@pytest.mark.parametrize(
    ("job_type", "payload"),
    [
        ("delete_product", {"listing_id": "{listing_id}"}),
        ("create_product", {"listing_id": "{listing_id}"}),
        ("update_product", {"listing_id": "{listing_id}"}),
        ("delete_catalog_item", {"resource_type": "product", "resource_id": "{product_id}"}),
        ("process_webhook", {"webhook_id": "{product_id}"}),
        ("consume_order_queue", {}),
    ],
)
def test_work_that_needs_its_own_path_cannot_be_enqueued_directly(
    team_a: Team, admin_engine: Engine, job_type: str, payload: dict[str, str]
) -> None:
    # An operator's delete or delist waits for approval; the jobs endpoint is no way round it.
    kit = make_kit(admin_engine, team_a.org_id, None)
    body = {
        "job_type": job_type,
        "store_id": str(kit["store_id"]),
        "payload": {k: v.format(**{n: str(x) for n, x in kit.items()}) for k, v in payload.items()},
    }
    refused = team_a.owner.post(f"/orgs/{team_a.org_id}/jobs", json=body)
    assert refused.status_code == 422
    assert "is not enqueued directly" in " ".join(refused.json["errors"]["job_type"])
    assert count_rows(admin_engine, "jobs", org_id=team_a.org_id) == 2  # only the kit's
    assert (
        team_a.viewer.get(f"/orgs/{team_a.org_id}/products/{kit['product_id']}").status_code == 200
    )


def test_publish_answers_with_the_job_or_the_approval(
    client: FlaskClient, team_a: Team, admin_engine: Engine
) -> None:
    kit = make_kit(admin_engine, team_a.org_id, None)
    org = f"/orgs/{team_a.org_id}"
    # Without a policy: 202 with the create_product job, listing staged
    published = team_a.operator.post(f"{org}/listings/{kit['listing_id']}/publish")
    assert published.status_code == 202
    assert published.json["kind"] == "job"
    assert published.json["job"]["job_type"] == "create_product"
    listing = team_a.viewer.get(f"{org}/listings/{kit['listing_id']}").json
    assert listing["status"] == "staged"
    # With a policy requiring approval for delist: 202 with the approval, no job
    policy = team_a.owner.post(
        f"{org}/approval-policies", json={"resource_type": "listing", "action": "update"}
    )
    assert policy.status_code == 201
    jobs_before = count_rows(admin_engine, "jobs", org_id=team_a.org_id)
    asked = team_a.operator.post(f"{org}/listings/{kit['published_listing_id']}/update")
    assert asked.status_code == 202 and asked.json["kind"] == "approval"
    assert count_rows(admin_engine, "jobs", org_id=team_a.org_id) == jobs_before
    approval = asked.json["approval"]["id"]
    # The requester cannot approve their own request (four eyes) - an owner can
    decided = team_a.owner.post(
        f"{org}/approvals/{approval}/decision", json={"decision": "approve"}
    )
    assert decided.status_code == 200 and decided.json["job_id"]
    assert count_rows(admin_engine, "jobs", org_id=team_a.org_id) == jobs_before + 1
    again = team_a.owner.post(f"{org}/approvals/{approval}/decision", json={"decision": "reject"})
    assert again.status_code == 409


def test_owner_cannot_approve_own_request(team_a: Team, admin_engine: Engine) -> None:
    kit = make_kit(admin_engine, team_a.org_id, team_a.owner.user_id)
    answer = team_a.owner.post(
        f"/orgs/{team_a.org_id}/approvals/{kit['approval_id']}/decision",
        json={"decision": "approve"},
    )
    assert answer.status_code == 403
