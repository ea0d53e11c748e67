"""What an uploaded file is, from its first bytes: the header a client sends is not trusted.

Only the raster formats every platform the hub publishes to takes (Shopify, Etsy, Amazon and
Printify all accept JPEG and PNG; GIF and WebP reach Shopify and Etsy) are images here.
"""

from __future__ import annotations

# content type -> (file extension, how the file begins)
_SIGNATURES: tuple[tuple[str, str, bytes], ...] = (
    ("image/jpeg", "jpg", b"\xff\xd8\xff"),
    ("image/png", "png", b"\x89PNG\r\n\x1a\n"),
    ("image/gif", "gif", b"GIF87a"),
    ("image/gif", "gif", b"GIF89a"),
)

IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp"}


def image_type(head: bytes) -> str | None:
    """The content type of an image starting with ``head`` (its first 16 bytes are enough),
    or None when it is none of :data:`IMAGE_TYPES`."""
    for content_type, _, magic in _SIGNATURES:
        if head.startswith(magic):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None
