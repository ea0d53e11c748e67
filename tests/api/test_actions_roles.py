"""The audited actions the API and the console share (``fusion.actions``) check the caller's
role themselves: a console that only hid a button could not slip a viewer's change past them.
And the API's store and job changes are audited by those actions, once each."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine

from fusion.actions import jobs as job_actions
from fusion.actions import stores as store_actions
from fusion.auth.access import Access, ActorType, Principal
from fusion.auth.models import Role
from fusion.config import Settings
from fusion.db.session import Database
from fusion.errors import PermissionDenied
from fusion.jobs.selection import JobFilter
from tests.api.conftest import Team, count_rows
from tests.api.kit import make_kit


def test_a_viewer_is_refused_by_the_actions_themselves(
    team_a: Team, admin_engine: Engine, database: Database, settings: Settings
) -> None:
    kit = make_kit(admin_engine, team_a.org_id, None)
    assert team_a.viewer.user_id is not None
    viewer = Access(Principal(ActorType.USER, team_a.viewer.user_id), team_a.org_id, Role.VIEWER)
    operator = Access(viewer.principal, team_a.org_id, Role.OPERATOR)
    calls = [
        lambda s, a: job_actions.rerun(s, a, kit["failed_job_id"]),
        lambda s, a: job_actions.cancel(s, a, kit["job_id"]),
        lambda s, a: job_actions.bulk_retry(s, a, where=JobFilter()),
        lambda s, a: job_actions.bulk_cancel(s, a, job_ids=[kit["job_id"]]),
        lambda s, a: job_actions.request(s, a, job_type="list_products", store_id=kit["store_id"]),
        lambda s, a: store_actions.update(s, a, kit["store_id"], {"name": "X"}, settings=settings),
    ]
    for call in calls:
        with database.org_session(team_a.org_id) as session, pytest.raises(PermissionDenied):
            call(session, viewer)
    # An operator may not do what only an owner may
    with database.org_session(team_a.org_id) as session, pytest.raises(PermissionDenied):
        store_actions.delete(session, operator, kit["store_id"])
    assert count_rows(admin_engine, "jobs", org_id=team_a.org_id, status="pending") == 1
    for resource in ("job", "store"):
        assert count_rows(admin_engine, "audit_logs", resource_type=resource) == 0


def test_store_and_job_changes_through_the_api_are_audited_once(
    team_a: Team, admin_engine: Engine
) -> None:
    org = f"/orgs/{team_a.org_id}"
    body = {
        "platform": "shopify",
        "name": "Shop",
        "external_id": f"shop-{uuid.uuid4().hex[:8]}.myshopify.com",
        "base_url": "http://127.0.0.1:9",
        "credentials": {"access_token": "tok-secret-value"},
    }
    store = team_a.owner.post(f"{org}/stores", json=body).json
    team_a.operator.call("PATCH", f"{org}/stores/{store['id']}", json={"name": "Renamed"})
    team_a.owner.call(
        "PUT", f"{org}/stores/{store['id']}/credentials", json={"webhook_secret": "whs-new"}
    )
    job = team_a.operator.post(
        f"{org}/jobs", json={"job_type": "list_products", "store_id": store["id"]}
    ).json
    team_a.operator.post(f"{org}/jobs/{job['id']}/cancel")
    team_a.operator.post(f"{org}/jobs/{job['id']}/rerun")
    for action in (
        "store.connect",
        "store.update",
        "store.credentials",
        "job.enqueue",
        "job.cancel",
        "job.rerun",
    ):
        assert count_rows(admin_engine, "audit_logs", action=action) == 1, action
