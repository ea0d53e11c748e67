"""What the ops console needs of the jobs API: `since` and error-text filters, failures grouped
by store, job type and first line of the error, and bulk retry/cancel by ids or by filter,
capped, audited once per batch and refused to a viewer. Through the HTTP API over Postgres
and Redis; failed jobs are arranged as the engine leaves them (status, error, finished)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import Engine, text

from tests.api.conftest import Team, count_rows
from tests.api.kit import make_kit

OUTAGE = "RetryableError: shopify answered 503 Service Unavailable\nTraceback (last call) ..."
REFUSED = "PermanentError: the platform refused the product: title is blank"


def _jobs(
    engine: Engine,
    org: uuid.UUID,
    store: uuid.UUID | None,
    n: int,
    *,
    job_type: str = "list_products",
    status: str = "failed",
    error: str | None = OUTAGE,
    age: timedelta = timedelta(minutes=5),
) -> list[uuid.UUID]:
    """``n`` jobs as the engine leaves them: ``status``, ``error``, finished ``age`` ago."""
    at = datetime.now(UTC) - age
    rows = [
        {
            "id": uuid.uuid4(),
            "org": org,
            "store": store,
            "type": job_type,
            "status": status,
            "error": error,
            "at": at,
            "finished": at if status in ("failed", "cancelled", "completed") else None,
        }
        for _ in range(n)
    ]
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO jobs (id, org_id, store_id, job_type, queue, status, last_error, "
                "attempts, created_at, finished_at) VALUES (:id, :org, :store, :type, 'shopify', "
                "CAST(:status AS job_status), :error, 5, :at, :finished)"
            ),
            rows,
        )
    return [r["id"] for r in rows]


def _ids(response: Any) -> set[str]:
    assert response.status_code == 200, response.json
    return {j["id"] for j in response.json["items"]}


def test_jobs_filter_by_since_and_error_text(team_a: Team, admin_engine: Engine) -> None:
    kit = make_kit(admin_engine, team_a.org_id, None)
    org, viewer = f"/orgs/{team_a.org_id}", team_a.viewer
    old = _jobs(admin_engine, team_a.org_id, kit["store_id"], 1, age=timedelta(days=2))
    outage = _jobs(admin_engine, team_a.org_id, kit["store_id"], 2)
    refused = _jobs(admin_engine, team_a.org_id, kit["store_id"], 1, error=REFUSED)
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    # since: jobs created at or after it (the kit's jobs are new, the old failure is not)
    recent = _ids(viewer.get(f"{org}/jobs", query_string={"since": since, "status": "failed"}))
    assert recent == {str(i) for i in [*outage, *refused, kit["failed_job_id"]]}
    # error: text anywhere in the last error, whatever its case; % and _ are literal
    found = _ids(viewer.get(f"{org}/jobs", query_string={"error": "503 SERVICE"}))
    assert found == {str(i) for i in [*old, *outage]}
    assert _ids(viewer.get(f"{org}/jobs", query_string={"error": "title is"})) == {str(refused[0])}
    assert _ids(viewer.get(f"{org}/jobs", query_string={"error": "%"})) == set()
    both = viewer.get(f"{org}/jobs", query_string={"error": "503", "since": since})
    assert _ids(both) == {str(i) for i in outage}
    bad = viewer.get(f"{org}/jobs", query_string={"since": "yesterday"})
    assert bad.status_code == 422 and "since" in bad.json["errors"]


def test_failures_are_grouped_and_a_group_is_retried_in_one_audited_call(
    app: Flask, team_a: Team, team_b: Team, admin_engine: Engine
) -> None:
    kit = make_kit(admin_engine, team_a.org_id, None)
    org = f"/orgs/{team_a.org_id}"
    store = kit["store_id"]
    # Given an outage that failed 3 syncs of one store, one refused product, an old failure
    outage = _jobs(admin_engine, team_a.org_id, store, 3, job_type="sync_inventory")
    _jobs(admin_engine, team_a.org_id, store, 1, job_type="sync_inventory", error=REFUSED)
    _jobs(admin_engine, team_a.org_id, store, 2, age=timedelta(days=3))
    _jobs(admin_engine, team_b.org_id, None, 4, job_type="sync_inventory")  # another org's
    # When a viewer asks for the failure groups of the last day
    groups = team_a.viewer.get(f"{org}/jobs/failure-groups")
    assert groups.status_code == 200, groups.json
    shown = [(g["job_type"], g["error_line"], g["count"]) for g in groups.json["groups"]]
    # Then the outage is one group of 3 keyed by the error's first line, largest first, and
    # the refusal a group of its own; nothing older, nothing of the other org (nor the kit's
    # failed job, which never finished)
    assert shown == [
        ("sync_inventory", OUTAGE.splitlines()[0], 3),
        ("sync_inventory", REFUSED, 1),
    ]
    assert {g["store_id"] for g in groups.json["groups"]} == {str(store)}
    # When an operator retries the outage group with the body the group offers
    retry = groups.json["groups"][0]["retry"]
    done = team_a.operator.post(f"{org}/jobs/bulk-retry", json=retry)
    assert done.status_code == 200, done.json
    # Then exactly its 3 jobs are pending again, and one audit entry names them
    assert set(done.json["changed"]) == {str(i) for i in outage}
    assert done.json["count"] == 3 and done.json["capped"] is False
    assert count_rows(admin_engine, "jobs", org_id=team_a.org_id, status="pending") == 1 + 3
    assert count_rows(admin_engine, "audit_logs", action="job.bulk_retry") == 1
    with admin_engine.connect() as conn:
        after = conn.execute(
            text("SELECT after FROM audit_logs WHERE action = 'job.bulk_retry'")
        ).scalar_one()
    assert sorted(after["job_ids"]) == sorted(str(i) for i in outage)
    assert after["filter"]["error_line"] == OUTAGE.splitlines()[0]
    # And the group is gone from the failures
    again = team_a.viewer.get(f"{org}/jobs/failure-groups").json["groups"]
    assert OUTAGE.splitlines()[0] not in [g["error_line"] for g in again]
    # A week back finds the old failures too; more than 7 days is not asked here
    week = (datetime.now(UTC) - timedelta(days=7)).isoformat()
    older = team_a.viewer.get(f"{org}/jobs/failure-groups", query_string={"since": week})
    assert ("list_products", OUTAGE.splitlines()[0], 2) in [
        (g["job_type"], g["error_line"], g["count"]) for g in older.json["groups"]
    ]


def test_bulk_retry_and_cancel_by_ids(team_a: Team, team_b: Team, admin_engine: Engine) -> None:
    kit = make_kit(admin_engine, team_a.org_id, None)
    org = f"/orgs/{team_a.org_id}"
    failed = _jobs(admin_engine, team_a.org_id, kit["store_id"], 2)
    theirs = _jobs(admin_engine, team_b.org_id, None, 1)
    # A retry of two failed jobs, a pending one and another org's: two retried, two skipped
    ids = [*failed, kit["job_id"], *theirs]
    done = team_a.operator.post(f"{org}/jobs/bulk-retry", json={"job_ids": [str(i) for i in ids]})
    assert done.status_code == 200, done.json
    assert set(done.json["changed"]) == {str(i) for i in failed}
    skipped = {s["job_id"]: s["reason"] for s in done.json["skipped"]}
    assert set(skipped) == {str(kit["job_id"]), str(theirs[0])}
    assert "pending" in skipped[str(kit["job_id"])] and "no job" in skipped[str(theirs[0])]
    assert count_rows(admin_engine, "jobs", id=theirs[0], status="failed") == 1
    # Cancel the pending ones (the kit's and the two just retried): one entry for the batch
    pending = [str(kit["job_id"]), *(str(i) for i in failed)]
    cancelled = team_a.operator.post(f"{org}/jobs/bulk-cancel", json={"job_ids": pending})
    assert cancelled.status_code == 200 and len(cancelled.json["changed"]) == 3
    assert count_rows(admin_engine, "jobs", org_id=team_a.org_id, status="cancelled") == 3
    assert count_rows(admin_engine, "audit_logs", action="job.bulk_cancel") == 1
    assert count_rows(admin_engine, "audit_logs", action="job.cancel") == 0


def test_bulk_actions_are_capped_refused_to_viewers_and_validated(
    team_a: Team, admin_engine: Engine
) -> None:
    kit = make_kit(admin_engine, team_a.org_id, None)
    org = f"/orgs/{team_a.org_id}"
    _jobs(admin_engine, team_a.org_id, kit["store_id"], 501)
    body = {"filter": {"error": "503"}}
    # A viewer is refused and nothing changes
    refused = team_a.viewer.post(f"{org}/jobs/bulk-retry", json=body)
    assert refused.status_code == 403
    assert count_rows(admin_engine, "jobs", org_id=team_a.org_id, status="pending") == 1
    # 501 match: the newest 500 are retried and the answer says it was capped
    done = team_a.operator.post(f"{org}/jobs/bulk-retry", json=body)
    assert done.status_code == 200, done.json
    assert (done.json["count"], done.json["capped"], done.json["cap"]) == (500, True, 500)
    assert count_rows(admin_engine, "jobs", org_id=team_a.org_id, status="pending") == 501
    # The rest on a second call
    rest = team_a.operator.post(f"{org}/jobs/bulk-retry", json=body)
    assert (rest.json["count"], rest.json["capped"]) == (1, False)
    assert count_rows(admin_engine, "audit_logs", action="job.bulk_retry") == 2
    # Neither ids nor filter, both, or too many ids: 422 naming job_ids
    for wrong in (
        {},
        {"job_ids": [str(kit["job_id"])], "filter": {}},
        {"job_ids": [str(uuid.uuid4()) for _ in range(501)]},
    ):
        answer = team_a.operator.post(f"{org}/jobs/bulk-cancel", json=wrong)
        assert answer.status_code == 422 and "job_ids" in answer.json["errors"], answer.json
    unknown = team_a.operator.post(f"{org}/jobs/bulk-cancel", json={"filter": {"colour": "red"}})
    assert unknown.status_code == 422
