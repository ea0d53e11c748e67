"""Product images: upload, list in order, reorder, delete; and the hub's own image links,
which platforms fetch without logging in (``/media/<token>``, the local image store)."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint as FlaskBlueprint
from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint

from api.context import hub
from api.preflight import image_upload
from api.security import access, org_scope, public, tx
from fusion.auth.models import Role
from fusion.catalog import images
from fusion.catalog import service as catalog
from fusion.catalog.models import ProductImage
from fusion.errors import NotFound, ValidationFailed
from fusion.media import links
from fusion.media.sniff import image_type
from fusion.media.storage import LocalStore, media_store
from schemas.images import ImageListSchema, ImageOrderSchema, ImageSchema

blp = Blueprint("images", __name__, url_prefix="/orgs", description="Product images.")
served = FlaskBlueprint("media", __name__)
MAX_ALT = 500


@blp.route("/<uuid:org_id>/products/<uuid:product_id>/images")
class Images(MethodView):
    @blp.response(200, ImageListSchema)
    @org_scope(Role.VIEWER)
    def get(self, org_id: uuid.UUID, product_id: uuid.UUID) -> dict[str, Any]:
        """The product's images, the main one (position 0) first."""
        catalog.get_product(tx(), product_id)
        return {"items": images.product_images(tx(), product_id)}

    @blp.response(201, ImageSchema)
    @org_scope(Role.OPERATOR)
    @image_upload
    def post(self, org_id: uuid.UUID, product_id: uuid.UUID) -> ProductImage:
        """Add an image, last of the product's (``multipart/form-data``: a ``file`` part, an
        optional ``alt`` field). Its type is read from its bytes (JPEG, PNG, GIF or WebP):
        422 naming ``file`` with the reason for an empty file, one over
        ``FUSION_IMAGE_MAX_BYTES``, one that is no such image or whose Content-Type says
        otherwise, or a product that has all its images. Listings get it at their next
        publish or update."""
        catalog.get_product(tx(), product_id)
        part = request.files.get("file")
        if part is None:
            raise ValidationFailed(fields={"file": ["send multipart/form-data with a file part"]})
        alt = request.form.get("alt", "")
        if len(alt) > MAX_ALT or "\0" in alt:
            raise ValidationFailed(fields={"alt": [f"at most {MAX_ALT} characters, no NUL"]})
        limit = hub().settings.image_max_bytes
        return images.add_image(
            tx(),
            access(),
            media_store(hub().settings),
            product_id,
            data=part.stream.read(limit + 1),
            declared_type=part.mimetype,
            filename=part.filename or "",
            alt=alt,
            max_bytes=limit,
        )


@blp.route("/<uuid:org_id>/products/<uuid:product_id>/images/order")
class ImageOrder(MethodView):
    @blp.arguments(ImageOrderSchema)
    @blp.response(200, ImageListSchema)
    @org_scope(Role.OPERATOR)
    def put(self, body: dict[str, Any], org_id: uuid.UUID, product_id: uuid.UUID) -> dict[str, Any]:
        """Put the product's images in a new order (every one of them, once: else 422 naming
        ``image_ids``); the first is the main image."""
        return {"items": images.reorder(tx(), access(), product_id, body["image_ids"])}


@blp.route("/<uuid:org_id>/products/<uuid:product_id>/images/<uuid:image_id>")
class ImageView(MethodView):
    @blp.response(200, ImageSchema)
    @org_scope(Role.VIEWER)
    def get(self, org_id: uuid.UUID, product_id: uuid.UUID, image_id: uuid.UUID) -> ProductImage:
        """One image."""
        return images.get_image(tx(), product_id, image_id)

    @blp.response(204)
    @org_scope(Role.OPERATOR)
    def delete(self, org_id: uuid.UUID, product_id: uuid.UUID, image_id: uuid.UUID) -> None:
        """Delete an image (the ones after it move up). Listings drop it at their next
        update."""
        images.delete_image(tx(), access(), media_store(hub().settings), product_id, image_id)


@served.get(f"{links.ROUTE}<token>")
@public
def media(token: str) -> Response:
    """An image's bytes, for a platform holding its signed link (local image store only)."""
    store = media_store(hub().settings)
    key = links.key_of(hub().settings.jwt_secret, token)
    if key is None or not isinstance(store, LocalStore):
        raise NotFound("No such image.")
    data = store.get(key)
    response = Response(data, mimetype=image_type(data[:16]) or "application/octet-stream")
    response.headers["Cache-Control"] = "public, max-age=86400, immutable"
    return response
