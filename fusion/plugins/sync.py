"""Write every installed plugin's contract into ``plugins`` / ``plugin_contracts``.

These tables are global (no org); the application role may SELECT/INSERT/UPDATE them. The
sync runs at worker and API start-up and from ``fusion plugins sync``; it is idempotent and
safe to run from many processes at once (upserts on the unique slug / (plugin, capability)).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from fusion.plugins.base import Capability, Plugin
from fusion.plugins.models import PluginContract, PluginRecord
from fusion.plugins.registry import all_plugins


@dataclass(frozen=True)
class SyncResult:
    slug: str
    version: str
    capabilities: int


def rate_limit_json(plugin: Plugin) -> dict[str, Any]:
    """The plugin's rate limit as stored in ``plugins.rate_limit``."""
    spec = plugin.rate_limit
    return {
        "requests_per_second": spec.requests_per_second,
        "burst_size": spec.burst_size,
        "cost_function": spec.cost is not None,
    }


def sync_plugin(session: Session, plugin: Plugin) -> SyncResult:
    """Upsert one plugin and a contract row for every capability (undeclared ones as
    ``unsupported``, so the table answers for every capability). The caller commits."""
    values = {
        "id": uuid.uuid4(),
        "slug": plugin.slug,
        "name": plugin.name,
        "version": plugin.version,
        "auth_type": plugin.auth_type.value,
        "rate_limit": rate_limit_json(plugin),
    }
    stmt = insert(PluginRecord).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[PluginRecord.slug],
        set_={k: stmt.excluded[k] for k in ("name", "version", "auth_type", "rate_limit")},
    )
    session.execute(stmt)
    plugin_id = session.execute(
        select(PluginRecord.id).where(PluginRecord.slug == plugin.slug)
    ).scalar_one()
    for capability in Capability:
        level = plugin.level(capability)
        contract = insert(PluginContract).values(
            id=uuid.uuid4(), plugin_id=plugin_id, capability=capability.value, level=level
        )
        contract = contract.on_conflict_do_update(
            index_elements=[PluginContract.plugin_id, PluginContract.capability],
            set_={"level": contract.excluded.level},
        )
        session.execute(contract)
    return SyncResult(plugin.slug, plugin.version, len(Capability))


def sync_plugins(session: Session) -> list[SyncResult]:
    """Upsert every installed plugin (see :func:`sync_plugin`); returns what was written.
    Works in any session, org-scoped or not (the tables are global). The caller commits."""
    return [sync_plugin(session, plugin) for plugin in all_plugins()]
