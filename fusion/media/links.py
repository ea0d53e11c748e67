"""The hub's own image links (the local backend): an unguessable token naming one stored
object, signed with a key derived from the hub's JWT secret, so a platform fetches the image
from ``FUSION_PUBLIC_URL/media/<token>`` without logging in. A token names its object for as
long as the object exists; deleting the image ends it (the route then answers 404)."""

from __future__ import annotations

import base64
import hashlib
import hmac

ROUTE = "/media/"
_LABEL = b"fusion media link v1:"


def _mac(secret: str, key: str) -> str:
    signing_key = hashlib.sha256(_LABEL + secret.encode()).digest()
    digest = hmac.new(signing_key, key.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def token(secret: str, key: str) -> str:
    """The token of the object stored under ``key``."""
    encoded = base64.urlsafe_b64encode(key.encode()).rstrip(b"=").decode()
    return f"{encoded}.{_mac(secret, key)}"


def key_of(secret: str, presented: str) -> str | None:
    """The object key a token names, or None when it is not one of this hub's tokens."""
    encoded, _, mac = presented.partition(".")
    try:
        key = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return key if mac and hmac.compare_digest(mac, _mac(secret, key)) else None
