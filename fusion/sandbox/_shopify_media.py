"""Product images in the Shopify sandbox: ``stagedUploadsCreate`` with resource ``IMAGE``
(the target is the sandbox's ``POST /_staged_uploads``, as for bulk variables; the
``resourceUrl`` names the staged file), and ``productSet``'s ``files``, which replace the
product's media in order. A file is an existing one by ``id`` (one of the shop's) or a new one
by ``originalSource``: the sandbox takes its staged uploads only (no external URL), and
refuses one that was never uploaded or whose bytes are not an image, as Shopify's file
processing would. Each product's ``media`` (in ``/_sandbox/state``) carry their ``sha256`` and
``size`` so tests can check the bytes that arrived."""

from __future__ import annotations

import hashlib
import uuid
from typing import TYPE_CHECKING, Any

from fusion.media.sniff import image_type
from fusion.sandbox._shopify_state import ResolveContext, Shop, user_error

STAGED_PREFIX = "/_staged/"


class ProductMedia:
    if TYPE_CHECKING:

        def _gid(self, kind: str) -> str: ...

    def _stage_image(self, ctx: ResolveContext, item: dict[str, Any]) -> dict[str, Any]:
        path = f"tmp/{ctx.shop.domain}/images/{uuid.uuid4()}/{item.get('filename') or 'image'}"
        policy = uuid.uuid4().hex
        ctx.shop.uploads[path] = None
        ctx.shop.upload_policies[path] = policy
        return {
            "url": f"{ctx.base_url}/_staged_uploads",
            "resourceUrl": f"{ctx.base_url}{STAGED_PREFIX}{path}",
            "parameters": [
                {"name": "key", "value": path},
                {"name": "Content-Type", "value": item.get("mimeType", "")},
                {"name": "success_action_status", "value": "201"},
                {"name": "acl", "value": "private"},
                {"name": "policy", "value": policy},
            ],
        }

    def _files_problems(self, shop: Shop, files: list[dict[str, Any]]) -> list[dict[str, Any]]:
        problems = []
        known = {m["id"] for p in shop.products.values() for m in p.get("media", [])}
        for i, item in enumerate(files):
            where = ["input", "files", str(i)]
            if item.get("id"):
                if item["id"] not in known:
                    problems.append(user_error([*where, "id"], "File does not exist"))
                continue
            source = str(item.get("originalSource") or "")
            path = source.partition(STAGED_PREFIX)[2]
            content = shop.uploads.get(path) if path else None
            if not path:
                problems.append(
                    user_error([*where, "originalSource"], "the sandbox takes staged uploads only")
                )
            elif content is None:
                problems.append(
                    user_error([*where, "originalSource"], "The staged upload was not found.")
                )
            elif image_type(content[:16]) is None:
                problems.append(
                    user_error([*where, "originalSource"], "The file is not a supported image.")
                )
        return problems

    def _set_media(self, shop: Shop, product: dict[str, Any], files: list[dict[str, Any]]) -> None:
        existing = {m["id"]: m for p in shop.products.values() for m in p.get("media", [])}
        media = []
        for item in files:
            if item.get("id"):
                media.append(existing[item["id"]])
                continue
            path = str(item["originalSource"]).partition(STAGED_PREFIX)[2]
            content = shop.uploads.pop(path) or b""
            shop.upload_policies.pop(path, None)
            media_id = self._gid("MediaImage")
            media.append(
                {
                    "id": media_id,
                    "alt": item.get("alt") or "",
                    "mediaContentType": "IMAGE",
                    "status": "READY",
                    "image": {"url": f"https://cdn.shopify.test/{media_id.rsplit('/', 1)[1]}"},
                    "sha256": hashlib.sha256(content).hexdigest(),
                    "size": len(content),
                }
            )
        product["media"] = media
