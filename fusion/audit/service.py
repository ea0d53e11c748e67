"""Writing and reading the audit log. Every write in the hub records one entry here, in the
same transaction as the change, so a failed audit insert rolls the change back."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, insert, text
from sqlalchemy.orm import Session

from fusion.audit.models import AuditLog
from fusion.auth.access import ActorType, Principal
from fusion.db.prepared import prepare

# Column names that must never be copied into before/after, whatever the resource.
SECRET_FIELDS = frozenset(
    {
        "credentials_encrypted",
        "webhook_secret_encrypted",
        "secret_hash",
        "password_hash",
        "token_hash",
        "credentials",
        "webhook_secret",
    }
)


def _plain(value: Any) -> Any:
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def snapshot(obj: Any, fields: Iterable[str]) -> dict[str, Any]:
    """A JSON-safe copy of ``fields`` of ``obj`` for before/after; secret columns are dropped
    even if asked for."""
    return {f: _plain(getattr(obj, f)) for f in fields if f not in SECRET_FIELDS}


def record(
    session: Session,
    *,
    org_id: uuid.UUID,
    actor: Principal | None,
    action: str,
    resource_type: str,
    resource_id: uuid.UUID | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Append one entry to ``org_id``'s chain (the database fills seq and hashes). ``actor`` None
    means the system. Secret-named keys in before/after are removed, not stored.

    One prebuilt INSERT (every write makes one: no ORM object, no statement built per call);
    the ORM's pending changes are flushed first, so the entry follows what it records."""
    session.flush()
    session.execute(
        _INSERT.on(session),
        {
            "id": uuid.uuid4(),
            "org_id": org_id,
            "actor_type": (actor.actor_type if actor else ActorType.SYSTEM).value,
            "actor_id": actor.actor_id if actor else None,
            "action": action,
            "resource_type": resource_type,
            "resource_id": resource_id,
            "before": _scrub(before),
            "after": _scrub(after),
        },
    )


_AUDIT_LOGS = AuditLog.metadata.tables[AuditLog.__tablename__]
_WRITTEN = (
    "id", "org_id", "actor_type", "actor_id", "action", "resource_type", "resource_id",
    "before", "after",
)  # fmt: skip
# Prepared once per connection (fusion.db.prepared): every audited request sends it.
_INSERT = prepare(
    insert(_AUDIT_LOGS).values({c: bindparam(c, type_=_AUDIT_LOGS.c[c].type) for c in _WRITTEN})
)


def _scrub(data: dict[str, Any] | None) -> dict[str, Any] | None:
    if data is None:
        return None
    return {k: _plain(v) for k, v in data.items() if k not in SECRET_FIELDS}


def verify(session: Session, org_id: uuid.UUID) -> int | None:
    """The seq of the first entry of ``org_id``'s chain that does not hold, or None if intact.
    ``session`` must be scoped to ``org_id`` (RLS hides every other org's entries)."""
    broken = session.scalar(text("SELECT audit_verify(:org)"), {"org": org_id})
    return int(broken) if broken is not None else None


def audited_update(
    session: Session,
    *,
    org_id: uuid.UUID,
    actor: Principal | None,
    obj: Any,
    changes: Mapping[str, Any],
    action: str,
    resource_type: str,
    fields: Iterable[str],
) -> None:
    """Set ``changes`` on ``obj`` and record its ``fields`` before and after, in the caller's
    transaction (so a failed audit insert undoes the change)."""
    fields = tuple(fields)
    before = snapshot(obj, fields)
    for name, value in changes.items():
        setattr(obj, name, value)
    session.flush()
    record(
        session,
        org_id=org_id,
        actor=actor,
        action=action,
        resource_type=resource_type,
        resource_id=obj.id,
        before=before,
        after=snapshot(obj, fields),
    )


def audited_create(
    session: Session,
    *,
    org_id: uuid.UUID,
    actor: Principal | None,
    obj: Any,
    action: str,
    resource_type: str,
    fields: Iterable[str],
) -> None:
    """Add ``obj`` and record its ``fields`` as the entry's after, in the caller's transaction."""
    session.add(obj)
    session.flush()
    record(
        session,
        org_id=org_id,
        actor=actor,
        action=action,
        resource_type=resource_type,
        resource_id=obj.id,
        after=snapshot(obj, fields),
    )


def audited_delete(
    session: Session,
    *,
    org_id: uuid.UUID,
    actor: Principal | None,
    obj: Any,
    action: str,
    resource_type: str,
    fields: Iterable[str],
) -> None:
    """Delete ``obj`` and record its ``fields`` as the entry's before, in the caller's
    transaction."""
    before = snapshot(obj, fields)
    resource_id = obj.id
    session.delete(obj)
    session.flush()
    record(
        session,
        org_id=org_id,
        actor=actor,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        before=before,
    )
