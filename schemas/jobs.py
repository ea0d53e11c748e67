"""Payload schemas of job types, and the validator ``fusion.jobs.registry`` calls through.

Each job type that names a ``payload_schema`` has a marshmallow schema here, registered with
:func:`register_payload_schema` (other modules, e.g. ``schemas/plugin_jobs.py``, register
theirs the same way). The API and the workers call :func:`install` at start-up.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from marshmallow import RAISE, Schema, ValidationError

from fusion.errors import ValidationFailed
from fusion.jobs import registry

# Modules whose import registers payload schemas here; :func:`install` imports them, so the
# API and the workers know the same schemas. Add yours to this list.
SCHEMA_MODULES = ("schemas.plugin_jobs", "schemas.webhook_jobs", "schemas.catalog_jobs")

_schemas: dict[str, type[Schema]] = {}


def register_payload_schema(name: str, schema_cls: type[Schema]) -> None:
    """Check payloads of job type ``name`` with ``schema_cls`` (unknown fields refused)."""
    _schemas[name] = schema_cls


def validate_payload(job_type: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The cleaned payload of ``job_type``; raises ValidationFailed with the schema's field
    errors, or when the job type has no schema registered here (it named one)."""
    schema_cls = _schemas.get(job_type)
    if schema_cls is None:
        raise ValidationFailed(f"no payload schema is registered for job type {job_type!r}")
    schema = schema_cls(unknown=RAISE)
    try:
        data = schema.load(dict(payload))
        # Stored as JSON: dump again so dates and decimals become JSON values.
        return dict(schema.dump(data))
    except ValidationError as exc:
        raise ValidationFailed("the payload is invalid", fields=_flatten(exc.messages)) from None


def install() -> None:
    """Import the schema modules and make :func:`validate_payload` the payload validator of
    ``fusion.jobs``."""
    for name in SCHEMA_MODULES:
        importlib.import_module(name)
    registry.install_payload_validator(validate_payload)


def _flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    if isinstance(messages, list):
        return {prefix or "_schema": [str(m) for m in messages]}
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    else:
        out[prefix or "_schema"] = [str(messages)]
    return out
