"""The one exception hierarchy of the hub. Each class's docstring is its default message."""

from __future__ import annotations

from collections.abc import Mapping


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

    def __init__(
        self, message: str | None = None, *, details: Mapping[str, object] | None = None
    ) -> None:
        super().__init__(message)
        # What the client needs to act on it (e.g. the current figure), shown as is.
        self.details: Mapping[str, object] = details or {}


class PermissionDenied(FusionError):
    """Your role does not allow this action."""


class ValidationFailed(FusionError):
    """The input is invalid."""

    def __init__(self, message: str | None = None, *, fields: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.fields = fields or {}


class JobError(FusionError):
    """A job's work failed."""


class RetryableError(JobError):
    """A transient failure (network, timeout, 5xx): the job is retried on the backoff ladder."""


class PermanentError(JobError):
    """A failure that retrying cannot fix (validation, auth): the job fails at once."""


class RateLimited(JobError):
    """The platform's allowance is spent: the job is rescheduled without spending an attempt."""

    def __init__(self, retry_after_s: float, message: str | None = None) -> None:
        super().__init__(message or f"rate limited; retry in {retry_after_s:.2f}s")
        self.retry_after_s = retry_after_s


class Cancelled(JobError):
    """The job was cancelled; it stopped at a checkpoint."""


class UnsupportedCapability(PermanentError):
    """The store's plugin does not support this capability."""

    def __init__(self, plugin: str, capability: str) -> None:
        super().__init__(f"plugin {plugin!r} does not support capability {capability!r}")
        self.plugin = plugin
        self.capability = capability


class MalformedWebhook(PermanentError):
    """The webhook's signature holds but its body is not an event the platform sends."""


class ReauthorisationNeeded(PermanentError):
    """The platform no longer accepts the store's grant: the merchant must connect the store
    again."""
