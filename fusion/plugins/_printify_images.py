"""A product's images on Printify, where an image is artwork: each is uploaded once to the
account's media library (``POST /v1/uploads/images.json`` with its bytes, base64) and placed
by its upload id in the design's print areas: the hub's first image in each print area's
first placeholder (``front`` on the template), the next in the second, and so on; a
placeholder with no hub image keeps the design's artwork, and images beyond the placeholders
are not placed (the job log says so). An update uploads only images the library does not hold
yet and sends ``print_areas`` only when the placement changed."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fusion.errors import PermanentError
from fusion.plugins.base import IMAGES, ProductDraft

if TYPE_CHECKING:
    from fusion.plugins.base import HttpResponse

PRINTIFY_TYPES = ("image/png", "image/jpeg")


class Artwork:
    """Images for a Printify client that has ``_call``."""

    if TYPE_CHECKING:

        def log(self, message: str) -> None: ...

        def _call(
            self,
            method: str,
            path: str,
            operation: str,
            *,
            json_body: Any = None,
            params: Mapping[str, Any] | None = None,
            expect: Sequence[int] = (),
        ) -> HttpResponse: ...

    def _uploads(self, draft: ProductDraft) -> dict[str, str]:
        """Each image's upload id (image key -> id), uploading those not sent before."""
        refused = [i.filename for i in draft.images if i.content_type not in PRINTIFY_TYPES]
        if refused:
            raise PermanentError(
                f"Printify takes PNG and JPEG artwork only: {', '.join(refused)} is not one"
            )
        ids = {}
        for image in draft.images:
            known = draft.sent_images.get(image.key)
            if known:
                ids[image.key] = known
                continue
            body = {
                "file_name": image.filename,
                "contents": base64.b64encode(image.read()).decode(),
            }
            upload = self._call(
                "POST", "/v1/uploads/images.json", "uploads:create", json_body=body
            ).json()
            ids[image.key] = str(upload["id"])
        return ids

    def _placed(
        self, draft: ProductDraft, print_areas: Sequence[Mapping[str, Any]], ids: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        """``print_areas`` with the draft's images placed (as they are when it has none)."""
        placed = [ids[i.key] for i in draft.images]
        areas = []
        for area in print_areas:
            placeholders = [dict(p) for p in area.get("placeholders") or []]
            for placeholder, upload_id in zip(placeholders, placed, strict=False):
                placeholder["images"] = [
                    {"id": upload_id, "x": 0.5, "y": 0.5, "scale": 1, "angle": 0}
                ]
            if len(placed) > len(placeholders):
                self.log(
                    f"printify: the design has {len(placeholders)} placeholder(s); "
                    f"{len(placed) - len(placeholders)} image(s) not placed"
                )
            areas.append({**area, "placeholders": placeholders})
        return areas


def artwork_raw(draft: ProductDraft, ids: Mapping[str, str]) -> dict[str, Any]:
    """What to keep of the push: ``{IMAGES: key -> upload id}`` when it involved images."""
    if not draft.images and not draft.sent_images:
        return {}
    return {IMAGES: dict(ids)}
