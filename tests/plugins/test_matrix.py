"""The capability matrix is the architecture's, exactly (docs/plugins.md), cell by cell."""

from __future__ import annotations

import pytest

from fusion.errors import NotFound
from fusion.plugins.base import AuthType, Capability, Plugin
from fusion.plugins.models import ContractLevel
from fusion.plugins.registry import all_plugins, get_plugin, load_errors

N, W, U = ContractLevel.NATIVE, ContractLevel.WORKAROUND, ContractLevel.UNSUPPORTED
PLATFORMS = ("shopify", "etsy", "amazon_sc", "printify")
# As docs/plugins.md gives it; rows are capabilities, columns PLATFORMS.
MATRIX: dict[Capability, tuple[ContractLevel, ...]] = {
    Capability.LIST_PRODUCTS: (N, N, N, N),
    Capability.CREATE_PRODUCT: (N, N, N, W),
    Capability.UPDATE_PRODUCT: (N, N, N, W),
    Capability.DELETE_PRODUCT: (N, N, N, U),
    Capability.BULK_OPERATIONS: (N, W, N, U),
    Capability.REAL_TIME_INVENTORY: (N, U, W, N),
    Capability.ORDER_WEBHOOKS: (N, N, N, N),
}
CELLS = [
    (platform, capability, levels[i])
    for capability, levels in MATRIX.items()
    for i, platform in enumerate(PLATFORMS)
]


def test_the_four_builtins_load_through_entry_points() -> None:
    assert load_errors() == {}
    assert [p.slug for p in all_plugins()] == sorted(PLATFORMS)


@pytest.mark.parametrize(("platform", "capability", "level"), CELLS)
def test_matrix_cell(platform: str, capability: Capability, level: ContractLevel) -> None:
    assert get_plugin(platform).level(capability) == level


@pytest.mark.parametrize("platform", PLATFORMS)
def test_plugin_declares_identity_rate_limit_and_auth(platform: str) -> None:
    plugin = get_plugin(platform)
    assert isinstance(plugin, Plugin)
    assert plugin.slug == platform
    assert plugin.name and plugin.version
    assert isinstance(plugin.auth_type, AuthType)
    assert plugin.rate_limit.requests_per_second > 0
    assert plugin.rate_limit.burst_size >= 1
    # Every declared capability is a known one, and nothing outside the matrix is claimed.
    assert set(plugin.capabilities) <= set(MATRIX)


def test_unknown_plugin_is_not_found() -> None:
    with pytest.raises(NotFound, match="no plugin named 'ebay'"):
        get_plugin("ebay")
