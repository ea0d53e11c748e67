"""How one notification goes out on each kind of channel: :func:`send` (the kinds share
``base``: the notification, and what an answer means)."""

from __future__ import annotations

from fusion.config import Settings
from fusion.notifications.channels import slack, smtp, webhook
from fusion.notifications.channels.base import Outgoing
from fusion.notifications.models import ChannelKind
from fusion.security.egress import EgressPolicy

SENDERS = {
    ChannelKind.EMAIL: smtp.send,
    ChannelKind.SLACK: slack.send,
    ChannelKind.WEBHOOK: webhook.send,
}


def send(kind: ChannelKind, outgoing: Outgoing, *, settings: Settings, egress: EgressPolicy) -> int:
    """Send ``outgoing`` on a channel of ``kind``; returns the code the other end answered.
    Raises Rejected, TryLater (``base``), or EgressRefused (a PermanentError) for a
    destination the hub may not call."""
    return SENDERS[kind](outgoing, settings=settings, egress=egress)
