"""What each event says: the line a person reads (email subject, Slack text) from the ids,
names and figures a payload carries. Payloads never carry secrets: each emitter names its
fields one by one (``fusion.notifications.service.emit`` redacts on top of that)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fusion.notifications.models import Event


def _approval(data: Mapping[str, Any], what: str) -> str:
    return (
        f"Approval {what}: {data.get('action')} of {data.get('resource_type')} "
        f"{data.get('resource_id') or ''}".rstrip()
    )


def _store(data: Mapping[str, Any], what: str) -> str:
    process = str(data.get("process", "sync")).replace("_", " ")
    return f"Store {data.get('store_name')} ({data.get('platform')}): {process} {what}"


SUMMARIES = {
    Event.APPROVAL_WAITING: lambda d: _approval(d, "waiting for a decision"),
    Event.APPROVAL_EXPIRING: lambda d: _approval(d, f"expires at {d.get('expires_at')}"),
    Event.STORE_SYNC_FAILING: lambda d: _store(d, "is failing"),
    Event.STORE_SYNC_LATE: lambda d: _store(d, f"is late (last {d.get('last_at') or 'never'})"),
    Event.STORE_THROTTLED: lambda d: (
        f"Store {d.get('store_name')} ({d.get('platform')}) throttled "
        f"{d.get('throttles')} times in {d.get('minutes')} min"
    ),
    Event.STOCK_OUT: lambda d: (
        f"SKU {d.get('sku')} is out of stock on {len(d.get('channels') or [])} channel(s)"
    ),
    Event.JOBS_FAILING: lambda d: (
        f"{d.get('failed')} jobs failed in the last {d.get('minutes')} min "
        f"(threshold {d.get('threshold')})"
    ),
    Event.TEST: lambda d: "Test notification from Fusion Stage Hub",
}


def summary(event: str, data: Mapping[str, Any]) -> str:
    """One line for ``event``; an event this version does not know gets its name."""
    try:
        return str(SUMMARIES[Event(event)](data))
    except ValueError:
        return event


def details(data: Mapping[str, Any]) -> str:
    """The payload's figures, one ``key: value`` a line (lists by count), for an email body."""
    lines = []
    for key, value in data.items():
        if isinstance(value, list):
            lines.append(f"{key}: {len(value)}")
            lines.extend(f"  - {_flat(item)}" for item in value[:50])
        else:
            lines.append(f"{key}: {_flat(value)}")
    return "\n".join(lines)


def _flat(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)
