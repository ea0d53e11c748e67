"""Store base URLs cannot point the hub at its own network (docs/running.md, private egress)."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from sqlalchemy import Engine, text

from fusion.config import Settings
from fusion.db.session import Database
from fusion.errors import ValidationFailed
from fusion.security.egress import EgressRefused, check_destination
from fusion.stores.client import store_connection
from fusion.stores.models import Store
from fusion.stores.service import connect_store

REFUSED = [
    "http://169.254.169.254/latest/meta-data/",
    "http://127.1/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0177.0.0.1/",
    "http://localhost:8000/",
    "http://[::1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[64:ff9b::a00:5]/",
    "http://10.0.0.5/",
    "http://100.64.0.1/",
    "http://192.168.1.1/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_FLUSHALL",
    "ftp://example.com/",
    "http://no-such-host.invalid/",
    "http:///no-host",
    "http://[::1/",
]


@pytest.mark.parametrize("url", REFUSED)
def test_private_reserved_and_odd_destinations_are_refused(url: str) -> None:
    with pytest.raises(EgressRefused):
        check_destination(url, allow_private=False)


def test_a_public_address_is_allowed() -> None:
    check_destination("https://93.184.216.34/admin/api/graphql.json", allow_private=False)


def test_dev_and_test_mode_allow_loopback_sandboxes_but_still_only_http() -> None:
    check_destination("http://127.0.0.1:8123/", allow_private=True)
    with pytest.raises(EgressRefused):
        check_destination("file:///etc/passwd", allow_private=True)


def _connect(session, settings: Settings, org: uuid.UUID, base_url: str) -> Store:  # type: ignore[no-untyped-def]
    return connect_store(
        session,
        settings=settings,
        org_id=org,
        platform="shopify",
        name="Main",
        external_id=f"shop-{uuid.uuid4().hex[:6]}",
        base_url=base_url,
        credentials={"access_token": "shpat_x"},
        webhook_secret=None,
    )


def test_saving_a_metadata_url_is_a_field_error_and_stores_nothing(
    settings: Settings, database: Database, admin_engine: Engine, org_a: uuid.UUID
) -> None:
    strict = dataclasses.replace(settings, allow_private_egress=False)
    with pytest.raises(ValidationFailed) as caught:
        with database.org_session(org_a) as session:
            _connect(session, strict, org_a, "http://169.254.169.254/")
    assert list(caught.value.fields) == ["base_url"]
    with admin_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM stores")).scalar_one() == 0


def test_a_job_refuses_to_connect_where_the_hub_may_not_call(
    settings: Settings, database: Database, org_a: uuid.UUID
) -> None:
    with database.org_session(org_a) as session:
        store = _connect(session, settings, org_a, "http://127.0.0.1:9/")
    strict = dataclasses.replace(settings, allow_private_egress=False)
    with pytest.raises(EgressRefused):
        store_connection(strict, store)
