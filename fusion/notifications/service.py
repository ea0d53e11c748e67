"""Notification channels and the one way an event reaches them, :func:`emit`.

``emit`` runs in the transaction of the change that caused the event (an approval asked for,
stock that hit 0) or of the periodic check: it writes one delivery row per enabled channel
subscribed to the event, and one ``deliver_notification`` job per row, so the delivery is as
durable as the change and is published only after the commit. A ``dedup_key`` makes the
same condition notify a channel once (the rows are unique per channel and key).

Channels are managed by owners; every change is audited. An outbound webhook channel gets a
Standard Webhooks signing secret (``whsec_...``) at creation, returned once and stored
encrypted, bound to its org and channel.
"""

from __future__ import annotations

import base64
import re
import secrets
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from fusion.audit.service import audited_create, audited_delete, audited_update
from fusion.auth.access import Access
from fusion.config import Settings
from fusion.errors import NotFound, ValidationFailed
from fusion.jobs import service as jobs
from fusion.notifications.models import (
    SUBSCRIBABLE,
    ChannelKind,
    Event,
    NotificationChannel,
    NotificationDelivery,
)
from fusion.security.crypto import encrypt_channel_secret
from fusion.security.egress import EgressPolicy, EgressRefused
from fusion.security.redact import redact

DELIVER_JOB = "deliver_notification"
# One address, no display name, no header tricks (a newline would add a header).
EMAIL = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+")
RESOURCE = "notification_channel"
AUDIT_FIELDS = ("name", "kind", "shown_target", "events", "enabled", "thresholds")
# The periodic checks' thresholds (docs/notifications.md), each overridable per channel.
THRESHOLDS: Mapping[str, int] = {
    # a store's inventory sync or order pull not done for this long is late
    "sync_late_minutes": 60,
    # this many jobs of the org failed for good within the last hour
    "failed_jobs_per_hour": 10,
    # this many throttled calls to one store per hour (measured between two checks)
    "throttles_per_hour": 60,
}


@dataclass(frozen=True)
class CreatedChannel:
    """A new channel, and its signing secret (webhooks only): the one time it is shown."""

    channel: NotificationChannel
    signing_secret: str | None


def new_signing_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and the base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def threshold(channel: NotificationChannel, name: str) -> int:
    """The channel's ``name`` threshold, else the default."""
    value = (channel.thresholds or {}).get(name)
    return (
        int(value) if isinstance(value, int) and not isinstance(value, bool) else THRESHOLDS[name]
    )


def _check_target(settings: Settings, kind: ChannelKind, target: str) -> None:
    if kind is ChannelKind.EMAIL:
        if not settings.smtp_host:
            raise ValidationFailed(
                "email channels need an SMTP server",
                fields={"kind": ["email needs FUSION_SMTP_HOST to be set on the hub"]},
            )
        if not EMAIL.fullmatch(target):
            raise ValidationFailed(fields={"target": ["Not a valid email address."]})
        return
    try:
        EgressPolicy.from_settings(settings).check(target)
    except EgressRefused as exc:
        raise ValidationFailed(fields={"target": [f"the hub may not call it: {exc}"]}) from None


def _check_fields(events: Iterable[str] | None, thresholds: Mapping[str, Any] | None) -> None:
    errors: dict[str, list[str]] = {}
    unknown = sorted(set(events or ()) - {e.value for e in SUBSCRIBABLE})
    if unknown:
        errors["events"] = [f"unknown events: {', '.join(unknown)}"]
    for name, value in (thresholds or {}).items():
        if name not in THRESHOLDS:
            errors.setdefault("thresholds", []).append(f"unknown threshold {name!r}")
        elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
            errors.setdefault("thresholds", []).append(f"{name} must be a positive integer")
    if errors:
        raise ValidationFailed(fields=errors)


def create_channel(
    session: Session,
    access: Access,
    settings: Settings,
    *,
    name: str,
    kind: ChannelKind,
    target: str,
    events: Sequence[str],
    enabled: bool = True,
    thresholds: Mapping[str, Any] | None = None,
) -> CreatedChannel:
    """Add a channel to the caller's org (audited). Raises ValidationFailed naming the field:
    an unknown event or threshold, an email channel on a hub without SMTP, a URL the egress
    policy refuses (e.g. a private address when private egress is off)."""
    _check_fields(events, thresholds)
    _check_target(settings, kind, target)
    channel = NotificationChannel(
        id=uuid.uuid4(),
        org_id=access.org_id,
        name=name,
        kind=kind,
        target=target,
        events=sorted(set(events)),
        enabled=enabled,
        thresholds=dict(thresholds or {}),
        created_by=access.principal.person_id,
    )
    secret = None
    if kind is ChannelKind.WEBHOOK:
        secret = new_signing_secret()
        channel.secret_encrypted = encrypt_channel_secret(
            settings, access.org_id, channel.id, secret
        )
    audited_create(
        session, org_id=access.org_id, actor=access.principal, obj=channel,
        action="notification_channel.create", resource_type=RESOURCE, fields=AUDIT_FIELDS,
    )  # fmt: skip
    return CreatedChannel(channel, secret)


def get_channel(session: Session, channel_id: uuid.UUID) -> NotificationChannel:
    """One of the org's channels; raises NotFound (also for another org's)."""
    channel = session.get(NotificationChannel, channel_id)
    if channel is None:
        raise NotFound("No such notification channel.")
    return channel


def update_channel(
    session: Session,
    access: Access,
    settings: Settings,
    channel_id: uuid.UUID,
    changes: Mapping[str, Any],
) -> NotificationChannel:
    """Change a channel's name, target, events, enabled or thresholds (audited), checked as
    :func:`create_channel` checks them; raises NotFound or ValidationFailed."""
    channel = get_channel(session, channel_id)
    _check_fields(changes.get("events"), changes.get("thresholds"))
    if "target" in changes:
        _check_target(settings, channel.kind, changes["target"])
    values = dict(changes)
    if "events" in values:
        values["events"] = sorted(set(values["events"]))
    audited_update(
        session, org_id=access.org_id, actor=access.principal, obj=channel, changes=values,
        action="notification_channel.update", resource_type=RESOURCE, fields=AUDIT_FIELDS,
    )  # fmt: skip
    return channel


def delete_channel(session: Session, access: Access, channel_id: uuid.UUID) -> None:
    """Remove a channel and its delivery log (audited); raises NotFound."""
    channel = get_channel(session, channel_id)
    audited_delete(
        session, org_id=access.org_id, actor=access.principal, obj=channel,
        action="notification_channel.delete", resource_type=RESOURCE, fields=AUDIT_FIELDS,
    )  # fmt: skip


def emit(
    session: Session,
    *,
    org_id: uuid.UUID,
    event: Event,
    data: Mapping[str, Any],
    dedup_key: str | None = None,
    link_path: str | None = None,
    channels: Sequence[NotificationChannel] | None = None,
) -> list[NotificationDelivery]:
    """Queue ``event`` for every enabled channel of the org subscribed to it (or for
    ``channels`` only), in the caller's transaction; returns the deliveries written. A
    channel that already has a delivery with ``dedup_key`` gets nothing. ``data`` must be
    JSON-able ids, names and figures; anything secret-looking is redacted all the same."""
    if channels is None:
        channels = list(
            session.scalars(
                select(NotificationChannel)
                .where(
                    NotificationChannel.enabled.is_(True),
                    NotificationChannel.events.contains([event.value]),
                )
                .order_by(NotificationChannel.id)
            )
        )
    payload = {"type": event.value, "data": redact(dict(data)), "link_path": link_path}
    written: list[NotificationDelivery] = []
    for channel in channels:
        row_id = session.scalar(
            pg_insert(NotificationDelivery)
            .values(
                id=uuid.uuid4(),
                org_id=org_id,
                channel_id=channel.id,
                event=event.value,
                message_id=f"msg_{uuid.uuid4().hex}",
                dedup_key=dedup_key,
                payload=payload,
            )
            .on_conflict_do_nothing(index_elements=["channel_id", "dedup_key"])
            .returning(NotificationDelivery.id)
        )
        if row_id is None:
            continue
        delivery = session.get(NotificationDelivery, row_id)
        assert delivery is not None
        job = jobs.enqueue(
            session, org_id=org_id, job_type=DELIVER_JOB, payload={"delivery_id": str(row_id)}
        )
        delivery.job_id = job.id
        written.append(delivery)
    session.flush()
    return written


def send_test(session: Session, access: Access, channel_id: uuid.UUID) -> NotificationDelivery:
    """Queue a ``test`` notification to one channel, enabled or not subscribed; raises
    NotFound. What happened shows in the delivery log."""
    channel = get_channel(session, channel_id)
    [delivery] = emit(
        session,
        org_id=access.org_id,
        event=Event.TEST,
        data={"channel_id": str(channel.id), "channel_name": channel.name},
        channels=[channel],
    )
    return delivery
