"""Job types: each names its handler, whether it needs a store, and what it may do.

A job type is declared once, by a decorator on its handler in its domain's ``jobs.py``
(:func:`job_type`, or :func:`capability_job` for a plugin capability, whose name is the
capability's), under a name constant from the domain's ``service.py``. Workers import the
job modules at start (``boot.start``), so a handler exists wherever its jobs run. Payloads
are checked through a port, :func:`install_payload_validator`, because ``fusion`` may not
import marshmallow: the outer layer (``schemas.payloads``) installs the real validator, and
every job type has a payload schema there.
"""

from __future__ import annotations

import importlib
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fusion.errors import ConfigError, NotFound, ValidationFailed
from fusion.plugins.base import Capability

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from fusion.jobs.context import JobContext

log = logging.getLogger(__name__)

# The hub's own packages: their job modules are imported by ``boot`` itself, never by name.
OWN_PACKAGES = ("fusion", "api", "workers", "schemas", "boot")

Handler = Callable[["JobContext"], Mapping[str, Any] | None]
PayloadValidator = Callable[[str, Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Admitted:
    """What a job type's client rules made of a requested payload: the payload to store, and
    a line for the job's log for each thing changed (a clamp), so the change shows."""

    payload: dict[str, Any]
    notes: tuple[str, ...] = ()


# The rules a job type applies to a payload a client sent (the jobs API) before it is
# stored: ``admit(session, store_id, cleaned_payload)`` in the org's session (a store id
# that is not the org's is refused afterwards, by the enqueue). Raises ValidationFailed
# naming a field only the hub may set. The hub's own enqueues do not go through it.
Admit = Callable[["Session", uuid.UUID | None, dict[str, Any]], Admitted]


class UnknownJobType(NotFound):
    """No job type of that name is registered."""


@dataclass(frozen=True)
class JobType:
    """What the engine needs to know to enqueue and run one kind of job."""

    name: str
    handler: Handler
    needs_store: bool = True
    capability: Capability | None = None
    priority: int = 0
    max_attempts: int | None = None
    # Set for the types only the hub itself enqueues (the jobs API refuses them): what a
    # client does instead, e.g. the listing endpoint where approval policies apply.
    internal: str | None = None
    # The type's rules for a payload a client asks for (see :data:`Admit`); None: as sent.
    admit: Admit | None = None


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


def job_type(
    name: str,
    *,
    needs_store: bool = True,
    capability: Capability | None = None,
    priority: int = 0,
    max_attempts: int | None = None,
    internal: str | None = None,
    admit: Admit | None = None,
) -> Callable[[Handler], Handler]:
    """Register the decorated handler as job type ``name`` (see :class:`JobType`)."""

    def decorate(handler: Handler) -> Handler:
        register(
            JobType(
                name,
                handler,
                needs_store=needs_store,
                capability=capability,
                priority=priority,
                max_attempts=max_attempts,
                internal=internal,
                admit=admit,
            )
        )
        return handler

    return decorate


def capability_job(
    capability: Capability,
    *,
    priority: int = 0,
    internal: str | None = None,
    admit: Admit | None = None,
) -> Callable[[Handler], Handler]:
    """Register the decorated handler as the job of ``capability``, named after it; its
    enqueue is refused when the store's plugin does not support the capability."""
    return job_type(
        capability.value, capability=capability, priority=priority, internal=internal, admit=admit
    )


def get(name: str) -> JobType:
    """The registered job type ``name``; raises :class:`UnknownJobType` (a NotFound)."""
    try:
        return _types[name]
    except KeyError:
        raise UnknownJobType(f"unknown job type {name!r}") from None


def all_names() -> list[str]:
    """The names of every registered job type, sorted."""
    return sorted(_types)


def install_payload_validator(fn: PayloadValidator | None) -> None:
    """Install the function that checks payloads: ``fn(job_type_name, payload)`` returns the
    cleaned payload or raises ValidationFailed(fields=...). ``None`` uninstalls it."""
    global _validator
    _validator = fn


def validate_payload(job_type: JobType, payload: Mapping[str, Any] | None) -> dict[str, Any]:
    """The payload to store for ``job_type``, checked by the installed validator. Raises
    ValidationFailed with field errors on a bad payload, or when no validator is installed
    (an unchecked payload is never stored)."""
    if _validator is None:
        raise ValidationFailed(
            f"job type {job_type.name!r}: no payload validator is installed to check its payload"
        )
    return _validator(job_type.name, dict(payload or {}))


def load_job_modules(names: Iterable[str]) -> list[str]:
    """Import the extension job modules ``names`` (``Settings.job_modules``: a third party's
    or the tests' job types); returns the modules imported. Raises ConfigError for a module
    of the hub itself (``boot`` imports those) and whatever importing a module raises (a
    typo must not go unnoticed)."""
    loaded: list[str] = []
    for name in (n.strip() for n in names):
        if not name:
            continue
        if name.split(".")[0] in OWN_PACKAGES:
            raise ConfigError(f"FUSION_JOB_MODULES: {name} is the hub's own; name extensions only")
        importlib.import_module(name)
        loaded.append(name)
    return loaded
