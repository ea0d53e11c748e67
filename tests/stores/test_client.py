"""Connecting a store: credentials only ever stored encrypted; unknown platforms refused."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine, text

from fusion.config import Settings
from fusion.db.session import Database
from fusion.errors import ValidationFailed
from fusion.plugins.registry import plugin_slugs
from fusion.stores.client import store_connection
from fusion.stores.service import connect_store, update_credentials

CANARY = "canary-cred-7f3a9c1e5b"


def test_connect_stores_only_ciphertext_and_decrypts_inside_the_call(
    settings: Settings, database: Database, admin_engine: Engine, org_a: uuid.UUID
) -> None:
    platform = plugin_slugs()[0]
    with database.org_session(org_a) as session:
        store = connect_store(
            session,
            settings=settings,
            org_id=org_a,
            platform=platform,
            name="Main",
            external_id="shop-1",
            base_url="http://127.0.0.1:1",
            credentials={"access_token": CANARY},
            webhook_secret="whsec_" + CANARY,
            rate_limit_config={"requests_per_second": 3},
        )
        store_id = store.id
    with admin_engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM stores WHERE id = :id"), {"id": store_id}).one()
    assert CANARY not in repr(tuple(row)) and CANARY.encode() not in bytes(
        row.credentials_encrypted
    )
    with database.org_session(org_a) as session:
        conn_ = store_connection(settings, session.get(type(store), store_id))  # type: ignore[arg-type]
        assert conn_.credentials["access_token"] == CANARY
        assert CANARY not in repr(conn_)
        update_credentials(
            session,
            settings=settings,
            store=session.get(type(store), store_id),  # type: ignore[arg-type]
            credentials={"access_token": "rotated"},
        )
    with database.org_session(org_a) as session:
        again = store_connection(settings, session.get(type(store), store_id))  # type: ignore[arg-type]
    assert again.credentials["access_token"] == "rotated"


def test_unknown_platform_and_empty_credentials_are_refused(
    settings: Settings, database: Database, org_a: uuid.UUID
) -> None:
    with database.org_session(org_a) as session:
        with pytest.raises(ValidationFailed) as caught:
            connect_store(
                session,
                settings=settings,
                org_id=org_a,
                platform="ebay",
                name="x",
                external_id="x",
                base_url=None,
                credentials={"k": "v"},
                webhook_secret=None,
            )
        assert "platform" in caught.value.fields
        with pytest.raises(ValidationFailed) as caught:
            connect_store(
                session,
                settings=settings,
                org_id=org_a,
                platform=plugin_slugs()[0],
                name="x",
                external_id="x",
                base_url=None,
                credentials={},
                webhook_secret=None,
            )
        assert "credentials" in caught.value.fields
