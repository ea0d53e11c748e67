"""The declarative base and the column conventions every table shares."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, LargeBinary, MetaData, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column
from sqlalchemy.types import Enum as SAEnum
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        uuid.UUID: UUID(as_uuid=True),
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSONB,
    }


def pg_enum(enum_cls: type[enum.Enum], name: str) -> SAEnum:
    """A native Postgres enum whose labels are the Python enum's values."""
    return SAEnum(
        enum_cls,
        name=name,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class FernetToken(TypeDecorator[bytes]):
    """A column holding a Fernet token (``fusion.security.crypto``): ``bytea`` in the database.

    Every column of this type must be listed in ``fusion.models.ENCRYPTED_COLUMNS``, the one
    list ``fusion keys rotate`` walks to move secrets onto the newest key (a test holds it)."""

    impl = LargeBinary
    cache_ok = True


class Timestamped:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class TenantScoped(Timestamped):
    """A row that belongs to one organisation; row-level security keys on ``org_id``."""

    @declared_attr
    def org_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=False)
