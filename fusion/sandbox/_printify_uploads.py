"""Image uploads in the Printify sandbox: ``POST /v1/uploads/images.json`` with
``{"file_name", "contents"}`` (base64) or ``{"file_name", "url"}`` (fetched over HTTP) puts an
image in the account's media library and answers Printify's upload shape (``id``,
``file_name``, ``height``, ``width``, ``size``, ``mime_type``, ``preview_url``,
``upload_time``). A file that is not a PNG or JPEG is refused (400, code 8203). A product's
print areas place images by those ids; ``images`` (its mockups, in ``/_sandbox/state`` with
the ``sha256`` of the artwork) lists the uploaded ones it places. An id the sandbox never saw
uploaded is artwork from before the sandbox (the seeded template's) and is left as it is."""

from __future__ import annotations

import base64
import binascii
import hashlib
import urllib.error
import urllib.request
import uuid
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request

from fusion.media.sniff import image_type
from fusion.sandbox._printify_model import invalid, read_body, stamp

PRINTIFY_TYPES = ("image/png", "image/jpeg")
MAX_BYTES = 20 * 1024 * 1024


class MediaLibrary:
    if TYPE_CHECKING:
        uploads: dict[str, dict[str, dict[str, Any]]]

    def _upload(self, request: Request, token: str) -> dict[str, Any]:
        body = read_body(request)
        name = body.get("file_name")
        if not isinstance(name, str) or not name:
            raise invalid("The file_name field is required.")
        if ("contents" in body) == ("url" in body):
            raise invalid("Give either contents or url.")
        content = _decoded(body["contents"]) if "contents" in body else _fetched(body["url"])
        mime = image_type(content[:16])
        if mime not in PRINTIFY_TYPES:
            raise invalid("The file must be a PNG or JPEG image.")
        upload_id = uuid.uuid4().hex[:24]
        upload = {
            "id": upload_id,
            "file_name": name,
            "height": 0,
            "width": 0,
            "size": len(content),
            "mime_type": mime,
            "preview_url": f"https://images.printify.test/{upload_id}",
            "upload_time": stamp(),
            "sha256": hashlib.sha256(content).hexdigest(),
        }
        self.uploads.setdefault(token, {})[upload_id] = upload
        return {k: v for k, v in upload.items() if k != "sha256"}

    def _mockups(self, token: str, product: dict[str, Any]) -> None:
        """Set the product's ``images`` from the uploads its print areas place."""
        library = self.uploads.get(token, {})
        mockups: list[dict[str, Any]] = []
        for area in product.get("print_areas") or []:
            for placeholder in area.get("placeholders") or []:
                for placed in placeholder.get("images") or []:
                    upload = library.get(str(placed.get("id")))
                    if upload is None:
                        continue
                    mockups.append(
                        {
                            "src": upload["preview_url"],
                            "variant_ids": list(area.get("variant_ids") or []),
                            "position": placeholder.get("position"),
                            "is_default": not mockups,
                            "upload_id": upload["id"],
                            "sha256": upload["sha256"],
                        }
                    )
        product["images"] = mockups


def _decoded(contents: Any) -> bytes:
    if not isinstance(contents, str):
        raise invalid("The contents field must be a base64 string.")
    try:
        return base64.b64decode(contents, validate=True)
    except (binascii.Error, ValueError):
        raise invalid("The contents field is not valid base64.") from None


def _fetched(url: Any) -> bytes:
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise invalid("The url field must be an http(s) URL.")
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310
            content: bytes = answer.read(MAX_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError):
        raise invalid("The image at url could not be downloaded.") from None
    if len(content) > MAX_BYTES:
        raise invalid("The image is larger than 20 MB.")
    return content
