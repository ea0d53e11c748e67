"""A product's images: upload (checked by their bytes), list in order, reorder, delete.

The bytes go to the image store (``fusion.media.storage``) under a key the hub makes; the row
holds the image's place, type, size and SHA-256. Writes are audited in the caller's
transaction. A listing's next publish or update sends the images to its platform
(``fusion.catalog.content.product_draft``).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from fusion.audit.service import audited_create, record, snapshot
from fusion.auth.access import Access
from fusion.catalog.models import ProductImage
from fusion.catalog.service import get_product
from fusion.errors import NotFound, ValidationFailed
from fusion.media.sniff import EXTENSIONS, IMAGE_TYPES, image_type
from fusion.media.storage import MediaStore

# Amazon takes a main image and eight others: the most every platform the hub publishes to
# can show (Etsy takes 10, Shopify 250).
MAX_IMAGES = 9
IMAGE_FIELDS = ("product_id", "position", "content_type", "size_bytes", "sha256", "filename")
# What a client may declare besides the sniffed type itself: "I do not know".
UNTYPED = ("", "application/octet-stream")


def _refuse(reason: str) -> ValidationFailed:
    return ValidationFailed("The image was not accepted.", fields={"file": [reason]})


def product_images(session: Session, product_id: uuid.UUID) -> list[ProductImage]:
    """The product's images, first first."""
    return list(
        session.scalars(
            select(ProductImage)
            .where(ProductImage.product_id == product_id)
            .order_by(ProductImage.position)
        )
    )


def checked_type(data: bytes, declared: str | None, max_bytes: int) -> str:
    """The content type of an upload, from its bytes; raises ValidationFailed naming ``file``
    for an empty or too large file, one that is not an image the platforms take, or one
    whose declared type says otherwise."""
    if not data:
        raise _refuse("the file is empty")
    if len(data) > max_bytes:
        raise _refuse(f"the image is larger than {max_bytes} bytes")
    sniffed = image_type(data[:16])
    if sniffed is None:
        raise _refuse(f"not an image of a type the platforms take ({', '.join(IMAGE_TYPES)})")
    sent = (declared or "").split(";")[0].strip().lower()
    if sent not in UNTYPED and sent != sniffed:
        raise _refuse(f"the file is {sniffed}, not {sent} as its Content-Type says")
    return sniffed


def add_image(
    session: Session,
    access: Access,
    store: MediaStore,
    product_id: uuid.UUID,
    *,
    data: bytes,
    declared_type: str | None,
    filename: str,
    alt: str,
    max_bytes: int,
) -> ProductImage:
    """A new image, last of the product's. Raises NotFound for an unknown product and
    ValidationFailed (``file``) for a bad upload or a product that has all its images."""
    get_product(session, product_id)
    content_type = checked_type(data, declared_type, max_bytes)
    count = session.scalar(select(func.count()).where(ProductImage.product_id == product_id))
    if (count or 0) >= MAX_IMAGES:
        raise _refuse(f"the product has {MAX_IMAGES} images already, the most the hub keeps")
    image_id = uuid.uuid4()
    image = ProductImage(
        id=image_id,
        org_id=access.org_id,
        product_id=product_id,
        position=count or 0,
        content_type=content_type,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        filename=_safe_name(filename, content_type),
        alt=alt[:500],
        storage_key=f"images/{access.org_id}/{image_id}.{EXTENSIONS[content_type]}",
    )
    audited_create(
        session,
        org_id=access.org_id,
        actor=access.principal,
        obj=image,
        action="product_image.create",
        resource_type="product_image",
        fields=IMAGE_FIELDS,
    )
    # Written inside the transaction: a store that fails undoes the row.
    store.put(image.storage_key, data, content_type)
    return image


def _safe_name(filename: str, content_type: str) -> str:
    """The name platforms are told (never a path): the upload's own, else ``image.<ext>``."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].strip()[:200]
    return name or f"image.{EXTENSIONS[content_type]}"


def get_image(session: Session, product_id: uuid.UUID, image_id: uuid.UUID) -> ProductImage:
    image = session.get(ProductImage, image_id)
    if image is None or image.product_id != product_id:
        raise NotFound("No such image.")
    return image


def reorder(
    session: Session, access: Access, product_id: uuid.UUID, image_ids: Sequence[uuid.UUID]
) -> list[ProductImage]:
    """Put the product's images in the order ``image_ids`` gives (every one of them, once).
    Raises ValidationFailed naming ``image_ids`` otherwise."""
    get_product(session, product_id)
    images = {image.id: image for image in product_images(session, product_id)}
    if sorted(image_ids) != sorted(images) or len(set(image_ids)) != len(image_ids):
        raise ValidationFailed(
            "The order was not accepted.",
            fields={"image_ids": ["must list each of the product's images exactly once"]},
        )
    before = [str(i) for i in sorted(images, key=lambda i: images[i].position)]
    for position, image_id in enumerate(image_ids):
        images[image_id].position = position
    record(
        session,
        org_id=access.org_id,
        actor=access.principal,
        action="product_image.reorder",
        resource_type="product",
        resource_id=product_id,
        before={"image_ids": before},
        after={"image_ids": [str(i) for i in image_ids]},
    )
    session.flush()
    return product_images(session, product_id)


def delete_image(
    session: Session, access: Access, store: MediaStore, product_id: uuid.UUID,
    image_id: uuid.UUID,
) -> None:  # fmt: skip
    """Delete the image and close the gap it leaves; its bytes go once the delete commits.
    The platforms drop it at each listing's next update."""
    image = get_image(session, product_id, image_id)
    key = image.storage_key
    record(
        session,
        org_id=access.org_id,
        actor=access.principal,
        action="product_image.delete",
        resource_type="product_image",
        resource_id=image.id,
        before=snapshot(image, IMAGE_FIELDS),
    )
    session.delete(image)
    session.flush()
    for position, rest in enumerate(product_images(session, product_id)):
        rest.position = position
    session.flush()
    event.listen(session, "after_commit", lambda _session: store.delete(key), once=True)
