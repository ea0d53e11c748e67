"""The jobs API is no way around the stock rules: a reconciliation reaches back no further than
the store's connection, exact quantities are the hub's own, and the audit entry of every job
enqueued holds its payload. Through the HTTP API over Postgres."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.api.conftest import Team, count_rows
from tests.api.kit import make_kit


def _connected_at(admin_engine: Engine, store_id: uuid.UUID) -> datetime:
    with admin_engine.connect() as conn:
        created: datetime = conn.execute(
            text("SELECT created_at FROM stores WHERE id = :s"), {"s": store_id}
        ).scalar_one()
    return created


def _audit_after(admin_engine: Engine, job_id: str) -> dict[str, Any]:
    with admin_engine.connect() as conn:
        after: dict[str, Any] = conn.execute(
            text("SELECT after FROM audit_logs WHERE action = 'job.enqueue' AND resource_id = :j"),
            {"j": job_id},
        ).scalar_one()
    return after


def test_a_reconciliation_since_2000_is_clamped_to_the_stores_connection(
    team_a: Team, admin_engine: Engine
) -> None:
    # Given a store connected just now
    kit = make_kit(admin_engine, team_a.org_id, None)
    connected = _connected_at(admin_engine, kit["store_id"])
    org = f"/orgs/{team_a.org_id}"
    # When an operator asks for a pull of every order since 2000
    response = team_a.operator.post(
        f"{org}/jobs",
        json={
            "job_type": "reconcile_orders",
            "store_id": str(kit["store_id"]),
            "payload": {"since": "2000-01-01T00:00:00+00:00"},
        },
    )
    # Then the job pulls from the store's connection, and says so in its log
    assert response.status_code == 202, response.json
    job = response.json
    assert datetime.fromisoformat(job["payload"]["since"]) == connected
    logs = team_a.viewer.get(f"{org}/jobs/{job['id']}").json["logs"]
    assert any(
        "since 2000-01-01T00:00:00+00:00 is before the store was connected" in entry["message"]
        for entry in logs
    ), logs
    # And the audit entry holds that payload
    after = _audit_after(admin_engine, job["id"])
    assert after["payload"] == job["payload"]
    assert after["job_type"] == "reconcile_orders"

    # A since after the connection is kept as it was asked
    later = (connected + timedelta(seconds=1)).astimezone(UTC).isoformat()
    kept = team_a.operator.post(
        f"{org}/jobs",
        json={
            "job_type": "reconcile_orders",
            "store_id": str(kit["store_id"]),
            "payload": {"since": later},
        },
    )
    assert kept.status_code == 202, kept.json
    assert datetime.fromisoformat(kept.json["payload"]["since"]) == datetime.fromisoformat(later)


@pytest.mark.parametrize("job_type", ["real_time_inventory", "bulk_operations"])
def test_exact_quantities_cannot_be_pushed_through_the_jobs_api(
    team_a: Team, admin_engine: Engine, job_type: str
) -> None:
    kit = make_kit(admin_engine, team_a.org_id, None)
    path = f"/orgs/{team_a.org_id}/jobs"
    sku = f"SKU-{kit['tag']}"
    # When an owner asks for a push of 500 of a SKU (not the hub's figure)
    refused = team_a.owner.post(
        path,
        json={
            "job_type": job_type,
            "store_id": str(kit["store_id"]),
            "payload": {"updates": [{"sku": sku, "quantity": 500}]},
        },
    )
    # Then it is a 422 naming the field, and no job exists
    assert refused.status_code == 422, refused.json
    assert "payload.updates" in refused.json["errors"]
    assert count_rows(admin_engine, "jobs", org_id=team_a.org_id) == 2  # only the kit's
    assert count_rows(admin_engine, "audit_logs", action="job.enqueue") == 0
    # While naming the SKU (the job pushes the hub's own figure) is accepted, and audited
    accepted = team_a.operator.post(
        path,
        json={"job_type": job_type, "store_id": str(kit["store_id"]), "payload": {"skus": [sku]}},
    )
    assert accepted.status_code == 202, accepted.json
    after = _audit_after(admin_engine, accepted.json["id"])
    assert after["payload"] == {"skus": [sku]}


def test_the_audit_entry_of_an_enqueued_job_holds_its_payload_redacted(
    team_a: Team, admin_engine: Engine
) -> None:
    kit = make_kit(admin_engine, team_a.org_id, None)
    # A SKU shaped like a Shopify access token: whatever it is, the audit log never keeps it
    token_like = "shpat_" + "a1" * 16
    response = team_a.operator.post(
        f"/orgs/{team_a.org_id}/jobs",
        json={
            "job_type": "real_time_inventory",
            "store_id": str(kit["store_id"]),
            "payload": {"skus": [f"SKU-{kit['tag']}", token_like]},
        },
    )
    assert response.status_code == 202, response.json
    after = _audit_after(admin_engine, response.json["id"])
    assert after["payload"] == {"skus": [f"SKU-{kit['tag']}", "[REDACTED]"]}
    assert token_like not in str(after)
