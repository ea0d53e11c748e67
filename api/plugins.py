"""Installed plugins and what each can do (the capability matrix)."""

from __future__ import annotations

import uuid
from typing import Any

from flask_smorest import Blueprint

from api.security import org_scope
from fusion.auth.models import Role
from fusion.plugins.base import Capability, Plugin
from fusion.plugins.registry import all_plugins, get_plugin
from fusion.plugins.sync import rate_limit_json
from schemas.plugins import PluginListSchema, PluginSchema

blp = Blueprint("plugins", __name__, url_prefix="/orgs", description="Platform plugins.")


def _view(plugin: Plugin) -> dict[str, Any]:
    return {
        "slug": plugin.slug,
        "name": plugin.name,
        "version": plugin.version,
        "auth_type": plugin.auth_type.value,
        "capabilities": {c.value: plugin.level(c).value for c in Capability},
        "rate_limit": rate_limit_json(plugin),
        "settings": [
            {
                "name": spec.name,
                "type": spec.type.value,
                "required": spec.required,
                "default": spec.default,
                "description": spec.description,
                "secret": spec.secret,
                "minimum": spec.minimum,
                "maximum": spec.maximum,
                "choices": list(spec.choices),
            }
            for spec in plugin.settings
        ],
    }


@blp.get("/<uuid:org_id>/plugins")
@blp.response(200, PluginListSchema)
@org_scope(Role.VIEWER)
def list_plugins(org_id: uuid.UUID) -> dict[str, Any]:
    """Every installed plugin with its level for every capability."""
    return {"items": [_view(p) for p in all_plugins()]}


@blp.get("/<uuid:org_id>/plugins/<string(maxlength=40):slug>")
@blp.response(200, PluginSchema)
@org_scope(Role.VIEWER)
def get_one(org_id: uuid.UUID, slug: str) -> dict[str, Any]:
    """One plugin, with the store settings it reads (what `settings` of a store on its
    platform may hold)."""
    return _view(get_plugin(slug))
