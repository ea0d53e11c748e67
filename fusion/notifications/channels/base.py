"""What every kind of channel shares: the notification going out and how an answer is read.

Every kind answers with the code the other end gave (HTTP status, SMTP reply) or raises:
:class:`Rejected` when sending again cannot help (a 4xx, a refused destination, a recipient
the mail server refuses), :class:`TryLater` when it may (a 5xx, 408/429, a timeout, a
connection refused). Neither message ever carries what the other end answered beyond its
code, nor the target URL (a Slack URL is a credential).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fusion.errors import PermanentError, RetryableError
from fusion.notifications import events
from fusion.security.crypto import Secret


class Rejected(PermanentError):
    """The channel refused the notification; sending it again would not help."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class TryLater(RetryableError):
    """The channel could not take the notification now."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Outgoing:
    """One notification as it goes out: the same id and timestamp on every attempt."""

    message_id: str
    event: str
    created_at: datetime
    data: Mapping[str, Any]
    link: str | None
    target: str
    secret: Secret | None = None

    @property
    def summary(self) -> str:
        return events.summary(self.event, self.data)

    def body(self) -> bytes:
        """The JSON document webhook channels receive (Standard Webhooks' type/timestamp/data),
        serialised once: these exact bytes are the bytes signed."""
        document = {
            "type": self.event,
            "timestamp": self.created_at.isoformat(),
            "data": {**self.data, "link": self.link},
        }
        return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def classify_http(status: int, where: str) -> int:
    """``status`` if it is a 2xx; raises TryLater for 408, 429 and 5xx, Rejected otherwise."""
    if 200 <= status < 300:
        return status
    if status in (408, 429) or status >= 500:
        raise TryLater(f"{where} answered {status}", code=status)
    raise Rejected(f"{where} answered {status}", code=status)
