"""An operator's delete of a product or variant waits for approval; granting it enqueues the
``delete_catalog_item`` job, which the real engine runs over Postgres: the row goes (audited
as the system's act), a row already gone is left alone, and a rejected or pending request
deletes nothing."""

from __future__ import annotations

import uuid

from sqlalchemy import Engine, text

from fusion.jobs.engine import Engine as JobEngine
from fusion.jobs.engine import Outcome
from tests.api.conftest import Team, count_rows
from tests.api.kit import make_kit


def _ask_and_approve(team: Team, path: str) -> tuple[str, uuid.UUID]:
    asked = team.operator.call("DELETE", path)
    assert asked.status_code == 202 and asked.json["kind"] == "approval", asked.json
    approval = asked.json["approval"]["id"]
    decided = team.owner.post(
        f"/orgs/{team.org_id}/approvals/{approval}/decision", json={"decision": "approve"}
    )
    assert decided.status_code == 200, decided.json
    return approval, uuid.UUID(decided.json["job_id"])


def _audit(admin_engine: Engine, org: uuid.UUID, action: str) -> list[tuple[str, uuid.UUID]]:
    with admin_engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT actor_type::text, resource_id FROM audit_logs "
                "WHERE org_id = :o AND action = :a ORDER BY seq"
            ),
            {"o": org, "a": action},
        ).all()
    return [(r.actor_type, r.resource_id) for r in rows]


def test_an_approved_product_delete_removes_it_once(
    team_a: Team, admin_engine: Engine, job_engine: JobEngine
) -> None:
    kit = make_kit(admin_engine, team_a.org_id, None)
    org = f"/orgs/{team_a.org_id}"
    product = f"{org}/products/{kit['product_id']}"
    # Given an operator's delete, approved by the owner
    approval, job_id = _ask_and_approve(team_a, product)
    # nothing is gone until the job runs
    assert team_a.viewer.get(product).status_code == 200
    job = team_a.viewer.get(f"{org}/jobs/{job_id}").json
    assert (job["job_type"], job["store_id"]) == ("delete_catalog_item", None)
    # When the job runs
    assert job_engine.execute(job_id) is Outcome.COMPLETED
    # Then the product, its variant and its listing are gone, the delete audited by the system
    assert team_a.viewer.get(product).status_code == 404
    assert team_a.viewer.get(f"{org}/variants/{kit['variant_id']}").status_code == 404
    assert count_rows(admin_engine, "listings", id=kit["listing_id"]) == 0
    assert _audit(admin_engine, team_a.org_id, "product.delete") == [
        ("system", uuid.UUID(str(kit["product_id"])))
    ]
    done = team_a.viewer.get(f"{org}/jobs/{job_id}").json
    assert done["status"] == "completed" and done["result"]["deleted"] is True
    assert team_a.viewer.get(f"{org}/approvals/{approval}").json["status"] == "approved"


def test_an_approved_variant_delete_leaves_its_product(
    team_a: Team, admin_engine: Engine, job_engine: JobEngine
) -> None:
    kit = make_kit(admin_engine, team_a.org_id, None)
    org = f"/orgs/{team_a.org_id}"
    _, job_id = _ask_and_approve(team_a, f"{org}/variants/{kit['variant_id']}")
    assert job_engine.execute(job_id) is Outcome.COMPLETED
    assert team_a.viewer.get(f"{org}/variants/{kit['variant_id']}").status_code == 404
    assert team_a.viewer.get(f"{org}/products/{kit['product_id']}").status_code == 200
    assert _audit(admin_engine, team_a.org_id, "variant.delete") == [
        ("system", uuid.UUID(str(kit["variant_id"])))
    ]


def test_a_product_gone_before_the_job_runs_is_left_alone(
    team_a: Team, admin_engine: Engine, job_engine: JobEngine
) -> None:
    kit = make_kit(admin_engine, team_a.org_id, None)
    org = f"/orgs/{team_a.org_id}"
    product = f"{org}/products/{kit['product_id']}"
    _, job_id = _ask_and_approve(team_a, product)
    # the owner deletes it directly meanwhile (owners need no approval)
    assert team_a.owner.call("DELETE", product).status_code == 204
    assert job_engine.execute(job_id) is Outcome.COMPLETED
    assert team_a.viewer.get(f"{org}/jobs/{job_id}").json["result"]["deleted"] is False
    assert len(_audit(admin_engine, team_a.org_id, "product.delete")) == 1  # the owner's


def test_a_rejected_or_pending_delete_removes_nothing(
    team_a: Team, admin_engine: Engine, job_engine: JobEngine
) -> None:
    kit = make_kit(admin_engine, team_a.org_id, None)
    org = f"/orgs/{team_a.org_id}"
    jobs_before = count_rows(admin_engine, "jobs", org_id=team_a.org_id)
    asked = team_a.operator.call("DELETE", f"{org}/products/{kit['product_id']}")
    pending = team_a.operator.call("DELETE", f"{org}/variants/{kit['variant_id']}")
    assert (asked.status_code, pending.status_code) == (202, 202)
    rejected = team_a.owner.post(
        f"{org}/approvals/{asked.json['approval']['id']}/decision", json={"decision": "reject"}
    )
    assert rejected.status_code == 200 and rejected.json["job_id"] is None
    assert count_rows(admin_engine, "jobs", org_id=team_a.org_id) == jobs_before
    assert team_a.viewer.get(f"{org}/products/{kit['product_id']}").status_code == 200
    assert team_a.viewer.get(f"{org}/variants/{kit['variant_id']}").status_code == 200
