"""Engines and transactions scoped to one organisation.

Every transaction of the application role begins with
``set_config('fusion.org_id', <org or ''>, true)``: transaction-local (so nothing leaks to the
next user of a pooled connection, and it survives a pooler in transaction mode), bound as a
parameter (no SQL injection), and empty when no org is given, which the policies read as
"no org" and so show nothing. The only cross-org path is :meth:`Database.system_session`,
which can do nothing but call the ``SECURITY DEFINER`` functions the migrations grant.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from fusion.db import prepared

ORG_SETTING = "fusion.org_id"


class ScopedSession(Session):
    """A Session that stamps its org (or none) on every transaction it begins."""


@event.listens_for(ScopedSession, "after_begin")
def _stamp_org(session: Session, transaction: SessionTransaction, connection: Connection) -> None:
    org = session.info.get("org_id")
    connection.execute(
        text("SELECT set_config(:name, :org, true)"),
        {"name": ORG_SETTING, "org": str(org) if org else ""},
    )


def driver_url(url: str) -> str:
    """The URL with the psycopg2 driver named (SQLAlchemy 2.1 would otherwise pick psycopg 3)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine that survives a database restart (connections are checked before use)."""
    url = driver_url(url)
    options: dict[str, Any] = {"pool_pre_ping": True}
    if "poolclass" not in kwargs:
        options.update(pool_size=5, max_overflow=10)
    options.update(kwargs)
    return create_engine(url, **options)


class Database:
    """The application's handle on Postgres, connected as the non-owner application role."""

    def __init__(self, url: str, *, prepared_statements: bool = True, **engine_kwargs: Any) -> None:
        """``prepared_statements``: whether :mod:`fusion.db.prepared` statements are prepared
        on this engine's connections (off behind a pooler in transaction mode)."""
        options = {prepared.OPTION: prepared_statements}
        self.engine = make_engine(url, execution_options=options, **engine_kwargs)
        prepared.heal(self.engine)
        self._sessions = sessionmaker(self.engine, class_=ScopedSession, expire_on_commit=False)

    @contextmanager
    def org_session(self, org_id: uuid.UUID) -> Iterator[Session]:
        """One transaction in which only ``org_id``'s rows exist; commits on success.

        The caller owns the transaction: it commits when the block ends normally and rolls
        back if the block raises. Raises ValueError if ``org_id`` is not a UUID.
        """
        if not isinstance(org_id, uuid.UUID):
            raise ValueError(f"org_id must be a UUID, got {type(org_id).__name__}")
        with self._sessions() as session:
            session.info["org_id"] = org_id
            with session.begin():
                yield session

    @contextmanager
    def system_session(self) -> Iterator[Session]:
        """A transaction with no org: tenant tables are empty; only the granted cross-org
        functions (claiming, dispatch, reaping, expiry, routing) reach across orgs."""
        with self._sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
