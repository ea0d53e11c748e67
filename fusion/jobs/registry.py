"""Job types: each names its handler, its payload schema and whether it needs a store.

Job-type modules call :func:`register` at import. Every hub process imports the built-in
modules listed in :data:`BUILTIN_MODULES` and those named in ``Settings.job_modules``
(``FUSION_JOB_MODULES``, comma-separated) at start (``boot.start``), so a handler exists
wherever its jobs run. Payloads are checked through a port,
:func:`install_payload_validator`, because ``fusion`` may not import marshmallow: the outer
layer (``schemas.jobs``) installs the real validator.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fusion.errors import NotFound, ValidationFailed

if TYPE_CHECKING:
    from fusion.jobs.context import JobContext

log = logging.getLogger(__name__)

# The one list of modules whose import registers the hub's own job types.
BUILTIN_MODULES = ("fusion.plugins.jobs", "fusion.webhooks.jobs", "fusion.catalog.jobs")

Handler = Callable[["JobContext"], Mapping[str, Any] | None]
PayloadValidator = Callable[[str, Mapping[str, Any]], dict[str, Any]]


class UnknownJobType(NotFound):
    """No job type of that name is registered."""


@dataclass(frozen=True)
class JobType:
    """What the engine needs to know to enqueue and run one kind of job."""

    name: str
    handler: Handler
    needs_store: bool = True
    capability: str | None = None
    priority: int = 0
    max_attempts: int | None = None
    payload_schema: str | None = None
    # Set for the types only the hub itself enqueues (the jobs API refuses them): what a
    # client does instead, e.g. the listing endpoint where approval policies apply.
    internal: str | None = None


_types: dict[str, JobType] = {}
_validator: PayloadValidator | None = None
_lock = threading.Lock()


def register(job_type: JobType) -> JobType:
    """Register ``job_type`` under its name; registering the same name again replaces it
    (a module re-imported in tests), so the last definition wins."""
    if not job_type.name or len(job_type.name) > 80:
        raise ValueError(f"job type name must be 1..80 characters, got {job_type.name!r}")
    with _lock:
        _types[job_type.name] = job_type
    return job_type


def get(name: str) -> JobType:
    """The registered job type ``name``; raises :class:`UnknownJobType` (a NotFound)."""
    try:
        return _types[name]
    except KeyError:
        raise UnknownJobType(f"unknown job type {name!r}") from None


def all_job_types() -> list[JobType]:
    """Every registered job type, sorted by name."""
    return sorted(_types.values(), key=lambda t: t.name)


def install_payload_validator(fn: PayloadValidator | None) -> None:
    """Install the function that checks payloads: ``fn(job_type_name, payload)`` returns the
    cleaned payload or raises ValidationFailed(fields=...). ``None`` uninstalls it."""
    global _validator
    _validator = fn


def validate_payload(job_type: JobType, payload: Mapping[str, Any] | None) -> dict[str, Any]:
    """The payload to store for ``job_type``: checked by the installed validator when the type
    names a schema. Raises ValidationFailed with field errors on a bad payload, or when the
    type names a schema but no validator is installed (never stores an unchecked payload)."""
    data = dict(payload or {})
    if job_type.payload_schema is None:
        return data
    if _validator is None:
        raise ValidationFailed(
            f"job type {job_type.name!r} needs payload schema {job_type.payload_schema!r} "
            "but no payload validator is installed"
        )
    return _validator(job_type.name, data)


def load_job_modules(extra: Iterable[str] = ()) -> list[str]:
    """Import the built-in job modules and the modules named in ``extra`` (the caller's
    ``Settings.job_modules``); returns the modules imported. A module that fails to import
    raises (a typo must not go unnoticed)."""
    loaded: list[str] = []
    for name in BUILTIN_MODULES:
        importlib.import_module(name)
        loaded.append(name)
    for name in (n.strip() for n in extra):
        if name:
            importlib.import_module(name)
            loaded.append(name)
    return loaded
