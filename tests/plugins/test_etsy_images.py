"""Listing images on the Etsy sandbox, through the Etsy client: Etsy's activation rule (a
listing needs an image to go active), what its upload refuses, and a retried create that
leaves no stray image behind."""

from __future__ import annotations

import hashlib
import struct
import zlib
from decimal import Decimal
from typing import Any

import pytest
import requests

from fusion.errors import PermanentError
from fusion.plugins.base import IMAGES, ImageDraft, ProductDraft, VariantDraft
from fusion.sandbox._etsy_contract import API
from tests.plugins.test_etsy import make_client, server, shop, state

__all__ = ["server", "shop"]  # the fixtures, shared with test_etsy


def png(seed: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(bytes([0, seed, seed, seed])))
        + chunk(b"IEND", b"")
    )


def image(key: str, data: bytes, content_type: str = "image/png") -> ImageDraft:
    return ImageDraft(
        key=key,
        sha256=hashlib.sha256(data).hexdigest(),
        content_type=content_type,
        filename=f"{key}.png",
        read=lambda: data,
    )


def draft(*images: ImageDraft, sent: dict[str, str] | None = None) -> ProductDraft:
    return ProductDraft(
        title="Print",
        description="A print",
        variants=[VariantDraft(sku="PRINT-1", price=Decimal("30.00"), quantity=3)],
        idempotency_key="listing-images-1",
        category="1",  # the store's mapping of the product's category: Etsy requires a taxonomy_id
        images=images,
        sent_images=sent or {},
    )


def activate(server: Any, shop: dict[str, Any], listing_id: str) -> requests.Response:
    return requests.patch(
        f"{server.url}{API}/shops/{shop['shop_id']}/listings/{listing_id}",
        data={"state": "active"},
        headers={
            "x-api-key": f"{shop['keystring']}:{shop['shared_secret']}",
            "Authorization": f"Bearer {shop['user_id']}.{shop['access_token']}",
        },
        timeout=5,
    )


def test_a_listing_goes_active_only_with_an_image(server, shop):
    client, _ = make_client(server, shop)
    # A listing published without images stays a draft, as before; Etsy will not activate it
    bare = client.create_product(draft())
    refused = activate(server, shop, bare.external_id)
    assert refused.status_code == 400
    assert "image" in refused.json()["error"]
    # With its images (sent at their ranks), it may go active
    front, back = png(1), png(2)
    client.delete_product(bare.external_id)
    made = client.create_product(draft(image("a", front), image("b", back)))
    held = state(server, shop)["images"][made.external_id]
    assert [(i["rank"], i["sha256"]) for i in held] == [
        (1, hashlib.sha256(front).hexdigest()),
        (2, hashlib.sha256(back).hexdigest()),
    ]
    assert made.raw[IMAGES] == {"a": str(held[0]["listing_image_id"]),
                                "b": str(held[1]["listing_image_id"])}  # fmt: skip
    assert activate(server, shop, made.external_id).status_code == 200


def test_an_update_moves_and_deletes_without_sending_bytes_again(server, shop):
    client, _ = make_client(server, shop)
    a, b, c = png(3), png(4), png(5)
    made = client.create_product(draft(image("a", a), image("b", b)))
    sent = dict(made.raw[IMAGES])
    # When b goes first, a is deleted and c is new
    updated = client.update_product(
        made.external_id, draft(image("c", c), image("b", b), sent=sent)
    )
    held = state(server, shop)["images"][made.external_id]
    assert [i["sha256"] for i in held] == [hashlib.sha256(x).hexdigest() for x in (c, b)]
    # b is the very image Etsy held (moved, not uploaded again)
    assert updated.raw[IMAGES]["b"] == sent["b"]
    assert str(held[1]["listing_image_id"]) == sent["b"]


def test_an_image_etsy_does_not_take_is_refused_before_anything_is_sent(server, shop):
    client, _ = make_client(server, shop)
    webp = b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\0" * 16
    with pytest.raises(PermanentError, match=r"JPEG, PNG and GIF.*w\.png"):
        client.create_product(draft(image("w", webp, "image/webp")))
    assert state(server, shop)["listings"] == []  # no listing made, no image sent


def test_the_sandbox_refuses_an_upload_that_is_not_an_image(server, shop):
    client, _ = make_client(server, shop)
    made = client.create_product(draft())
    answer = requests.post(
        f"{server.url}{API}/shops/{shop['shop_id']}/listings/{made.external_id}/images",
        files={"image": ("x.png", b"not an image", "image/png")},
        data={"rank": "1"},
        headers={
            "x-api-key": f"{shop['keystring']}:{shop['shared_secret']}",
            "Authorization": f"Bearer {shop['user_id']}.{shop['access_token']}",
        },
        timeout=5,
    )
    assert answer.status_code == 400
    assert "JPEG, PNG or GIF" in answer.json()["error"]
