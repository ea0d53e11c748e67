"""Webhook signing as the platforms do it, shared by the plugins (verifiers) and the sandboxes
(senders), so both sides compute the same bytes.

- Shopify: ``X-Shopify-Hmac-SHA256`` = base64(HMAC-SHA256(secret, raw body)).
- Standard Webhooks (Etsy): ``webhook-signature`` = space-separated ``v1,<base64>`` entries,
  each HMAC-SHA256 over ``"{webhook-id}.{webhook-timestamp}.{raw body}"`` keyed by the secret
  (a ``whsec_`` prefix means the rest is base64 of the key bytes).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from fusion.errors import PermanentError

DEFAULT_TOLERANCE_S = 300  # Standard Webhooks' reference libraries: 5 minutes either way


def shopify_hmac(secret: str, body: bytes) -> str:
    """The base64 HMAC-SHA256 of ``body`` keyed by ``secret`` (Shopify's header value)."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_shopify_hmac(secret: str, body: bytes, header: str | None) -> None:
    """Raise PermanentError unless ``header`` is the HMAC of ``body`` (constant-time compare)."""
    if not header:
        raise PermanentError("missing X-Shopify-Hmac-SHA256 header")
    if not hmac.compare_digest(shopify_hmac(secret, body).encode(), header.strip().encode()):
        raise PermanentError("webhook signature does not match the body")


def standard_webhooks_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: ``whsec_<base64>`` or bare base64."""
    raw = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError as exc:
        raise PermanentError("webhook secret is not valid base64") from exc


def standard_webhooks_sign(secret: str, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one delivery."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(standard_webhooks_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify_standard_webhook(
    secret: str,
    *,
    msg_id: str | None,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> None:
    """Raise PermanentError unless one ``v1`` entry of ``signature`` matches and the timestamp
    is within ``tolerance_s`` of ``now`` (both directions). Compares in constant time."""
    if not msg_id or not timestamp or not signature:
        raise PermanentError("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        sent_at = int(timestamp)
    except ValueError as exc:
        raise PermanentError("webhook-timestamp is not an integer") from exc
    current = time.time() if now is None else now
    if sent_at < current - tolerance_s:
        raise PermanentError("webhook timestamp too old")
    if sent_at > current + tolerance_s:
        raise PermanentError("webhook timestamp too new")
    expected = standard_webhooks_sign(secret, msg_id, timestamp, body).split(",", 1)[1].encode()
    matched = False
    for entry in signature.split(" "):
        version, _, value = entry.partition(",")
        # Compare every entry (no early exit) so timing does not reveal which one matched.
        if version == "v1" and hmac.compare_digest(expected, value.encode()):
            matched = True
    if not matched:
        raise PermanentError("webhook signature does not match the body")
