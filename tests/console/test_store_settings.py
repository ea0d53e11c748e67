"""A store's settings edited on its console page: the plugin's declared settings, checked by
the API's own schema and changed by the same service as ``PATCH /orgs/{org}/stores/{id}``
(operators and owners; audited), refusals named per field, secrets never shown."""

from __future__ import annotations

import html
from typing import Any

from sqlalchemy import Engine, text

from tests.api.conftest import count_rows
from tests.console.conftest import ConsoleTeam
from tests.support.merchant import ok

TOKEN = "shpat_never-shown-4711"
WEBHOOK_SECRET = "whsec_never-shown-0815"


def _store(crew: ConsoleTeam) -> dict[str, Any]:
    store: dict[str, Any] = ok(
        crew.team.owner.post(
            f"/orgs/{crew.team.org_id}/stores",
            json={
                "platform": "shopify",
                "name": "Demo shop",
                "external_id": "settings.myshopify.com",
                "base_url": "http://127.0.0.1:9",
                "credentials": {"access_token": TOKEN},
                "webhook_secret": WEBHOOK_SECRET,
                "settings": {"bulk_timeout_s": 300},
            },
        ),
        201,
    )
    return store


def _settings(crew: ConsoleTeam, store_id: str) -> dict[str, Any]:
    found: dict[str, Any] = ok(crew.team.owner.get(f"/orgs/{crew.team.org_id}/stores/{store_id}"))[
        "settings"
    ]
    return found


def test_an_operator_saves_the_settings_through_the_service(
    crew: ConsoleTeam, admin_engine: Engine
) -> None:
    store = _store(crew)
    path = f"{crew.org}/stores/{store['id']}"
    shown = crew.operator.get(path).get_data(as_text=True)
    assert 'action="' + path + '/settings"' in shown
    assert 'name="settings.bulk_timeout_s" value="300.0"' in shown
    assert TOKEN not in shown and WEBHOOK_SECRET not in shown
    before = count_rows(admin_engine, "audit_logs", action="store.update", org_id=crew.team.org_id)
    # Given one setting changed and one blanked (back to its default)
    saved = crew.operator.post(
        f"{path}/settings",
        {"settings.bulk_timeout_s": "", "settings.bulk_poll_interval_s": "2.5", "back": path},
    )
    assert saved.status_code == 303 and saved.headers["Location"].endswith(path)
    after = _settings(crew, store["id"])
    assert after["bulk_poll_interval_s"] == 2.5
    assert after["bulk_timeout_s"] == 600.0  # the plugin's default again
    assert (
        count_rows(admin_engine, "audit_logs", action="store.update", org_id=crew.team.org_id)
        == before + 1
    )
    assert "settings saved" in crew.operator.get(path).get_data(as_text=True)


def test_bad_values_and_unknown_names_are_refused_per_field_and_nothing_changes(
    crew: ConsoleTeam, admin_engine: Engine
) -> None:
    store = _store(crew)
    path = f"{crew.org}/stores/{store['id']}"
    crew.owner.get(path)
    refused = crew.owner.post(
        f"{path}/settings",
        {
            "settings.bulk_timeout_s": "soon",
            "settings.bulk_poll_interval_s": "99999",
            "settings.no_such_setting": "1",
        },
    )
    assert refused.status_code == 422
    page = html.unescape(refused.get_data(as_text=True))
    assert 'data-field="settings.bulk_timeout_s">Not a valid number.' in page
    assert 'data-field="settings.bulk_poll_interval_s">Must be greater than or equal to' in page
    assert 'data-field="settings.no_such_setting">settings.no_such_setting: Unknown field.' in page
    assert 'name="settings.bulk_timeout_s" value="soon"' in page  # what was typed is kept
    assert TOKEN not in page and WEBHOOK_SECRET not in page
    assert _settings(crew, store["id"])["bulk_timeout_s"] == 300
    assert (
        count_rows(admin_engine, "audit_logs", action="store.update", org_id=crew.team.org_id) == 0
    )


def test_a_viewer_sees_no_form_and_a_forged_post_is_refused(
    crew: ConsoleTeam, admin_engine: Engine
) -> None:
    store = _store(crew)
    path = f"{crew.org}/stores/{store['id']}"
    shown = crew.viewer.get(path).get_data(as_text=True)
    assert "settings.bulk_timeout_s" not in shown and "Save settings" not in shown
    assert '"bulk_timeout_s": 300.0' in shown  # the settings in effect are shown
    forged = crew.viewer.post(f"{path}/settings", {"settings.bulk_timeout_s": "5"})
    assert forged.status_code == 403
    assert _settings(crew, store["id"])["bulk_timeout_s"] == 300
    assert (
        count_rows(admin_engine, "audit_logs", action="store.update", org_id=crew.team.org_id) == 0
    )


def test_the_store_page_shows_its_subscription_and_rate_limit_state(
    crew: ConsoleTeam, admin_engine: Engine
) -> None:
    store = _store(crew)
    path = f"{crew.org}/stores/{store['id']}"
    before = html.unescape(crew.viewer.get(path).get_data(as_text=True))
    assert '<dd class="webhook-secret">set (never shown)</dd>' in before
    assert '<dd class="subscription">never asked</dd>' in before
    assert '<dd class="bucket">— (no call yet)</dd>' in before
    # Given the order events asked for (as connecting with a public URL does) and the bucket
    # as a worker last wrote it
    asked = ok(
        crew.team.owner.post(
            f"/orgs/{crew.team.org_id}/jobs",
            json={"job_type": "subscribe_order_events", "store_id": store["id"]},
        ),
        202,
    )
    with admin_engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE stores SET rate_limit_state = :s WHERE id = :i",
            ),
            {"s": '{"tokens": 30, "capacity": 40, "refill_rate": 2, "source": "header"}',
             "i": store["id"]},
        )  # fmt: skip
    shown = crew.viewer.get(path).get_data(as_text=True)
    assert f'/jobs/{asked["id"]}">subscribe_order_events</a>' in shown
    assert '<meter min="0" max="1" value="0.75">75%</meter> 30/40' in shown
    assert TOKEN not in shown and WEBHOOK_SECRET not in shown
