"""Product images through the HTTP API: uploads checked by their bytes (a bad one is a 422
naming the reason), listed in order, reordered, deleted, scoped to their org; kept in the
local image store behind signed links (the S3 store: test_images_s3.py); and, on a running
hub with real workers, published to each platform the way it takes them, the sandbox
holding the very bytes, and an update sending only the change."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import struct
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from fusion.config import Settings
from fusion.media import links
from fusion.media.storage import LocalStore
from tests.api.conftest import Team, make_team
from tests.support.api import running_app
from tests.support.merchant import connect, new_sku, ok
from tests.support.stack import Stack, eventually, live_stack


def png(seed: int) -> bytes:
    """A real 1x1 PNG whose one pixel's colour (so its bytes and SHA-256) depend on ``seed``."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    pixel = bytes([0, seed % 256, (seed * 7) % 256, (seed * 13) % 256])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(pixel))
        + chunk(b"IEND", b"")
    )


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def upload(team: Team, product_id: str, data: bytes, name: str = "a.png", **kw: Any) -> Any:
    path = f"/orgs/{team.org_id}/products/{product_id}/images"
    content_type = kw.pop("content_type", "image/png")
    body = {"file": (io.BytesIO(data), name, content_type), **kw}
    return team.operator.post(path, data=body, content_type="multipart/form-data")


def images_of(team: Team, product_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = ok(
        team.viewer.get(f"/orgs/{team.org_id}/products/{product_id}/images")
    )["items"]
    return items


def product(team: Team, skus: list[str]) -> str:
    org = f"/orgs/{team.org_id}"
    made = ok(team.owner.post(f"{org}/products", json={"title": "Poster", "description": "Art"}))
    for sku in skus:
        body = {"sku": sku, "price": "12.50", "available_quantity": 5}
        ok(team.owner.post(f"{org}/products/{made['id']}/variants", json=body), 201)
    return str(made["id"])


# -- the API ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_app(api_settings: Settings) -> Iterator[Flask]:
    """The API with a 4 KiB image limit, so "too big" is cheap to send."""
    with running_app(dataclasses.replace(api_settings, image_max_bytes=4096)) as app:
        yield app


def test_images_are_uploaded_listed_in_order_reordered_and_deleted(client: FlaskClient) -> None:
    team = make_team(client, "Images")
    product_id = product(team, [new_sku()])
    first, second, third = png(1), png(2), png(3)

    # When three images are uploaded (one declaring no type at all)
    made = [
        ok(upload(team, product_id, first, "front.png", alt="The front"), 201),
        ok(upload(team, product_id, second, "back.png"), 201),
        ok(upload(team, product_id, third, "side", content_type="application/octet-stream"), 201),
    ]

    # Then each is typed from its bytes, in the order it came, with its checksum
    assert [(i["position"], i["content_type"], i["sha256"]) for i in made] == [
        (0, "image/png", sha(first)),
        (1, "image/png", sha(second)),
        (2, "image/png", sha(third)),
    ]
    assert (made[0]["alt"], made[0]["filename"], made[0]["size_bytes"]) == (
        "The front",
        "front.png",
        len(first),
    )
    assert [i["id"] for i in images_of(team, product_id)] == [i["id"] for i in made]

    # When they are put in a new order
    order = [made[2]["id"], made[0]["id"], made[1]["id"]]
    path = f"/orgs/{team.org_id}/products/{product_id}/images"
    reordered = ok(team.operator.call("PUT", f"{path}/order", json={"image_ids": order}))
    # Then the list follows it
    assert [i["id"] for i in reordered["items"]] == order
    assert [i["id"] for i in images_of(team, product_id)] == order

    # When the main image is deleted, the others move up
    gone = team.operator.call("DELETE", f"{path}/{order[0]}")
    assert gone.status_code == 204, gone.json
    assert [(i["id"], i["position"]) for i in images_of(team, product_id)] == [
        (order[1], 0),
        (order[2], 1),
    ]
    assert team.viewer.get(f"{path}/{order[0]}").status_code == 404

    # And an order that is not every image once is refused, naming the field
    for wrong in ([order[1]], [order[1], order[1]], [order[1], str(uuid.uuid4())]):
        refused = team.operator.call("PUT", f"{path}/order", json={"image_ids": wrong})
        assert refused.status_code == 422, refused.json
        assert "image_ids" in refused.json["errors"], refused.json
    # and a viewer may look but not upload
    assert (
        team.viewer.post(
            path, data={"file": (io.BytesIO(png(9)), "v.png")}, content_type="multipart/form-data"
        ).status_code
        == 403
    )


@pytest.mark.parametrize(
    ("data", "content_type", "reason"),
    [
        (b"just some text, no image", "image/png", "not an image"),
        (b"%PDF-1.7 a document", "application/pdf", "not an image"),
        (png(4), "image/jpeg", "the file is image/png, not image/jpeg"),
        (b"", "image/png", "the file is empty"),
        (png(5) + b"\0" * 5000, "image/png", "larger than 4096 bytes"),
    ],
)
def test_a_bad_upload_is_a_422_naming_the_reason(
    small_app: Flask, data: bytes, content_type: str, reason: str
) -> None:
    team = make_team(small_app.test_client(), "Bad uploads")
    product_id = product(team, [new_sku()])
    refused = upload(team, product_id, data, "x.png", content_type=content_type)
    assert refused.status_code == 422, refused.json
    assert any(reason in message for message in refused.json["errors"]["file"]), refused.json
    assert images_of(team, product_id) == []


def test_an_upload_without_a_file_part_is_a_422(client: FlaskClient) -> None:
    team = make_team(client, "No file")
    product_id = product(team, [new_sku()])
    path = f"/orgs/{team.org_id}/products/{product_id}/images"
    for sent in (
        team.operator.post(path, data={"alt": "x"}, content_type="multipart/form-data"),
        team.operator.post(path, json={"file": "aGVsbG8="}),
    ):
        assert sent.status_code == 422, sent.json
        assert "file" in sent.json["errors"], sent.json


def test_images_belong_to_their_org(client: FlaskClient) -> None:
    mine, theirs = make_team(client, "Mine"), make_team(client, "Theirs")
    product_id = product(theirs, [new_sku()])
    image = ok(upload(theirs, product_id, png(6)), 201)
    path = f"/orgs/{mine.org_id}/products/{product_id}/images"
    assert mine.viewer.get(path).status_code == 404
    assert mine.viewer.get(f"{path}/{image['id']}").status_code == 404
    assert mine.operator.call("DELETE", f"{path}/{image['id']}").status_code == 404
    assert upload(mine, product_id, png(7)).status_code == 404
    assert [i["id"] for i in images_of(theirs, product_id)] == [image["id"]]


# -- the two image stores -----------------------------------------------------------------------


def test_the_local_store_serves_its_images_at_signed_links_only(
    app: Flask, api_settings: Settings
) -> None:
    store = LocalStore(
        api_settings.home / "media", public_url="http://hub.test", secret=api_settings.jwt_secret
    )
    key = f"images/{uuid.uuid4()}/{uuid.uuid4()}.png"
    data = png(8)
    store.put(key, data, "image/png")
    assert store.get(key) == data
    url = store.url(key)
    assert url is not None and url.startswith(f"http://hub.test{links.ROUTE}")
    served = app.test_client().get(url.removeprefix("http://hub.test"))  # no login
    assert (served.status_code, served.data, served.mimetype) == (200, data, "image/png")
    # A token for another key, or a tampered one, is a 404
    token = url.rsplit("/", 1)[1]
    forged = links.token("not the hub's secret", key)
    for bad in (forged, token[:-2] + "xx", "nonsense", token.split(".")[0]):
        assert app.test_client().get(f"{links.ROUTE}{bad}").status_code == 404
    store.delete(key)
    assert app.test_client().get(url.removeprefix("http://hub.test")).status_code == 404
    assert LocalStore(store.root, public_url=None, secret="s").url(key) is None


# -- publishing to the platforms, end to end ------------------------------------------------------

PLATFORMS = ("shopify", "etsy", "amazon_sc", "printify")


@pytest.fixture(scope="module")
def stack(hub_env: dict[str, str], settings: Settings) -> Iterator[Stack]:
    with live_stack(hub_env, settings, PLATFORMS, concurrency=2) as running:
        yield running


def finished(team: Team, job_id: str) -> dict[str, Any]:
    path = f"/orgs/{team.org_id}/jobs/{job_id}"
    job: dict[str, Any] = eventually(
        lambda: (b := team.viewer.get(path).json)["status"] in ("completed", "failed") and b,
        f"job {job_id} finished",
        timeout=90,
    )
    assert job["status"] == "completed", job.get("last_error")
    return job


def sandbox_state(stack: Stack, platform: str, shop_id: str) -> dict[str, Any]:
    url = stack.servers[platform].url
    state: dict[str, Any] = requests.get(f"{url}/_sandbox/state", timeout=10).json()["state"]
    return state[shop_id]  # type: ignore[no-any-return]


def held(stack: Stack, platform: str, shop_id: str, external_id: str, sku: str) -> list[dict]:
    """What the platform holds of the listing's images, in its order: dicts with ``sha256``
    and the platform's ``id`` of each."""
    state = sandbox_state(stack, platform, shop_id)
    if platform == "shopify":
        [found] = [p for p in state["products"] if p["id"] == external_id]
        return [{"sha256": m["sha256"], "id": m["id"]} for m in found.get("media", [])]
    if platform == "etsy":
        images = state["images"].get(external_id, [])
        return [{"sha256": i["sha256"], "id": i["listing_image_id"]} for i in images]
    if platform == "amazon_sc":
        fetched = state["listings"][sku]["images"]
        slots = [
            "main_product_image_locator",
            *(f"other_product_image_locator_{n}" for n in range(1, 9)),
        ]
        return [
            {"sha256": fetched[s]["sha256"], "id": fetched[s]["url"]} for s in slots if s in fetched
        ]
    mockups = state["products"][external_id]["images"]
    return [{"sha256": m["sha256"], "id": m["upload_id"]} for m in mockups]


def uploads(stack: Stack, platform: str, shop_id: str) -> int | None:
    """How many image files the platform was sent, where its sandbox counts them."""
    if platform == "printify":
        return len(sandbox_state(stack, "printify", shop_id)["uploads"])
    return None


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::celery.exceptions.CPendingDeprecationWarning")
@pytest.mark.parametrize("platform", PLATFORMS)
def test_an_image_reaches_each_platform_and_an_update_sends_the_change(
    stack: Stack, platform: str
) -> None:
    team = make_team(stack.app.test_client(), f"Images on {platform}")
    org = f"/orgs/{team.org_id}"
    store_id, shop = connect(team, stack.servers[platform], platform)
    sku = new_sku()
    product_id = product(team, [sku])
    front, back, side = png(21), png(22), png(23)
    # Given a product with two images
    first = ok(upload(team, product_id, front, "front.png"), 201)
    ok(upload(team, product_id, back, "back.png"), 201)

    # When it is listed and published on the platform
    listing = ok(team.owner.post(f"{org}/listings", json={"product_id": product_id,
                                                          "store_id": store_id}), 201)  # fmt: skip
    finished(team, ok(team.owner.post(f"{org}/listings/{listing['id']}/publish"))["job"]["id"])
    shown = ok(team.viewer.get(f"{org}/listings/{listing['id']}"))
    assert shown["status"] == "published", shown

    # Then the platform holds the very bytes, in order (Printify: the first is the artwork
    # of the design's one placeholder)
    external_id = str(shown["external_id"])
    expected = [sha(front)] if platform == "printify" else [sha(front), sha(back)]
    before = held(stack, platform, shop.external_id, external_id, sku)
    assert [i["sha256"] for i in before] == expected

    # When the main image is deleted, a new one added and put first, and the listing updated
    path = f"{org}/products/{product_id}/images"
    assert team.operator.call("DELETE", f"{path}/{first['id']}").status_code == 204
    added = ok(upload(team, product_id, side, "side.png"), 201)
    order = [added["id"], images_of(team, product_id)[0]["id"]]
    ok(team.operator.call("PUT", f"{path}/order", json={"image_ids": order}))
    sent_before = uploads(stack, platform, shop.external_id)
    finished(team, ok(team.owner.post(f"{org}/listings/{listing['id']}/update"))["job"]["id"])

    # Then the platform holds the new images in the new order
    after = held(stack, platform, shop.external_id, external_id, sku)
    expected = [sha(side)] if platform == "printify" else [sha(side), sha(back)]
    assert [i["sha256"] for i in after] == expected
    if platform != "printify":
        # and the image it held already is the same one (not sent again): same platform id
        assert after[1]["id"] == before[1]["id"]
    else:
        # and only the new image was uploaded to the library
        assert uploads(stack, platform, shop.external_id) == (sent_before or 0) + 1
