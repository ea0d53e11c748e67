"""The hub's own image links (the local backend): an unguessable token naming one stored
object, signed (itsdangerous, with the hub's JWT secret and this purpose as its salt), so a
platform fetches the image from ``FUSION_PUBLIC_URL/media/<token>`` without logging in. A
token names its object for as long as the object exists; deleting the image ends it (the
route then answers 404)."""

from __future__ import annotations

from itsdangerous import BadSignature, URLSafeSerializer

ROUTE = "/media/"
_SALT = "fusion media link v1"


def token(secret: str, key: str) -> str:
    """The token of the object stored under ``key``."""
    return URLSafeSerializer(secret, salt=_SALT).dumps(key)


def key_of(secret: str, presented: str) -> str | None:
    """The object key a token names, or None when it is not one of this hub's tokens."""
    try:
        key = URLSafeSerializer(secret, salt=_SALT).loads(presented)
    except BadSignature:
        return None
    return key if isinstance(key, str) else None
