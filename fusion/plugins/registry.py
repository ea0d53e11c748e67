"""Plugin discovery through the ``fusion.plugins`` entry-point group.

The built-in four are registered in ``pyproject.toml`` exactly as a third-party package would
register its own, so there is one way to find a plugin. The registry stays small on purpose:
platform behaviour lives in the plugins, not here.
"""

from __future__ import annotations

import logging
from functools import cache
from importlib.metadata import entry_points

from fusion.errors import ConfigError, NotFound
from fusion.plugins.base import Plugin

ENTRY_POINT_GROUP = "fusion.plugins"
log = logging.getLogger(__name__)
_errors: dict[str, str] = {}


@cache
def _load() -> dict[str, Plugin]:
    plugins: dict[str, Plugin] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as exc:
            # One broken third-party package must not take every platform down with it; the
            # failure is logged and reported by ``fusion plugins sync``.
            _errors[ep.name] = f"{type(exc).__name__}: {exc}"
            log.error("plugin %s failed to load: %s", ep.name, _errors[ep.name])
            continue
        if not isinstance(obj, Plugin):
            raise ConfigError(
                f"entry point {ep.name!r} ({ep.value}) is not a fusion Plugin instance"
            )
        if obj.slug != ep.name:
            raise ConfigError(
                f"entry point {ep.name!r} loads a plugin with slug {obj.slug!r}; they must match"
            )
        plugins[obj.slug] = obj
    return plugins


def all_plugins() -> list[Plugin]:
    """Every installed plugin, sorted by slug.

    Raises ConfigError if an entry point loads something that is not a Plugin, or whose slug
    differs from its entry-point name (a store's ``platform`` must find exactly one plugin).
    """
    return [p for _, p in sorted(_load().items())]


def get_plugin(slug: str) -> Plugin:
    """The installed plugin named ``slug``; raises NotFound for an unknown slug."""
    try:
        return _load()[slug]
    except KeyError:
        raise NotFound(f"no plugin named {slug!r} is installed") from None


def plugin_slugs() -> list[str]:
    """The slugs of every installed plugin, sorted."""
    return sorted(_load())


def load_errors() -> dict[str, str]:
    """Entry points that failed to import, by name, with the error (empty when all loaded)."""
    _load()
    return dict(_errors)
