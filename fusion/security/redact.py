"""Redact secrets from log records, by key name and by shape: secrets never reach a log.

:class:`RedactingFilter` is installed on the root logger's handlers by workers and the API
(:func:`install`). It rewrites a record's message, args and ``extra`` mappings, so a token
that slipped into a message, a dict or an exception text is shown as ``[REDACTED]``.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[REDACTED]"

SECRET_KEYS = frozenset(
    {
        "token",
        "secret",
        "password",
        "authorization",
        "api_key",
        "apikey",
        "x-api-key",
        "access_token",
        "refresh_token",
        "client_secret",
        "x-shopify-access-token",
        "x-shopify-hmac-sha256",
        "x-amz-access-token",
        "cookie",
        "set-cookie",
        "credentials",
        "webhook_secret",
        "lwa_refresh_token",
    }
)
_SECRET_KEY_PARTS = ("token", "secret", "password", "authorization", "api_key", "credential")

_SHAPES = [
    re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*"),  # JWTs
    re.compile(r"\b(?:shpat|shpss|shpca|shppa|whsec)_[A-Za-z0-9+/=_-]+"),
    re.compile(r"(?i)\bBearer\s+[A-Za-z0-9._~+/=:-]+"),
    re.compile(r"\bAtz[ar]\|[A-Za-z0-9|_-]+"),  # Amazon LWA access/refresh tokens
    # key=value pairs in URLs, query strings and reprs: keep the key, drop the value.
    re.compile(
        r"(?i)\b((?:access_|refresh_|api_|client_)?(?:token|secret|key|password|signature)"
        r"[\"']?\s*[=:]\s*[\"']?)[^\s&\"',;}]+"
    ),
]


# What every shape above needs somewhere in the text, searched for in the case-folded text (a
# superset of what the shapes' IGNORECASE matches, the long s and the Kelvin sign included): a
# log line without any of these has nothing to redact, and most lines (every job's, Celery's
# per task) have none, so they cost one scan instead of one per shape. Folding first and then
# matching case-sensitively is ten times faster than an IGNORECASE alternation.
_MAYBE_SECRET = re.compile(r"eyj|shp|whsec_|bearer|atz|token|secret|key|password|signature")


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """Whether a mapping key names a secret (``Authorization``, ``access_token``, ...).
    Cached: log records ask it of the same few ``extra`` keys on every line."""
    k = key.lower()
    return k in SECRET_KEYS or any(part in k for part in _SECRET_KEY_PARTS)


def redact_text(text: str) -> str:
    """``text`` with every secret-shaped substring replaced by ``[REDACTED]``."""
    if _MAYBE_SECRET.search(text.casefold()) is None:
        return text
    for shape in _SHAPES:
        if shape.groups:
            text = shape.sub(lambda m: m.group(1) + REDACTED, text)
        else:
            text = shape.sub(REDACTED, text)
    return text


def redact(value: Any) -> Any:
    """A copy of ``value`` with secret keys' values and secret-shaped strings redacted;
    mappings, lists and tuples are walked; other objects are returned unchanged."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and is_secret_key(k) else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact(v) for v in value)
    return value


_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    """Rewrites each record in place so no handler ever formats a secret; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep what there is, redacted
            message = str(record.msg)
        record.msg = redact_text(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        for key, value in list(record.__dict__.items()):
            if key in _STANDARD_ATTRS:
                continue
            record.__dict__[key] = REDACTED if is_secret_key(key) else redact(value)
        return True


def install(logger: logging.Logger | None = None) -> RedactingFilter:
    """Attach one RedactingFilter to ``logger`` (root by default) and all of its handlers.

    Idempotent. Handlers added later to the root logger are covered too, because the filter on
    the logger runs before any handler sees a record logged through it; records propagated
    from child loggers are covered by the handler filters."""
    target = logger or logging.getLogger()
    existing = next((f for f in target.filters if isinstance(f, RedactingFilter)), None)
    flt = existing or RedactingFilter()
    if existing is None:
        target.addFilter(flt)
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(flt)
    return flt
