"""A store's ``settings``, checked against what its platform's plugin declares.

Each plugin lists its settings as data (``fusion.plugins.base.SettingSpec``); the request
schema of a platform's settings is built from that list, strict: a name the plugin does not
declare is refused, and so is a value of the wrong type (JSON types as they are: ``"5"`` is
not an integer, ``1`` is not a boolean). Errors name the key as ``settings.<name>``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from fusion.errors import NotFound, ValidationFailed
from fusion.plugins.base import SettingSpec, SettingType
from fusion.plugins.registry import get_plugin
from schemas.common import Text

MAX_TEXT = 2000


class StrictInteger(fields.Integer):
    """An integer as JSON has it: not a string, not a float, not a boolean."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class StrictNumber(fields.Float):
    """A JSON number (integer or not); strings and booleans are refused."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class StrictBoolean(fields.Boolean):
    """``true`` or ``false``, nothing that merely looks like one."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


def _range(spec: SettingSpec) -> list[validate.Validator]:
    if spec.minimum is None and spec.maximum is None:
        return []
    return [validate.Range(min=spec.minimum, max=spec.maximum)]


def setting_field(spec: SettingSpec) -> fields.Field:
    """The marshmallow field of one declared setting; None (unset: the default applies) is
    always allowed."""
    options: dict[str, Any] = {
        "allow_none": True,
        "metadata": {"description": spec.description, "default": spec.default},
    }
    if spec.type is SettingType.INTEGER:
        return StrictInteger(validate=_range(spec), **options)
    if spec.type is SettingType.NUMBER:
        return StrictNumber(validate=_range(spec), **options)
    if spec.type is SettingType.BOOLEAN:
        return StrictBoolean(**options)
    if spec.type is SettingType.URL:
        return fields.Url(
            schemes={"http", "https"},
            require_tld=False,
            validate=validate.Length(max=MAX_TEXT),
            **options,
        )
    if spec.type is SettingType.OBJECT:
        return fields.Dict(keys=fields.String(), **options)
    checks: list[validate.Validator] = [validate.Length(max=MAX_TEXT)]
    if spec.choices:
        checks.append(validate.OneOf(spec.choices))
    return Text(validate=checks, **options)


@functools.cache
def settings_schema(platform: str) -> Schema:
    """The strict schema of ``platform``'s store settings: one field per declared setting
    (secret ones excluded: they go with the credentials). Raises NotFound for an unknown
    platform."""
    specs = [spec for spec in get_plugin(platform).settings if not spec.secret]
    name = f"{platform.title().replace('_', '')}SettingsSchema"
    schema_class = Schema.from_dict({spec.name: setting_field(spec) for spec in specs}, name=name)
    return schema_class(unknown=RAISE)


def load_settings(platform: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` checked and typed as ``platform``'s settings (None values kept: they mean
    "back to the default"). Raises marshmallow's ValidationError keyed ``settings.<name>``."""
    try:
        loaded: dict[str, Any] = settings_schema(platform).load(dict(data))
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"": exc.messages}
        raise ValidationError(
            {f"settings.{name}": errors for name, errors in messages.items()}
        ) from None
    return loaded


def parse_settings(platform: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`load_settings` for a view: bad input is a ValidationFailed (a 422)."""
    try:
        return load_settings(platform, data)
    except ValidationError as exc:
        # load_settings raises with a dict of messages keyed ``settings.<name>``.
        fields_: dict[str, list[str]] = dict(exc.messages_dict)
        raise ValidationFailed("invalid store settings", fields=fields_) from None


def shown_settings(platform: str, stored: Mapping[str, Any]) -> dict[str, Any]:
    """What a store's settings are in effect: every declared setting with the store's value or
    the plugin's default; secret settings never appear."""
    try:
        specs = get_plugin(platform).settings
    except NotFound:  # a plugin uninstalled since: show what is stored
        return dict(stored)
    secret = {spec.name for spec in specs if spec.secret}
    shown = {name: value for name, value in stored.items() if name not in secret}
    shown.update({spec.name: spec.value(stored) for spec in specs if not spec.secret})
    return shown
