"""The one exception hierarchy of the hub. Each class's docstring is its default message."""

from __future__ import annotations


class FusionError(Exception):
    """Something went wrong in Fusion Stage Hub."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(FusionError):
    """The configuration is missing or malformed."""


class NotFound(FusionError):
    """No such object in this organisation."""


class Conflict(FusionError):
    """The request conflicts with the current state."""


class PermissionDenied(FusionError):
    """Your role does not allow this action."""


class ValidationFailed(FusionError):
    """The input is invalid."""

    def __init__(self, message: str | None = None, *, fields: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.fields = fields or {}
