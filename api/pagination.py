"""Keyset pagination over (created_at, id), newest first, with an opaque cursor."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from fusion.errors import NotFound, ValidationFailed

MAX_OFFSET = timedelta(hours=16)  # Postgres takes UTC offsets up to 15:59:59


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The position a cursor names, in UTC; a cursor that was not made by us is a 422 on
    ``cursor``. That includes one whose offset Postgres refuses (Python accepts up to 24
    hours, Postgres under 16: ``+20:00`` would be a database error) or whose moment has no
    UTC equivalent."""
    invalid = ValidationFailed(fields={"cursor": ["Not a valid cursor."]})
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, row_id = raw.partition("|")
        at, position = datetime.fromisoformat(stamp), uuid.UUID(row_id)
        offset = at.utcoffset()
        if offset is None or abs(offset) >= MAX_OFFSET:
            raise invalid
        return at.astimezone(UTC), position
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
        raise invalid from None


def page(
    session: Session,
    model: Any,
    *,
    limit: int,
    cursor: str | None,
    filters: dict[str, Any] | None = None,
    stmt: Select[Any] | None = None,
    references: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One page of ``model`` rows matching the equality ``filters`` (None values ignored):
    ``{"items": [...], "next_cursor": str | None}``. RLS limits rows to the session's org.

    A filter naming another object (``references``: filter name -> model) must name one of
    this org's: another org's id is NotFound, exactly like an unknown one."""
    for name, referenced in (references or {}).items():
        value = (filters or {}).get(name)
        if value is not None and session.get(referenced, value) is None:
            raise NotFound(f"No such {referenced.__tablename__.rstrip('s')}.")
    query = stmt if stmt is not None else select(model)
    for name, value in (filters or {}).items():
        if value is not None:
            query = query.where(getattr(model, name) == value)
    if cursor:
        at, row_id = decode_cursor(cursor)
        query = query.where(
            or_(model.created_at < at, and_(model.created_at == at, model.id < row_id))
        )
    rows = list(
        session.scalars(query.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1))
    )
    more = len(rows) > limit
    items = rows[:limit]
    next_cursor = encode_cursor(items[-1].created_at, items[-1].id) if more and items else None
    return {"items": items, "next_cursor": next_cursor}
