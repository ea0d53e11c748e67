"""Contract sync: every installed plugin's contract lands in plugins / plugin_contracts."""

from __future__ import annotations

from sqlalchemy import Engine, text

from fusion.db.session import Database
from fusion.plugins.base import Capability
from fusion.plugins.registry import all_plugins
from fusion.plugins.sync import sync_plugins


def _contracts(admin_engine: Engine) -> dict[tuple[str, str], str]:
    with admin_engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT p.slug, c.capability, c.level::text FROM plugin_contracts c "
                "JOIN plugins p ON p.id = c.plugin_id"
            )
        ).all()
    return {(slug, cap): level for slug, cap, level in rows}


def test_sync_writes_every_capability_of_every_plugin_idempotently(
    database: Database, admin_engine: Engine
) -> None:
    # when the app role syncs twice (start-up of two processes)
    for _ in range(2):
        with database.system_session() as session:
            results = sync_plugins(session)
    # then each plugin has exactly one row per capability, at its declared level
    assert sorted(r.slug for r in results) == sorted(p.slug for p in all_plugins())
    contracts = _contracts(admin_engine)
    for plugin in all_plugins():
        for capability in Capability:
            assert contracts[(plugin.slug, capability.value)] == plugin.level(capability).value
    with admin_engine.connect() as conn:
        for plugin in all_plugins():
            row = conn.execute(
                text("SELECT version, auth_type, rate_limit FROM plugins WHERE slug = :s"),
                {"s": plugin.slug},
            ).one()
            assert row.version == plugin.version
            assert row.auth_type == plugin.auth_type.value
            assert row.rate_limit["burst_size"] == plugin.rate_limit.burst_size
