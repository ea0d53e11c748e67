"""Image locators in the Amazon sandbox. Amazon takes a listing's images by URL
(``main_product_image_locator`` and ``other_product_image_locator_1`` … ``_8``, each
``[{"media_location": url, "marketplace_id": ...}]``) and fetches them itself, so the sandbox
fetches every new location over HTTP when a put or patch sets it: an address it cannot reach,
or bytes that are not a JPEG, PNG or GIF, is an ERROR issue on that attribute (the
submission is INVALID and nothing changes). What it fetched is kept per attribute (URL,
``sha256``, ``size``) and shown in ``/_sandbox/state``."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from typing import Any

from fusion.media.sniff import image_type
from fusion.sandbox._amazon_state import issue

LOCATORS = (
    "main_product_image_locator",
    *(f"other_product_image_locator_{n}" for n in range(1, 9)),
)
AMAZON_TYPES = ("image/jpeg", "image/png", "image/gif")
MAX_BYTES = 10 * 1024 * 1024
FETCH_TIMEOUT_S = 10


def fetched_images(
    attributes: dict[str, Any], known: dict[str, dict[str, Any]]
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Each image locator of ``attributes`` with what its URL holds (fetched again only when
    the URL is not one ``known`` already has), and the issues of those that failed."""
    images: dict[str, dict[str, Any]] = {}
    issues = []
    for name in LOCATORS:
        entries = attributes.get(name)
        if not entries:
            continue
        url = str((entries[0] or {}).get("media_location") or "")
        if known.get(name, {}).get("url") == url:
            images[name] = known[name]
            continue
        fetched, problem = _fetch(url)
        if problem:
            issues.append(issue("18193", f"{name}: {problem}", name))
        else:
            images[name] = fetched
    return images, issues


def _fetch(url: str) -> tuple[dict[str, Any], str | None]:
    if not url.startswith(("http://", "https://")):
        return {}, f"media_location {url!r} is not an http(s) URL"
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as answer:  # noqa: S310
            content = answer.read(MAX_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return {}, f"the image at media_location could not be downloaded ({exc})"[:300]
    if len(content) > MAX_BYTES:
        return {}, "the image at media_location is larger than 10 MB"
    if image_type(content[:16]) not in AMAZON_TYPES:
        return {}, "the file at media_location is not a JPEG, PNG or GIF image"
    return {"url": url, "sha256": hashlib.sha256(content).hexdigest(), "size": len(content)}, None
