"""A store's credentials never leave: not in any response, error, log line, job row or audit
entry (a recognisable canary is grepped for in every sink)."""

from __future__ import annotations

import logging

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from tests.api.conftest import Team

CANARY = "shpat_CANARY0123456789abcdef"
HOOK_CANARY = "whsec_CANARYHOOK987654321"


def test_store_credentials_never_leave(
    client: FlaskClient, team_a: Team, admin_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    org = f"/orgs/{team_a.org_id}"
    owner = team_a.owner
    seen: list[str] = []

    def keep(response):  # type: ignore[no-untyped-def]
        seen.append(response.get_data(as_text=True))
        seen.append(str(dict(response.headers)))
        return response

    # Given a store connected with canary credentials
    created = keep(
        owner.post(
            f"{org}/stores",
            json={
                "platform": "shopify",
                "name": "Canary",
                "external_id": "canary.myshopify.com",
                "base_url": "http://127.0.0.1:9",
                "credentials": {"access_token": CANARY},
                "webhook_secret": HOOK_CANARY,
            },
        )
    )
    assert created.status_code == 201
    store = created.json["id"]
    assert created.json["has_credentials"] is True
    # When every read, error and job path around it is exercised
    keep(owner.get(f"{org}/stores"))
    keep(owner.get(f"{org}/stores/{store}"))
    keep(owner.call("PATCH", f"{org}/stores/{store}", json={"name": "Renamed"}))
    keep(owner.call("PATCH", f"{org}/stores/{store}", json={"credentials": {"x": CANARY}}))
    keep(
        owner.post(
            f"{org}/stores",
            json={  # a duplicate / invalid connect echoes nothing
                "platform": "nope",
                "name": "x",
                "external_id": "y",
                "credentials": {"access_token": CANARY},
                "webhook_secret": HOOK_CANARY,
            },
        )
    )
    keep(
        owner.call(
            "PUT",
            f"{org}/stores/{store}/credentials",
            json={"credentials": {"access_token": CANARY + "2"}},
        )
    )
    keep(owner.post(f"{org}/stores/{store}/test-connection"))
    keep(owner.post(f"{org}/jobs", json={"job_type": "list_products", "store_id": store}))
    keep(owner.get(f"{org}/jobs"))
    keep(owner.get(f"{org}/audit"))
    keep(client.get("/metrics"))
    # Then the canary is in no response, no log record, no job row and no audit entry
    for text_seen in seen:
        assert CANARY not in text_seen and HOOK_CANARY not in text_seen
    for record in caplog.records:
        line = record.getMessage() + str(record.args or "") + str(record.exc_text or "")
        assert CANARY not in line and HOOK_CANARY not in line
    with admin_engine.connect() as conn:
        for table in ("jobs", "job_logs", "audit_logs"):
            dump = conn.execute(
                text(f"SELECT coalesce(string_agg(t::text, ''), '') FROM {table} t")
            )
            assert CANARY not in dump.scalar_one()
        stored = conn.execute(
            text("SELECT credentials_encrypted FROM stores WHERE id = :id"), {"id": store}
        ).scalar_one()
    # And what is stored is ciphertext, not the value
    assert stored and CANARY.encode() not in bytes(stored)
