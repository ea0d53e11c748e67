"""Payload schemas of job types, and the validator ``fusion.jobs.registry`` calls through.

Every job type has a marshmallow schema here, registered with :func:`register_payload_schema`
by the module beside its domain's jobs (``schemas/plugin_jobs.py`` and the others, which
``boot`` imports). ``boot.start`` calls :func:`install` and checks that no type lacks one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import RAISE, Schema, ValidationError

from fusion.errors import ValidationFailed
from fusion.jobs import registry

_schemas: dict[str, type[Schema]] = {}
_instances: dict[str, Schema] = {}  # made from _schemas on first use


def register_payload_schema(name: str, schema_cls: type[Schema]) -> None:
    """Check payloads of job type ``name`` with ``schema_cls`` (unknown fields refused)."""
    _schemas[name] = schema_cls
    _instances.pop(name, None)


def has_schema(job_type: str) -> bool:
    """Whether payloads of ``job_type`` can be checked."""
    return job_type in _schemas


def validate_payload(job_type: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The cleaned payload of ``job_type``; raises ValidationFailed with the schema's field
    errors, or when the job type has no schema registered here."""
    schema = _instance(job_type)
    try:
        data = schema.load(dict(payload))
        # Stored as JSON: dump again so dates and decimals become JSON values.
        return dict(schema.dump(data))
    except ValidationError as exc:
        raise ValidationFailed("the payload is invalid", fields=_flatten(exc.messages)) from None


def _instance(job_type: str) -> Schema:
    """The schema of ``job_type``, made once (a bulk enqueue checks thousands of payloads; a
    marshmallow schema keeps no state between loads)."""
    made = _instances.get(job_type)
    if made is None:
        schema_cls = _schemas.get(job_type)
        if schema_cls is None:
            raise ValidationFailed(f"no payload schema is registered for job type {job_type!r}")
        made = _instances[job_type] = schema_cls(unknown=RAISE)
    return made


def install() -> None:
    """Make :func:`validate_payload` the payload validator of ``fusion.jobs``."""
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
