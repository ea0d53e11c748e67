"""Re-encrypting every stored secret under the newest key, so older keys can be retired.

``FUSION_ENCRYPTION_KEYS`` lists keys newest first. After a new key is put in front, old
tokens still decrypt, but the old key can only be removed once no token needs it. This walks
each registered column (``fusion.models.ENCRYPTED_COLUMNS``) in batches of ``batch_size``
rows, each batch its own short transaction with its rows locked, and rewrites every token
made with an older key through ``MultiFernet.rotate`` (same plaintext, binding and
timestamp). A token already under the newest key is left alone, so an interrupted run is
resumed by running it again. Tenant tables are walked org by org inside that org's RLS scope
(the org ids come from ``key_rotation_org_ids()``, which only the owner may call), with the
org also named in every query, so the walk is the same whether the owner is subject to RLS
or a superuser.

What is left is reported per column: tokens under each older key, and tokens no configured
key opens ("unreadable": the store must be reconnected, the person must enrol again; they
never block removing a key, since no configured key is of use to them anyway).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, select, text, update
from sqlalchemy.orm import Session

from fusion.config import Settings
from fusion.db.session import Database
from fusion.security.crypto import key_index, rotate

DEFAULT_BATCH_SIZE = 500


@dataclass
class ColumnReport:
    """What one column holds: tokens per key position (0 is the newest), unreadable ones, and
    how many this run rewrote."""

    table: str
    column: str
    by_key: Counter[int] = field(default_factory=Counter)
    unreadable: int = 0
    rotated: int = 0

    @property
    def name(self) -> str:
        return f"{self.table}.{self.column}"

    @property
    def newest(self) -> int:
        return self.by_key[0]

    @property
    def left(self) -> int:
        """Tokens still made with an older key: while above zero, no key can be removed."""
        return sum(n for index, n in self.by_key.items() if index > 0)


def org_ids(database: Database) -> list[uuid.UUID]:
    """Every org's id (the owner's ``key_rotation_org_ids()``; no row of any org is read)."""
    with database.system_session() as session:
        return list(session.scalars(text("SELECT * FROM key_rotation_org_ids()")))


@contextmanager
def _scope(database: Database, org_id: uuid.UUID | None) -> Iterator[Session]:
    if org_id is None:
        with database.system_session() as session:
            yield session
    else:
        with database.org_session(org_id) as session:
            yield session


def _walk(
    database: Database,
    settings: Settings,
    column: Column[Any],
    orgs: Sequence[uuid.UUID],
    report: ColumnReport,
    *,
    batch_size: int,
    budget: list[int | None],
) -> None:
    table = column.table
    tenant = "org_id" in table.c
    for org_id in orgs if tenant else [None]:
        after: Any = None
        while True:
            rotating = budget[0] is None or budget[0] > 0
            with _scope(database, org_id) as session:
                query = select(table.c.id, column).where(column.is_not(None))
                if org_id is not None:
                    query = query.where(table.c.org_id == org_id)
                if after is not None:
                    query = query.where(table.c.id > after)
                query = query.order_by(table.c.id).limit(batch_size)
                rows = session.execute(query.with_for_update() if rotating else query).all()
                for row_id, token in rows:
                    index = key_index(settings, token)
                    if index is None:
                        report.unreadable += 1
                        continue
                    remaining = budget[0]
                    if index > 0 and (remaining is None or remaining > 0):
                        values: dict[str, Any] = {column.name: rotate(settings, token)}
                        if "updated_at" in table.c:  # a re-encryption is not a change
                            values["updated_at"] = table.c.updated_at
                        session.execute(update(table).where(table.c.id == row_id).values(values))
                        report.rotated += 1
                        budget[0] = None if remaining is None else remaining - 1
                        index = 0
                    report.by_key[index] += 1
            if len(rows) < batch_size:
                break
            after = rows[-1][0]


def rotate_all(
    database: Database,
    settings: Settings,
    columns: Iterable[Column[Any]],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    limit: int | None = None,
) -> list[ColumnReport]:
    """Rewrite, under the newest key, every token of ``columns`` made with an older one (at
    most ``limit`` tokens, then only count), and report what each column holds afterwards.
    ``database`` must be the owner's. Raises ValueError for a batch size below 1 or a
    negative limit, ConfigError if no key is configured."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if limit is not None and limit < 0:
        raise ValueError("limit must not be negative")
    return _run(database, settings, columns, batch_size=batch_size, budget=[limit])


def key_status(
    database: Database,
    settings: Settings,
    columns: Iterable[Column[Any]],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[ColumnReport]:
    """What each of ``columns`` holds, per key, changing nothing."""
    return _run(database, settings, columns, batch_size=batch_size, budget=[0])


def _run(
    database: Database,
    settings: Settings,
    columns: Iterable[Column[Any]],
    *,
    batch_size: int,
    budget: list[int | None],
) -> list[ColumnReport]:
    orgs = org_ids(database)
    reports = []
    for column in columns:
        report = ColumnReport(column.table.name, column.name)
        _walk(database, settings, column, orgs, report, batch_size=batch_size, budget=budget)
        reports.append(report)
    return reports
