"""Reading query strings and forms into the values the services take; a bad value is the
same ValidationFailed (naming the field) the API's schemas would give."""

from __future__ import annotations

import enum
import uuid
from typing import TypeVar

from flask import request

from fusion.errors import ValidationFailed

E = TypeVar("E", bound=enum.Enum)
PAGE_SIZE = 50


def choice(name: str, kind: type[E], *, source: str = "args") -> E | None:
    raw = (request.args if source == "args" else request.form).get(name, "").strip()
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in kind)
        raise ValidationFailed(fields={name: [f"Must be one of: {allowed}."]}) from None


def an_id(name: str, *, source: str = "args", required: bool = False) -> uuid.UUID | None:
    raw = (request.args if source == "args" else request.form).get(name, "").strip()
    if not raw:
        if required:
            raise ValidationFailed(fields={name: ["Required."]})
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ValidationFailed(fields={name: ["Not a valid id."]}) from None


def text(name: str, *, required: bool = False, source: str = "form") -> str:
    value = (request.args if source == "args" else request.form).get(name, "").strip()
    if required and not value:
        raise ValidationFailed(fields={name: ["Required."]})
    return value


def integer(name: str, *, source: str = "form") -> int:
    raw = (request.args if source == "args" else request.form).get(name, "").strip()
    try:
        return int(raw)
    except ValueError:
        raise ValidationFailed(fields={name: ["Must be a whole number."]}) from None


def cursor() -> str | None:
    return request.args.get("cursor") or None


def query_without(*names: str) -> dict[str, str]:
    """The current query string less ``names`` (for the next-page link)."""
    return {k: v for k, v in request.args.items() if k not in names and v}
