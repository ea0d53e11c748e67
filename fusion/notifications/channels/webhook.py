"""Signed outbound webhooks, per the Standard Webhooks specification: ``webhook-id`` (the
delivery's id, the same on every retry, for the receiver's de-duplication),
``webhook-timestamp`` (seconds, this attempt's) and ``webhook-signature`` (``v1,<base64>``
of HMAC-SHA256 over ``id.timestamp.body`` keyed by the channel's ``whsec_`` secret)."""

from __future__ import annotations

import time

from fusion.config import Settings
from fusion.notifications.channels.base import Outgoing, Rejected, classify_http
from fusion.plugins.http import post_once
from fusion.security.egress import EgressPolicy
from fusion.security.signing import standard_webhooks_sign


def signed_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt, and the content type."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_webhooks_sign(secret, msg_id, timestamp, body),
        "Content-Type": "application/json",
    }


def send(outgoing: Outgoing, *, settings: Settings, egress: EgressPolicy) -> int:
    """POST the signed body; returns the status (2xx), else raises as ``classify_http``."""
    if outgoing.secret is None:
        raise Rejected("the channel has no signing secret")
    body = outgoing.body()
    headers = signed_headers(
        str.__str__(outgoing.secret), outgoing.message_id, int(time.time()), body
    )
    answer = post_once(outgoing.target, body=body, headers=headers, egress=egress)
    return classify_http(answer.status, "the webhook receiver")
