"""A listing's images on Amazon, which fetches them itself: the first image's URL goes in
``main_product_image_locator``, the next eight in ``other_product_image_locator_1`` … ``_8``
(``[{"media_location": url, "marketplace_id": ...}]``), on every SKU of the listing. The
URLs are the hub's signed links or pre-signed object-store URLs (``ImageDraft.url``). An
update sends the locators only when the images or their order changed (kept as key ->
attribute in the listing's platform data), deleting the locators no image fills any more."""

from __future__ import annotations

from typing import Any

from fusion.errors import PermanentError
from fusion.plugins.base import IMAGES, ProductDraft

MAIN = "main_product_image_locator"
LOCATORS = (MAIN, *(f"other_product_image_locator_{n}" for n in range(1, 9)))


def image_slots(draft: ProductDraft) -> dict[str, str]:
    """Which attribute each image of the draft fills (image key -> attribute name)."""
    if len(draft.images) > len(LOCATORS):
        raise PermanentError(f"Amazon takes {len(LOCATORS)} images, the product has more")
    return {image.key: slot for image, slot in zip(draft.images, LOCATORS, strict=False)}


def image_attributes(draft: ProductDraft, marketplace_id: str) -> dict[str, Any]:
    """The locator attributes of the draft's images (none without images)."""
    attributes = {}
    for image, slot in zip(draft.images, LOCATORS, strict=False):
        if not image.url:
            raise PermanentError(
                "Amazon fetches images by URL and the hub has no address it can reach: set "
                "FUSION_PUBLIC_URL (local image store) or use the s3 image store"
            )
        attributes[slot] = [{"media_location": image.url, "marketplace_id": marketplace_id}]
    return attributes


def image_patches(draft: ProductDraft, marketplace_id: str) -> list[dict[str, Any]]:
    """The patches that make the listing's locators the draft's: none when the images and
    their order are what the last push sent."""
    slots = image_slots(draft)
    if slots == dict(draft.sent_images):
        return []
    patches = [
        {"op": "replace", "path": f"/attributes/{name}", "value": value}
        for name, value in image_attributes(draft, marketplace_id).items()
    ]
    for gone in sorted(set(draft.sent_images.values()) - set(slots.values())):
        patches.append(
            {
                "op": "delete",
                "path": f"/attributes/{gone}",
                "value": [{"marketplace_id": marketplace_id}],
            }
        )
    return patches


def images_raw(draft: ProductDraft) -> dict[str, Any]:
    """What to keep of the push: ``{IMAGES: key -> attribute}`` when it involved images."""
    if not draft.images and not draft.sent_images:
        return {}
    return {IMAGES: image_slots(draft)}
