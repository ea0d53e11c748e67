"""How a hub process logs: text for a person at a terminal (the default), or one JSON object
per line for a log store (``FUSION_LOG_FORMAT=json``).

Every line carries the context that applies, without the code that logs passing it: the API
binds ``request_id`` (and ``org_id`` once the org is known) for a request, the job engine
binds ``job_id``, ``job_type``, ``org_id``, ``store_id`` and ``attempt`` while a job runs.
The context lives in a context variable; :class:`ContextFilter` copies it onto each record.
Redaction (``fusion.security.redact``) runs on the same handlers, so neither format ever
shows a secret.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from fusion.security import redact

FORMATS = ("text", "json")
CONTEXT_KEYS = ("request_id", "org_id", "store_id", "job_id", "job_type", "attempt")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_EMPTY: Mapping[str, str] = MappingProxyType({})
_context: ContextVar[Mapping[str, str]] = ContextVar("fusion_log_context", default=_EMPTY)
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def start(**values: Any) -> None:
    """Begin a unit of work (a request) in this thread: the context is exactly ``values``;
    whatever an earlier unit of the same thread bound is gone."""
    _context.set(_clean(values))


def add(**values: Any) -> None:
    """Add ``values`` to the current unit's context (the org, once a request knows it)."""
    _context.set({**_context.get(), **_clean(values)})


def clear() -> None:
    _context.set(_EMPTY)


@contextmanager
def bound(**values: Any) -> Iterator[None]:
    """``values`` in the context for the block (a job's run), the previous context after."""
    token = _context.set({**_context.get(), **_clean(values)})
    try:
        yield
    finally:
        _context.reset(token)


def current() -> Mapping[str, str]:
    return _context.get()


def _clean(values: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in values.items() if v is not None}


class ContextFilter(logging.Filter):
    """Puts the bound context on each record (a key the record already has wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, the context
    keys present, any other ``extra`` the call gave, and the exception's text."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, default=str)


def formatter(log_format: str) -> logging.Formatter:
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {log_format!r}")
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def use(handlers: Iterable[logging.Handler], log_format: str) -> None:
    """Give ``handlers`` (Celery's, say) the context filter, and the JSON formatter when the
    format is json (text keeps the handler's own format)."""
    for handler in handlers:
        if not any(isinstance(f, ContextFilter) for f in handler.filters):
            handler.addFilter(ContextFilter())
        if log_format == "json":
            handler.setFormatter(JsonFormatter())


def configure(log_format: str, *, level: int = logging.INFO) -> None:
    """The root logger of a process that has no logging set up (the API under gunicorn): one
    stderr handler at ``level`` in ``log_format``. Where handlers exist already (Celery's, a
    test runner's), they get the context filter and, for json, the format. Then redaction,
    which covers every handler of the root logger."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(formatter(log_format))
        root.addHandler(handler)
        root.setLevel(level)
    use(root.handlers, log_format)
    redact.install(root)
