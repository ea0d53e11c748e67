"""Every console page renders for each role, with action buttons only for those who may act;
a forged POST is refused by the service; another org's ids are 404; a POST without the CSRF
token is refused; actions are real forms (POST, then 303)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from tests.api.conftest import count_rows, make_team
from tests.api.test_order_origin import connect_signed_shop, deliver_order, shopify_order
from tests.console.conftest import ConsoleTeam, person
from tests.support.merchant import new_sku, ok

ROLES = ("owner", "operator", "viewer")
ACTION = re.compile(r'<form method="post"(?![^>]*console/logout)')


@dataclass
class Seeded:
    store_id: str
    product_id: str
    variant_id: str
    listing_id: str
    job_id: str
    approval_id: str
    order_free_product: str
    delivery_id: str


def seed(crew: ConsoleTeam, *, delivery: bool = False) -> Seeded:
    """A store, a product with a SKU listed on it (its publish job queued), and an operator's
    delete of a second product waiting for approval: all through the API."""
    owner, org = crew.team.owner, f"/orgs/{crew.team.org_id}"
    store = ok(
        owner.post(
            f"{org}/stores",
            json={
                "platform": "shopify",
                "name": "Demo shop",
                "external_id": "demo.myshopify.com",
                "base_url": "http://127.0.0.1:9",
                "credentials": {"access_token": "shpat_x"},
            },
        ),
        201,
    )
    product = ok(owner.post(f"{org}/products", json={"title": "Mug", "description": "A mug"}))
    variant = ok(
        owner.post(
            f"{org}/products/{product['id']}/variants",
            json={"sku": new_sku(), "price": "9.50", "available_quantity": 7},
        ),
        201,
    )
    listing = ok(
        owner.post(f"{org}/listings", json={"product_id": product["id"], "store_id": store["id"]}),
        201,
    )
    job = ok(owner.post(f"{org}/listings/{listing['id']}/publish"), 202)["job"]
    other = ok(owner.post(f"{org}/products", json={"title": "Cup", "description": "A cup"}))
    asked = ok(crew.team.operator.call("DELETE", f"{org}/products/{other['id']}"), 202)
    # And, when asked (one more job and store), an order delivered by a signed webhook (stored,
    # its job queued)
    delivery_id = ""
    if delivery:
        shop_id, shop = connect_signed_shop(crew.team)
        deliver_order(owner.client, shop_id, shop, shopify_order(9001, "SKU-SEEDED"))
        query = {"job_type": "process_webhook", "store_id": shop_id}
        delivery_id = ok(owner.get(f"{org}/jobs", query_string=query))["items"][0]["payload"][
            "webhook_id"
        ]
    return Seeded(
        store["id"],
        product["id"],
        variant["id"],
        listing["id"],
        job["id"],
        asked["approval"]["id"],
        other["id"],
        delivery_id,
    )


def pages(crew: ConsoleTeam, s: Seeded) -> dict[str, str]:
    org = crew.org
    found = {
        "dashboard": f"{org}/",
        "jobs": f"{org}/jobs",
        "jobs filtered": f"{org}/jobs?status=pending&store={s.store_id}",
        "jobs since and error": f"{org}/jobs?since=2020-01-01T00:00&error=refused",
        "job": f"{org}/jobs/{s.job_id}",
        "stores": f"{org}/stores",
        "store": f"{org}/stores/{s.store_id}",
        "products": f"{org}/products",
        "products sku search": f"{org}/products?sku_q=SKU",
        "publishing": f"{org}/publishing",
        "approvals": f"{org}/approvals",
        "orders": f"{org}/orders",
        "settings": f"{org}/settings",
        "sandbox": f"{org}/sandbox",
        "audit": f"{org}/audit",
    }
    if s.delivery_id:
        found["webhook delivery"] = f"{org}/webhook-deliveries/{s.delivery_id}"
    return found


@pytest.mark.parametrize("role", ROLES)
def test_every_page_renders_and_only_those_who_may_act_see_buttons(
    crew: ConsoleTeam, role: str
) -> None:
    s = seed(crew, delivery=True)
    someone = crew.by_role(role)
    for name, path in pages(crew, s).items():
        answer = someone.get(path)
        if name == "audit" and role != "owner":
            assert answer.status_code == 403, name  # owners only, as GET /orgs/{org}/audit
            continue
        html = answer.get_data(as_text=True)
        assert answer.status_code == 200, (name, html[:500])
        assert "Content-Security-Policy" in answer.headers
        forms = ACTION.findall(html)
        if role == "viewer":
            assert not forms, f"{name}: a viewer sees an action"
            assert 'class="action' not in html
    owner_jobs = crew.owner.get(f"{crew.org}/jobs").get_data(as_text=True)
    assert f'id="job-{s.job_id}"' in owner_jobs
    job_page = crew.owner.get(f"{crew.org}/jobs/{s.job_id}").get_data(as_text=True)
    assert "Cancel" in job_page and "shpat_x" not in job_page
    inbox = crew.owner.get(f"{crew.org}/approvals").get_data(as_text=True)
    assert f'id="approval-{s.approval_id}"' in inbox and "Approve" in inbox
    # An operator may act on jobs and listings but not decide approvals or connect stores.
    operator_inbox = crew.operator.get(f"{crew.org}/approvals").get_data(as_text=True)
    assert "Approve" not in operator_inbox
    assert "Connect a store" not in crew.operator.get(f"{crew.org}/stores").get_data(as_text=True)


def test_a_viewers_forged_posts_are_refused_by_the_services(
    crew: ConsoleTeam, admin_engine: Engine
) -> None:
    s = seed(crew)
    viewer, org = crew.viewer, crew.org
    viewer.get(f"{org}/")  # a page hands the viewer a CSRF token: only the role stops them
    forged = {
        f"{org}/jobs/{s.job_id}/cancel": {},
        f"{org}/listings/{s.listing_id}/delist": {},
        f"{org}/variants/{s.variant_id}/stock": {"etag": '"x"', "available_quantity": "0"},
        f"{org}/products/{s.product_id}/delete": {},
        f"{org}/approvals/{s.approval_id}/decision": {"decision": "approve"},
        f"{org}/stores/{s.store_id}/pause": {},
        f"{org}/api-keys": {"name": "mine", "role": "viewer"},
    }
    for path, data in forged.items():
        assert viewer.post(path, data).status_code == 403, path
    assert count_rows(admin_engine, "jobs", status="cancelled") == 0
    assert count_rows(admin_engine, "approvals", status="pending") == 1
    assert count_rows(admin_engine, "api_keys") == 0
    assert count_rows(admin_engine, "product_variants", available_quantity=7) == 1
    # The operator may cancel; the owner's decision goes through (not their own request).
    cancelled = crew.operator.post(f"{org}/jobs/{s.job_id}/cancel", {"back": f"{org}/jobs"})
    assert cancelled.status_code == 303 and cancelled.headers["Location"].endswith(f"{org}/jobs")
    assert count_rows(admin_engine, "jobs", status="cancelled") == 1
    decided = crew.owner.post(
        f"{org}/approvals/{s.approval_id}/decision", {"decision": "reject", "note": "keep it"}
    )
    assert decided.status_code == 303
    assert count_rows(admin_engine, "approvals", status="rejected") == 1
    assert count_rows(admin_engine, "audit_logs", action="job.cancel") == 1


def test_a_post_without_the_csrf_token_is_refused(crew: ConsoleTeam, admin_engine: Engine) -> None:
    s = seed(crew)
    org = crew.org
    missing = crew.operator.post(f"{org}/jobs/{s.job_id}/cancel", csrf=False)
    assert missing.status_code == 400
    wrong = crew.operator.client.post(
        f"{org}/jobs/{s.job_id}/cancel", data={"csrf_token": "not-the-token"}
    )
    assert wrong.status_code == 400
    # Another person's token is no good in this session either.
    crew.owner.get(f"{org}/")
    theirs = crew.operator.client.post(
        f"{org}/jobs/{s.job_id}/cancel", data={"csrf_token": crew.owner.token}
    )
    assert theirs.status_code == 400
    assert count_rows(admin_engine, "jobs", status="cancelled") == 0
    # The header htmx sends counts as the token.
    crew.operator.get(f"{org}/")
    header = crew.operator.client.post(
        f"{org}/jobs/{s.job_id}/cancel", headers={"X-CSRF-Token": crew.operator.token}
    )
    assert header.status_code == 303
    # The API's bearer-token endpoints take no CSRF token: a header credential is no cookie.
    created = crew.team.owner.post("/orgs", json={"name": "Second"})
    assert created.status_code == 201


def test_another_orgs_ids_are_404(crew: ConsoleTeam, app: Flask, client: FlaskClient) -> None:
    s = seed(crew, delivery=True)
    other = make_team(client, "Bravo")
    stranger = person(app, other.owner)
    for path in pages(crew, s).values():
        assert stranger.get(path).status_code == 404, path
    # Their own org's URL with our ids: the rows are invisible there (RLS), so 404 too.
    theirs = f"/console/orgs/{other.org_id}"
    for path in (
        f"{theirs}/jobs/{s.job_id}",
        f"{theirs}/stores/{s.store_id}",
        f"{theirs}/jobs?store={s.store_id}",
        f"{theirs}/webhook-deliveries/{s.delivery_id}",
    ):
        assert stranger.get(path).status_code == 404, path
    stranger.get(f"{theirs}/")
    refused = stranger.post(f"{theirs}/jobs/{s.job_id}/cancel")
    assert refused.status_code == 404


def test_stock_edit_goes_through_the_service_with_if_match(
    crew: ConsoleTeam, admin_engine: Engine
) -> None:
    s = seed(crew)
    org, operator = crew.org, crew.operator
    html = operator.get(f"{org}/products").get_data(as_text=True)
    etag = re.search(r'name="etag" value="([^"]+)"', html)
    assert etag is not None
    stale = etag.group(1).replace("&#34;", '"')
    # Someone else changes the figure meanwhile (through the API).
    api_org = f"/orgs/{crew.team.org_id}"
    ok(crew.team.owner.call("PATCH", f"{api_org}/variants/{s.variant_id}",
                             json={"available_quantity": 5}))  # fmt: skip
    refused = operator.post(
        f"{org}/variants/{s.variant_id}/stock",
        {"etag": stale, "available_quantity": "3", "back": f"{org}/products"},
    )
    assert refused.status_code == 303
    page = operator.get(f"{org}/products").get_data(as_text=True)
    assert "changed" in page.lower() or "stock" in page.lower()
    assert count_rows(admin_engine, "product_variants", available_quantity=5) == 1
    fresh = re.search(r'name="etag" value="([^"]+)"', page)
    assert fresh is not None
    done = operator.post(
        f"{org}/variants/{s.variant_id}/stock",
        {"etag": fresh.group(1).replace("&#34;", '"'), "available_quantity": "3"},
    )
    assert done.status_code == 303
    assert count_rows(admin_engine, "product_variants", available_quantity=3) == 1
    assert count_rows(admin_engine, "audit_logs", resource_type="product_variant") >= 1


def test_publishing_and_an_operators_delete_waiting_for_approval(
    crew: ConsoleTeam, admin_engine: Engine
) -> None:
    s = seed(crew)
    org = crew.org
    product = ok(crew.team.owner.post(f"/orgs/{crew.team.org_id}/products",
                                      json={"title": "Bowl", "description": "A bowl"}))  # fmt: skip
    grid = crew.operator.get(f"{org}/publishing").get_data(as_text=True)
    assert f'id="cell-{product["id"]}-{s.store_id}" data-status="unlisted"' in grid
    listed = crew.operator.post(
        f"{org}/publishing", {"product_id": product["id"], "store_id": s.store_id}
    )
    assert listed.status_code == 303
    assert count_rows(admin_engine, "listings", product_id=product["id"]) == 1
    grid = crew.operator.get(f"{org}/publishing").get_data(as_text=True)
    assert f'id="cell-{product["id"]}-{s.store_id}" data-status="staged"' in grid
    deleted = crew.operator.post(f"{org}/products/{product['id']}/delete")
    assert deleted.status_code == 303
    assert count_rows(admin_engine, "approvals", status="pending") == 2
    assert count_rows(admin_engine, "products", id=product["id"]) == 1


def test_owner_settings_members_keys_and_name(crew: ConsoleTeam, admin_engine: Engine) -> None:
    org = crew.org
    owner = crew.owner
    owner.get(f"{org}/settings")
    made = owner.post(f"{org}/api-keys", {"name": "ci", "role": "operator"})
    assert made.status_code == 200
    html = made.get_data(as_text=True)
    key = re.search(r'<pre class="secret">([^<]+)</pre>', html)
    assert key is not None
    # Shown once: the next page has the key's name but never its secret.
    again = owner.get(f"{org}/settings").get_data(as_text=True)
    assert "ci" in again and key.group(1) not in again
    used = crew.team.owner.client.get(
        f"/orgs/{crew.team.org_id}/jobs", headers={"X-API-Key": key.group(1)}
    )
    assert used.status_code == 200
    assert owner.post(f"{org}/settings/name", {"name": "Alpha Two"}).status_code == 303
    assert "Alpha Two" in owner.get(f"{org}/settings").get_data(as_text=True)
    invited = owner.post(f"{org}/invitations", {"email": "new@example.test", "role": "viewer"})
    assert invited.status_code == 303
    assert count_rows(admin_engine, "org_invitations", status="pending") == 1


def _cookie(someone: Any) -> str:
    jar = someone.client.get_cookie("fusion_console")
    assert jar is not None
    return str(jar.value)


def test_member_removal_ends_their_console_access(crew: ConsoleTeam) -> None:
    org = crew.org
    assert crew.viewer.get(f"{org}/").status_code == 200
    crew.owner.get(f"{org}/settings")
    member_id = crew.team.member_ids["viewer"]
    assert crew.owner.post(f"{org}/members/{member_id}/remove").status_code == 303
    assert crew.viewer.get(f"{org}/").status_code == 404


def test_mfa_sign_in_asks_for_the_code(app: Flask, crew: ConsoleTeam) -> None:
    from tests.support.totp import code_at

    caller = crew.team.operator
    started = caller.post("/me/mfa/totp")
    secret = started.json["secret"]
    assert caller.post("/me/mfa/totp/confirm", json={"code": code_at(secret)}).status_code == 200
    someone = person(app, caller, signed_in=False)
    answer = someone.sign_in()
    assert answer.status_code == 303 and "/console/login/mfa" in answer.headers["Location"]
    assert someone.get(f"{crew.org}/").status_code == 303  # not signed in yet
    someone.get("/console/login/mfa")
    assert someone.post("/console/login/mfa", {"code": "000000"}).status_code == 401
    done = someone.post("/console/login/mfa", {"code": code_at(secret, step_offset=1)})
    assert done.status_code == 303
    assert someone.get(f"{crew.org}/").status_code == 200


def test_a_wrong_password_is_refused_the_same_way(app: Flask, crew: ConsoleTeam) -> None:
    someone = person(app, crew.team.viewer, signed_in=False)
    refused = someone.sign_in(password="not the password at all")
    assert refused.status_code == 401
    assert someone.get(f"{crew.org}/").status_code == 303


def test_the_login_session_ends_on_sign_out_and_password_change(
    app: Flask, crew: ConsoleTeam
) -> None:
    org = crew.org
    viewer = crew.viewer
    kept = _cookie(viewer)
    assert viewer.get(f"{org}/").status_code == 200
    assert viewer.post("/console/logout").status_code == 303
    assert viewer.get(f"{org}/").status_code == 303
    # The old cookie, replayed, holds a revoked login session.
    replay = app.test_client()
    replay.set_cookie("fusion_console", kept)
    gone = replay.get(f"{org}/")
    assert gone.status_code == 303 and "/console/login" in gone.headers["Location"]

    operator = crew.operator
    elsewhere = person(app, crew.team.operator)  # a second device
    assert elsewhere.get(f"{org}/").status_code == 200
    operator.get("/console/account")
    new_password = "another horse battery staple"
    changed = operator.post(
        "/console/account",
        {"current_password": "correct horse battery staple", "new_password": new_password},
    )
    assert changed.status_code == 303
    assert operator.get(f"{org}/").status_code == 200  # this session goes on
    assert elsewhere.get(f"{org}/").status_code == 303  # every other one ended
    assert crew.team.operator.get("/me").status_code == 401  # the API's tokens too
    uuid.UUID(str(crew.team.member_ids["operator"]))


def test_console_cancel_rerun_and_pause_write_one_audit_entry_each(
    crew: ConsoleTeam, admin_engine: Engine
) -> None:
    s = seed(crew)
    org, operator = crew.org, crew.operator
    operator.get(f"{org}/")
    assert operator.post(f"{org}/jobs/{s.job_id}/cancel").status_code == 303
    assert operator.post(f"{org}/jobs/{s.job_id}/rerun").status_code == 303
    assert operator.post(f"{org}/stores/{s.store_id}/pause").status_code == 303
    assert count_rows(admin_engine, "audit_logs", action="job.cancel") == 1
    assert count_rows(admin_engine, "audit_logs", action="job.rerun") == 1
    assert count_rows(admin_engine, "audit_logs", action="store.update") == 1
    assert count_rows(admin_engine, "stores", status="paused") == 1


def fail(admin_engine: Engine, job_id: str, error: str) -> None:
    """Mark a job failed as a worker would after its last attempt (the sandbox outage that
    does it for real is the browser test's)."""
    with admin_engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE jobs SET status = 'failed', finished_at = now(), last_error = :e,"
                " locked_by = NULL, lease_expires_at = NULL WHERE id = :id"
            ),
            {"e": error, "id": job_id},
        )


def test_failure_groups_retry_all_and_bulk_actions(crew: ConsoleTeam, admin_engine: Engine) -> None:
    s = seed(crew)
    org, api_org = crew.org, f"/orgs/{crew.team.org_id}"
    owner = crew.team.owner
    bowl = ok(owner.post(f"{api_org}/products", json={"title": "Bowl", "description": "A bowl"}))
    listed = {"product_id": bowl["id"], "store_id": s.store_id}
    listing = ok(owner.post(f"{api_org}/listings", json=listed), 201)
    second = ok(owner.post(f"{api_org}/listings/{listing['id']}/publish"), 202)["job"]
    error = "PlatformUnavailable: shopify answered 503\ntraceback..."
    fail(admin_engine, s.job_id, error)
    fail(admin_engine, second["id"], error)
    # Every role sees the group; only an operator or owner sees Retry all and the bulk forms.
    for role in ROLES:
        html = crew.by_role(role).get(f"{org}/").get_data(as_text=True)
        assert 'class="failure-group" data-count="2"' in html, role
        assert "PlatformUnavailable: shopify answered 503" in html and "traceback" not in html
        jobs_html = crew.by_role(role).get(f"{org}/jobs").get_data(as_text=True)
        assert ("Retry all" in html) == (role != "viewer"), role
        assert ('name="job_ids"' in jobs_html) == (role != "viewer"), role
        assert ("Retry all matching" in jobs_html) == (role != "viewer"), role
    # A viewer's forged POSTs (with a valid CSRF token) are refused by the action's role check.
    viewer = crew.viewer
    viewer.get(f"{org}/")
    group = {"job_type": "create_product", "store_id": s.store_id,
             "error_line": "PlatformUnavailable: shopify answered 503"}  # fmt: skip
    assert viewer.post(f"{org}/jobs/failure-groups/retry", group).status_code == 403
    assert viewer.post(f"{org}/jobs/bulk", {"do": "retry-matching"}).status_code == 403
    assert viewer.post(f"{org}/jobs/bulk", {"do": "retry-selected", "job_ids": s.job_id}
                       ).status_code == 403  # fmt: skip
    assert count_rows(admin_engine, "jobs", status="failed") == 2
    assert count_rows(admin_engine, "audit_logs", action="job.bulk_retry") == 0
    # The error filter finds them; since in the future finds nothing.
    found = crew.operator.get(f"{org}/jobs?error=answered+503").get_data(as_text=True)
    assert f'id="job-{s.job_id}"' in found and f'id="job-{second["id"]}"' in found
    later = crew.operator.get(f"{org}/jobs?since=2999-01-01T00:00").get_data(as_text=True)
    assert f'id="job-{s.job_id}"' not in later
    # The operator retries the group: both re-run, one audit entry, back to the dashboard.
    operator = crew.operator
    operator.get(f"{org}/")
    job_type = admin_scalar(admin_engine, s.job_id, "job_type")
    done = operator.post(f"{org}/jobs/failure-groups/retry", {**group, "job_type": job_type})
    assert done.status_code == 303 and done.headers["Location"].endswith(f"{org}/")
    assert count_rows(admin_engine, "jobs", status="failed") == 0
    assert count_rows(admin_engine, "jobs", status="pending") == 2
    assert count_rows(admin_engine, "audit_logs", action="job.bulk_retry") == 1
    assert "Retried 2 job(s)" in operator.get(f"{org}/").get_data(as_text=True)
    # Bulk cancel of the ticked jobs, then everything matching (nothing left to cancel).
    operator.get(f"{org}/jobs")
    ticked = operator.post(f"{org}/jobs/bulk", {"do": "cancel-selected", "job_ids": s.job_id})
    assert ticked.status_code == 303
    assert count_rows(admin_engine, "jobs", status="cancelled") == 1
    matching = operator.post(f"{org}/jobs/bulk", {"do": "cancel-matching", "status": "pending"})
    assert matching.status_code == 303
    assert count_rows(admin_engine, "jobs", status="cancelled") == 2
    page = operator.get(f"{org}/jobs").get_data(as_text=True)
    assert "cancel: 1 job(s), 0 skipped" in page
    assert count_rows(admin_engine, "audit_logs", action="job.bulk_cancel") == 2


def admin_scalar(admin_engine: Engine, job_id: str, column: str) -> str:
    with admin_engine.connect() as conn:
        value = conn.execute(text(f"SELECT {column} FROM jobs WHERE id = :id"), {"id": job_id})
        return str(value.scalar_one())


def test_sku_search_and_job_progress(crew: ConsoleTeam, admin_engine: Engine) -> None:
    s = seed(crew)
    org = crew.org
    with admin_engine.connect() as conn:
        sku = conn.execute(
            text("SELECT sku FROM product_variants WHERE id = :id"), {"id": s.variant_id}
        ).scalar_one()
    html = crew.viewer.get(f"{org}/products?sku_q={sku[:-2]}").get_data(as_text=True)
    assert 'class="sku-hit"' in html and sku in html
    none = crew.viewer.get(f"{org}/products?sku_q=no-such-sku-zz").get_data(as_text=True)
    assert "No SKU matches." in none
    with admin_engine.begin() as conn:
        conn.execute(
            text("UPDATE jobs SET progress = CAST(:p AS jsonb) WHERE id = :id"),
            {"p": '{"done": 3, "total": 7}', "id": s.job_id},
        )
    assert "3 / 7" in crew.viewer.get(f"{org}/jobs").get_data(as_text=True)
    assert "3 / 7" in crew.viewer.get(f"{org}/jobs/{s.job_id}").get_data(as_text=True)
