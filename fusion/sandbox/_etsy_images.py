"""Listing images in the Etsy sandbox: ``uploadListingImage`` (multipart: an ``image`` file
put at ``rank``, or an existing ``listing_image_id`` moved to ``rank``), ``getListingImages``
and ``deleteListingImage``, checked against the contract's multipart schema when it is there.
Ranks start at 1 and stay dense: an image put at rank r moves the ones from r on along. A
file that is not a JPEG, PNG or GIF is refused (400), as Etsy does; each image keeps the
``sha256`` and ``size`` of its bytes (``/_sandbox/state``) so tests can check what arrived.

Etsy publishes a listing only with an image: activating one (``updateListing`` with
``state=active``) without any is refused 400 (:meth:`ListingImages.activation_problem`).
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from fusion.media.sniff import image_type
from fusion.sandbox._etsy_contract import API, coerce_form, request_schema, schema_problem
from fusion.sandbox._etsy_state import Shop
from fusion.sandbox.server import json_response

UPLOAD_PATH = f"{API}/shops/{{shop_id}}/listings/{{listing_id}}/images"
# Etsy's listing images: JPEG, PNG or GIF (WebP is not among them).
ETSY_TYPES = ("image/jpeg", "image/png", "image/gif")
MAX_IMAGES = 10


class ListingImages:
    if TYPE_CHECKING:
        import threading
        from collections.abc import Iterator

        lock: threading.RLock
        _ids: Iterator[int]

        def _authorise(
            self, request: Request, shop_id: int | None
        ) -> tuple[Shop, dict[str, str]]: ...

        def _listing_shop(self, owner: Shop, listing_id: int) -> Shop: ...

    def upload_listing_image(self, request: Request, shop_id: int, listing_id: int) -> Response:
        with self.lock:
            shop, headers = self._authorise(request, shop_id)
            if listing_id not in shop.listings:
                return json_response({"error": f"Listing {listing_id} not found"}, 404, headers)
            if request.mimetype != "multipart/form-data":
                return json_response(
                    {"error": "Content-Type must be multipart/form-data"}, 400, headers
                )
            schema = request_schema(UPLOAD_PATH, "post", "multipart/form-data")
            data = coerce_form(request.form, schema or {})
            problem = schema_problem(schema, data)
            if problem:
                return json_response({"error": problem}, 400, headers)
            images = shop.images.setdefault(listing_id, [])
            rank = max(1, int(data.get("rank") or 1))
            upload = request.files.get("image")
            if upload is not None:
                content = upload.read()
                if image_type(content[:16]) not in ETSY_TYPES:
                    return json_response(
                        {"error": "image must be a JPEG, PNG or GIF file"}, 400, headers
                    )
                if len(images) >= MAX_IMAGES:
                    return json_response(
                        {"error": f"a listing holds at most {MAX_IMAGES} images"}, 409, headers
                    )
                image = _image(listing_id, next(self._ids), content, str(data.get("alt_text", "")))
            elif data.get("listing_image_id"):
                found = [i for i in images if i["listing_image_id"] == data["listing_image_id"]]
                if not found:
                    return json_response(
                        {"error": f"Image {data['listing_image_id']} not found"}, 404, headers
                    )
                image = found[0]
                images.remove(image)
            else:
                return json_response(
                    {"error": "either image or listing_image_id is required"}, 400, headers
                )
            images.insert(min(rank, len(images) + 1) - 1, image)
            _rerank(images)
            view = _view(image)
        return json_response(view, 201, headers)

    def get_listing_images(self, request: Request, listing_id: int) -> Response:
        with self.lock:
            owner, headers = self._authorise(request, None)
            shop = self._listing_shop(owner, listing_id)
            results = [_view(i) for i in shop.images.get(listing_id, [])]
        return json_response({"count": len(results), "results": results}, 200, headers)

    def delete_listing_image(
        self, request: Request, shop_id: int, listing_id: int, listing_image_id: int
    ) -> Response:
        with self.lock:
            shop, headers = self._authorise(request, shop_id)
            images = shop.images.get(listing_id, [])
            image = next((i for i in images if i["listing_image_id"] == listing_image_id), None)
            if listing_id not in shop.listings or image is None:
                return json_response({"error": f"Image {listing_image_id} not found"}, 404, headers)
            images.remove(image)
            _rerank(images)
        return Response(status=204, headers=headers)

    def activation_problem(self, shop: Shop, listing_id: int, data: dict[str, Any]) -> str | None:
        """Why ``updateListing`` may not make the listing active (None when it may)."""
        if data.get("state") == "active" and not shop.images.get(listing_id):
            return "A listing needs at least one image to be active"
        return None


def _image(listing_id: int, image_id: int, content: bytes, alt: str) -> dict[str, Any]:
    now = int(time.time())
    return {
        "listing_id": listing_id,
        "listing_image_id": image_id,
        "created_timestamp": now,
        "creation_tsz": now,
        "rank": 1,
        "alt_text": alt,
        "url_fullxfull": f"https://i.etsystatic.test/{image_id}/il_fullxfull.jpg",
        "url_570xN": f"https://i.etsystatic.test/{image_id}/il_570xN.jpg",
        "sha256": hashlib.sha256(content).hexdigest(),
        "size": len(content),
    }


def _rerank(images: list[dict[str, Any]]) -> None:
    for rank, image in enumerate(images, start=1):
        image["rank"] = rank


def _view(image: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in image.items() if k not in ("sha256", "size")}
