"""The job behind every notification. Imported by workers at start (``boot.start``).

``deliver_notification`` sends one delivery row to its channel. The row is re-read first, so
a delivered or failed one is left alone (a duplicate run sends nothing twice). The channel's
rate limit is a token bucket in Redis shared by every worker (``FUSION_NOTIFY_PER_MINUTE``):
when it is short the job is rescheduled without spending an attempt. Each attempt is written
to the row's ``attempt_log`` (when, the code answered, the error, when it is tried again)
in a transaction of its own, then the outcome is decided: a retryable failure comes back
after ``FUSION_NOTIFY_RETRY_BASE_S`` * 2^(attempt-1) seconds, at most
``FUSION_NOTIFY_RETRY_CAP_S``; a refusal, or the last attempt, marks the row failed.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fusion.errors import PermanentError, RateLimited, RetryableError
from fusion.jobs.context import JobContext
from fusion.jobs.registry import job_type
from fusion.notifications import channels
from fusion.notifications.channels.base import Outgoing
from fusion.notifications.models import DeliveryState, Event, NotificationChannel
from fusion.notifications.models import NotificationDelivery as Delivery
from fusion.notifications.service import DELIVER_JOB
from fusion.ratelimit.bucket import BucketConfig, TokenBucket
from fusion.security.crypto import decrypt_channel_secret
from fusion.security.egress import EgressPolicy
from fusion.security.redact import redact_text

MAX_ATTEMPTS = 8
ERROR_CHARS = 500


class DeliveryFailed(RetryableError):
    """The channel could not take the notification; it is sent again after a backoff."""

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def backoff_s(attempt: int, *, base_s: float, cap_s: float) -> float:
    """Seconds before the attempt after failed attempt ``attempt`` (1-based): doubling from
    ``base_s``, never above ``cap_s``."""
    return float(min(cap_s, base_s * 2 ** (max(attempt, 1) - 1)))


def _outgoing(ctx: JobContext, delivery: Delivery, channel: NotificationChannel) -> Outgoing:
    secret = None
    if channel.secret_encrypted is not None:
        secret = decrypt_channel_secret(
            ctx.settings, ctx.org_id, channel.id, channel.secret_encrypted
        )
    path = delivery.payload.get("link_path")
    return Outgoing(
        message_id=delivery.message_id,
        event=delivery.event,
        created_at=delivery.created_at,
        data=dict(delivery.payload.get("data") or {}),
        link=f"{ctx.settings.public_url or ''}{path}" if path else None,
        target=channel.target,
        secret=secret,
    )


def _take_slot(ctx: JobContext, channel_id: uuid.UUID) -> None:
    if ctx.redis is None:
        return
    per_minute = float(ctx.settings.notify_per_minute)
    config = BucketConfig(capacity=per_minute, refill_rate=per_minute / 60.0, margin=0.0)
    grant = TokenBucket(ctx.redis, f"notify:{channel_id}", config).take(1.0)
    if not grant.granted:
        raise RateLimited(grant.wait_s, f"channel {channel_id} is at its rate limit")


def _record(
    ctx: JobContext,
    delivery_id: uuid.UUID,
    *,
    code: int | None,
    error: str | None,
    status: DeliveryState,
    retry_at: datetime | None = None,
) -> None:
    now = datetime.now(UTC)
    error = redact_text(error)[:ERROR_CHARS] if error else None
    entry = {"attempt": ctx.attempt, "at": now.isoformat(), "response_code": code,
             "error": error, "retry_at": retry_at.isoformat() if retry_at else None}  # fmt: skip
    with ctx.session() as session:
        delivery = session.get(Delivery, delivery_id, with_for_update=True)
        if delivery is None:
            return
        delivery.attempts = ctx.attempt
        delivery.attempt_log = [*delivery.attempt_log, entry]
        delivery.response_code, delivery.error, delivery.status = code, error, status
        if status is DeliveryState.DELIVERED:
            delivery.delivered_at = now


@job_type(
    DELIVER_JOB,
    needs_store=False,
    max_attempts=MAX_ATTEMPTS,
    internal="the hub enqueues one per notification; use a channel's send-test instead",
)
def deliver_notification(ctx: JobContext) -> dict[str, Any]:
    """Send delivery ``delivery_id`` to its channel once it succeeds. Raises RateLimited
    (channel bucket short), DeliveryFailed (retryable, with its backoff) or PermanentError
    (a refusal, a missing row, a disabled channel)."""
    delivery_id = ctx.payload_uuid("delivery_id")
    with ctx.session() as session:
        delivery = session.get(Delivery, delivery_id)
        if delivery is None:
            raise PermanentError("the notification no longer exists")
        if delivery.status is not DeliveryState.PENDING:
            return {"delivery_id": str(delivery_id), "already": delivery.status.value}
        channel = session.get(NotificationChannel, delivery.channel_id)
        if channel is None:
            raise PermanentError("the channel no longer exists")
        if not channel.enabled and delivery.event != Event.TEST.value:
            error = "the channel is disabled"
            _record(ctx, delivery_id, code=None, error=error, status=DeliveryState.FAILED)
            return {"delivery_id": str(delivery_id), "skipped": error}
        kind, outgoing, channel_id = channel.kind, _outgoing(ctx, delivery, channel), channel.id
    _take_slot(ctx, channel_id)
    egress = EgressPolicy.from_settings(ctx.settings)
    try:
        code = channels.send(kind, outgoing, settings=ctx.settings, egress=egress)
    except RetryableError as exc:
        if ctx.last_attempt:
            _record(ctx, delivery_id, code=getattr(exc, "code", None), error=str(exc),
                    status=DeliveryState.FAILED)  # fmt: skip
            raise
        wait = backoff_s(ctx.attempt, base_s=ctx.settings.notify_retry_base_s,
                         cap_s=ctx.settings.notify_retry_cap_s)  # fmt: skip
        retry_at = datetime.now(UTC) + timedelta(seconds=wait)
        _record(ctx, delivery_id, code=getattr(exc, "code", None), error=str(exc),
                status=DeliveryState.PENDING, retry_at=retry_at)  # fmt: skip
        raise DeliveryFailed(str(exc), retry_after_s=wait) from None
    except PermanentError as exc:
        _record(ctx, delivery_id, code=getattr(exc, "code", None), error=str(exc),
                status=DeliveryState.FAILED)  # fmt: skip
        raise
    _record(ctx, delivery_id, code=code, error=None, status=DeliveryState.DELIVERED)
    return {"delivery_id": str(delivery_id), "response_code": code}
