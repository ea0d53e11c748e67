"""A listing's images on Etsy: ``uploadListingImage`` (multipart) puts a new image at its
rank, or moves one Etsy holds already (``listing_image_id`` and ``rank``, no bytes sent again);
``deleteListingImage`` drops one the hub deleted. An update reads the listing's images once
(``getListingImages``) and sends only what differs: new images, moves, deletes. Etsy takes
JPEG, PNG and GIF; a WebP image is refused (PermanentError naming it) before anything is
sent."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fusion.errors import PermanentError
from fusion.plugins._multipart import FilePart, form_data
from fusion.plugins.base import IMAGES, ProductDraft

if TYPE_CHECKING:
    from fusion.plugins.base import HttpResponse

ETSY_TYPES = ("image/jpeg", "image/png", "image/gif")


class ListingImages:
    """Images for an Etsy client that has ``_call`` and ``shop_id``."""

    if TYPE_CHECKING:

        @property
        def shop_id(self) -> str: ...

        def log(self, message: str) -> None: ...

        def _call(
            self,
            method: str,
            path: str,
            operation: str,
            *,
            params: Mapping[str, Any] | None = None,
            form: Sequence[tuple[str, Any]] | None = None,
            json_body: Any = None,
            expect: Sequence[int] = (),
            multipart: tuple[bytes, str] | None = None,
        ) -> HttpResponse: ...

    def _sync_images(self, listing_id: str, draft: ProductDraft) -> dict[str, Any]:
        """Make the listing's images the draft's, in order; ``{IMAGES: key -> listing image
        id}``, or nothing when the draft has no images and the listing never had any."""
        if not draft.images and not draft.sent_images:
            return {}
        check_image_types(draft)
        base = f"/shops/{self.shop_id}/listings/{listing_id}/images"
        held = [str(i["listing_image_id"]) for i in self._images(listing_id)]
        wanted = {i.key: draft.sent_images.get(i.key) for i in draft.images}
        # Anything Etsy holds that is not one of the draft's goes: a deleted image, or one an
        # earlier attempt of this create uploaded before it failed.
        for image_id in [h for h in held if h not in wanted.values()]:
            self._call("DELETE", f"{base}/{image_id}", "deleteListingImage", expect=(404,))
            held.remove(image_id)
        sent: dict[str, str] = {}
        uploaded = moved = 0
        for rank, image in enumerate(draft.images, start=1):
            image_id = wanted[image.key] or ""
            if image_id in held:
                if held.index(image_id) != rank - 1:
                    move = form_data([("listing_image_id", image_id), ("rank", str(rank))])
                    self._call("POST", base, "uploadListingImage", multipart=move)
                    held.remove(image_id)
                    held.insert(rank - 1, image_id)
                    moved += 1
            else:
                body = form_data(
                    [("rank", str(rank)), ("alt_text", image.alt)],
                    FilePart("image", image.filename, image.content_type, image.read()),
                )
                created = self._call("POST", base, "uploadListingImage", multipart=body).json()
                image_id = str(created["listing_image_id"])
                held.insert(rank - 1, image_id)
                uploaded += 1
            sent[image.key] = image_id
        self.log(f"etsy listing {listing_id}: {uploaded} image(s) uploaded, {moved} moved")
        return {IMAGES: sent}

    def _images(self, listing_id: str) -> list[dict[str, Any]]:
        body = self._call("GET", f"/listings/{listing_id}/images", "getListingImages").json()
        return sorted(body.get("results") or [], key=lambda i: int(i.get("rank") or 0))


def check_image_types(draft: ProductDraft) -> None:
    """Raise PermanentError naming the draft's images Etsy does not take (checked before the
    listing is created or changed)."""
    refused = [i.filename for i in draft.images if i.content_type not in ETSY_TYPES]
    if refused:
        raise PermanentError(
            f"Etsy takes JPEG, PNG and GIF images only: {', '.join(refused)} is not one"
        )
