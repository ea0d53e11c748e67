"""The rotation's list of encrypted columns is complete, and a token no configured key opens
is reported as unreadable and left alone (it never blocks removing a key)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine, LargeBinary, text

from fusion.config import Settings
from fusion.db.base import FernetToken
from fusion.db.session import Database
from fusion.models import ENCRYPTED_COLUMNS, Base
from fusion.security import rotation
from fusion.security.crypto import encrypt_credentials
from tests.conftest import make_org


def test_every_fernet_token_column_is_in_the_rotation_list() -> None:
    columns = [c for t in Base.metadata.sorted_tables for c in t.c]
    typed = {(c.table.name, c.name) for c in columns if isinstance(c.type, FernetToken)}
    assert typed == {(c.table.name, c.name) for c in ENCRYPTED_COLUMNS}
    # A bytes column that is not a FernetToken would escape the rotation: there is none.
    assert [c.name for c in columns if isinstance(c.type, LargeBinary)] == []


@pytest.fixture
def owner_database(settings: Settings) -> Iterator[Database]:
    assert settings.database_url
    database = Database(settings.database_url, pool_size=1, max_overflow=0)
    yield database
    database.dispose()


def _store(admin_engine: Engine, org_id: uuid.UUID, token: bytes) -> uuid.UUID:
    store_id = uuid.uuid4()
    with admin_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO stores (id, org_id, platform, name, external_id, "
                "credentials_encrypted) VALUES (:id, :org, 'shopify', 's', :ext, :token)"
            ),
            {"id": store_id, "org": org_id, "ext": store_id.hex, "token": token},
        )
    return store_id


def test_a_token_no_key_opens_is_reported_and_left_alone(
    settings: Settings, admin_engine: Engine, owner_database: Database
) -> None:
    old, new, lost = (Fernet.generate_key().decode() for _ in range(3))
    org_id = make_org(admin_engine, "Rot")
    readable = encrypt_credentials(
        dataclasses.replace(settings, encryption_keys=(old,)), org_id, uuid.uuid4(), {"k": "v"}
    )
    unreadable = Fernet(lost.encode()).encrypt(b"{}")
    _store(admin_engine, org_id, readable)
    _store(admin_engine, org_id, unreadable)
    keys = dataclasses.replace(settings, encryption_keys=(new, old))
    # Given one token under the old key and one under a key no longer configured
    before = rotation.key_status(owner_database, keys, ENCRYPTED_COLUMNS[:1])
    assert (before[0].left, before[0].unreadable, before[0].newest) == (1, 1, 0)
    # When rotating, the readable one moves; the unreadable one is counted and untouched
    after = rotation.rotate_all(owner_database, keys, ENCRYPTED_COLUMNS[:1], batch_size=1)
    assert (after[0].rotated, after[0].left, after[0].unreadable, after[0].newest) == (1, 0, 1, 1)
    with admin_engine.connect() as conn:
        stored = [
            bytes(t)
            for t in conn.execute(text("SELECT credentials_encrypted FROM stores")).scalars()
        ]
    assert unreadable in stored and readable not in stored
    with pytest.raises(ValueError):
        rotation.rotate_all(owner_database, keys, ENCRYPTED_COLUMNS, batch_size=0)
