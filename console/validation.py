"""A form checked by the API's own marshmallow schema, so the console accepts exactly what the
API does; a refusal is the API's ValidationFailed, naming each field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import Schema, ValidationError

from fusion.errors import ValidationFailed


def load(schema: Schema, raw: Mapping[str, Any]) -> dict[str, Any]:
    try:
        loaded: dict[str, Any] = schema.load(raw)
    except ValidationError as exc:
        found = exc.messages if isinstance(exc.messages, dict) else {"form": exc.messages}
        raise ValidationFailed(fields={str(k): [str(v)] for k, v in found.items()}) from None
    return loaded
