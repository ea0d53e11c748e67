"""A product's images on Shopify: each new image is staged (``stagedUploadsCreate`` with
resource ``IMAGE``, then a multipart POST of its bytes to the storage host), and
``productSet`` gets the product's whole list of ``files`` in order: an image sent before by
its id (not uploaded again), a new one by its staged ``resourceUrl``. ``productSet`` replaces
the list, so an image the hub deleted goes and a new order is the files' order; the
product's ``media`` in that order give the ids kept for the next update."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fusion.errors import PermanentError
from fusion.plugins import _shopify_queries as q
from fusion.plugins._multipart import FilePart, form_data
from fusion.plugins._shopify_calls import ShopifyCalls
from fusion.plugins.base import IMAGES, ImageDraft, ProductDraft
from fusion.ratelimit.spec import ApiCall

MEDIA_PAGE = 50
PRODUCT_SET_WITH_MEDIA = f"""
mutation productSet($input: ProductSetInput!, $identifier: ProductSetIdentifiers) {{
  productSet(input: $input, identifier: $identifier, synchronous: true) {{
    product {{ {q.PRODUCT_FIELDS} media(first: {MEDIA_PAGE}) {{ nodes {{ id }} }} }}
    userErrors {{ field message code }}
  }}
}}
"""
STAGE_IMAGES = """
mutation stageImages($input: [StagedUploadInput!]!) {
  stagedUploadsCreate(input: $input) {
    stagedTargets { url resourceUrl parameters { name value } }
    userErrors { field message }
  }
}
"""


class ProductMedia(ShopifyCalls):
    """Images for ``productSet``, for a client that has ``graphql``, ``_payload`` and
    ``http``."""

    def _with_files(self, draft: ProductDraft, product_input: dict[str, Any]) -> str:
        """Add the draft's ``files`` to ``product_input`` (staging the new images first) and
        return the document to send: the plain ``productSet`` when the draft has no images
        and the listing never sent any (the platform's own are then left alone)."""
        if not draft.images and not draft.sent_images:
            return q.PRODUCT_SET
        new = [i for i in draft.images if i.key not in draft.sent_images]
        staged = dict(zip((i.key for i in new), self._stage_images(new), strict=True))
        product_input["files"] = [
            {"id": draft.sent_images[i.key]}
            if i.key in draft.sent_images
            else {
                "originalSource": staged[i.key],
                "contentType": "IMAGE",
                "alt": i.alt,
                "filename": i.filename,
            }
            for i in draft.images
        ]
        if new:
            self.log(
                f"shopify: {len(new)} new image(s) staged, "
                f"{len(draft.images) - len(new)} kept by id"
            )
        return PRODUCT_SET_WITH_MEDIA

    def _stage_images(self, images: list[ImageDraft]) -> list[str]:
        """Stage each image's bytes; their ``resourceUrl``s, in order."""
        if not images:
            return []
        data = self.graphql(
            "stageImages",
            STAGE_IMAGES,
            {
                "input": [
                    {
                        "resource": "IMAGE",
                        "filename": i.filename,
                        "mimeType": i.content_type,
                        "httpMethod": "POST",
                    }
                    for i in images
                ]
            },
        )
        targets = self._payload(data, "stagedUploadsCreate", "stagedUploadsCreate")
        sources = []
        for image, target in zip(images, targets["stagedTargets"], strict=True):
            fields = [(p["name"], p["value"]) for p in target["parameters"]]
            body, content_type = form_data(
                fields, FilePart("file", image.filename, image.content_type, image.read())
            )
            # The upload goes to the storage host, never with the shop's access token.
            self.http.request(
                "POST",
                target["url"],
                call=ApiCall(operation="staged-upload"),
                headers={"Content-Type": content_type},
                data=body,
            )
            if not target.get("resourceUrl"):
                raise PermanentError("shopify staged an image without a resourceUrl")
            sources.append(str(target["resourceUrl"]))
        return sources


def media_ids(draft: ProductDraft, product: Mapping[str, Any]) -> dict[str, Any]:
    """What to keep of the images after a ``productSet`` with files: ``{IMAGES: key -> media
    id}`` in the draft's order (empty when no files were sent)."""
    if "media" not in product:
        return {}
    nodes = (product.get("media") or {}).get("nodes") or []
    if len(nodes) != len(draft.images):
        raise PermanentError(
            f"shopify holds {len(nodes)} media for the product's {len(draft.images)} images"
        )
    return {IMAGES: {i.key: str(n["id"]) for i, n in zip(draft.images, nodes, strict=True)}}
