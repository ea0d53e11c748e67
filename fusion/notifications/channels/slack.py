"""Slack-compatible incoming webhooks (Slack, Mattermost, Rocket.Chat, Teams' Slack mode):
a JSON ``{"text": ...}`` POSTed to the channel's URL."""

from __future__ import annotations

import json

from fusion.config import Settings
from fusion.notifications.channels.base import Outgoing, classify_http
from fusion.plugins.http import post_once
from fusion.security.egress import EgressPolicy


def message(outgoing: Outgoing) -> dict[str, str]:
    """The message: the summary in bold, then the link in Slack's ``<url|label>`` form."""
    text = f"*{outgoing.summary}*"
    if outgoing.link:
        text += f"\n<{outgoing.link}|Open in Fusion Stage Hub>"
    return {"text": text}


def send(outgoing: Outgoing, *, settings: Settings, egress: EgressPolicy) -> int:
    """POST the message; returns the status (2xx), else raises as ``classify_http``."""
    answer = post_once(
        outgoing.target,
        body=json.dumps(message(outgoing)).encode(),
        headers={"Content-Type": "application/json"},
        egress=egress,
    )
    return classify_http(answer.status, "the Slack webhook")
