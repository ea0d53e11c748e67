"""Product images in the S3 image store (moto's S3 server on loopback): the store itself,
uploads through the API landing in the bucket, and Amazon fetching a published image from
the bucket at a pre-signed URL, on a running hub with real workers. (A module of its own: its
hub must be the only one whose workers take Amazon jobs.)"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator

import pytest
import requests

from api.app import create_app
from fusion.config import Settings
from fusion.jobs import dispatch
from fusion.media.storage import S3Store
from tests.api.conftest import make_team
from tests.catalog.test_images import finished, png, product, sandbox_state, sha, upload
from tests.support.merchant import connect, new_sku, ok
from tests.support.stack import live_stack


@pytest.fixture(scope="module")
def s3(monkeypatch_module: pytest.MonkeyPatch) -> Iterator[str]:
    """moto's S3 server on loopback with one bucket: its endpoint URL."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),  # moto takes any key
    ):
        monkeypatch_module.setenv(name, value)
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
        Bucket="fusion-images"
    )
    try:
        yield endpoint
    finally:
        server.stop()


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def s3_settings(settings: Settings, endpoint: str) -> Settings:
    return dataclasses.replace(
        settings, media_backend="s3", media_bucket="fusion-images", media_endpoint_url=endpoint
    )


def test_the_s3_store_keeps_images_in_the_bucket_behind_presigned_urls(
    s3: str, settings: Settings
) -> None:
    store = S3Store(s3_settings(settings, s3))
    key = f"images/{uuid.uuid4()}/{uuid.uuid4()}.png"
    data = png(10)
    store.put(key, data, "image/png")
    assert store.get(key) == data
    url = store.url(key)
    assert url is not None and "X-Amz-Signature=" in url
    fetched = requests.get(url, timeout=10)  # what a platform does: no credentials
    assert (fetched.status_code, fetched.content) == (200, data)
    store.delete(key)
    assert requests.get(url, timeout=10).status_code == 404


def test_uploads_through_the_api_land_in_the_s3_bucket(s3: str, api_settings: Settings) -> None:
    previous = dispatch.installed()
    app = create_app(s3_settings(api_settings, s3))
    try:
        team = make_team(app.test_client(), "S3")
        product_id = product(team, [new_sku()])
        image = ok(upload(team, product_id, png(11)), 201)
        store = S3Store(s3_settings(api_settings, s3))
        [key] = [
            o["Key"]
            for o in store.client.list_objects_v2(Bucket="fusion-images").get("Contents", [])
            if image["id"] in o["Key"]
        ]
        assert sha(store.get(key)) == image["sha256"]
        path = f"/orgs/{team.org_id}/products/{product_id}/images/{image['id']}"
        assert team.operator.call("DELETE", path).status_code == 204
        with pytest.raises(Exception, match="No such image"):
            store.get(key)
    finally:
        dispatch.install(previous)
        app.extensions["fusion"].database.dispose()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::celery.exceptions.CPendingDeprecationWarning")
def test_amazon_fetches_the_images_from_the_s3_store_at_presigned_urls(
    s3: str, hub_env: dict[str, str], settings: Settings
) -> None:
    # Given a hub keeping its images in S3 (moto's server), API and workers alike
    env = {
        "FUSION_MEDIA_BACKEND": "s3",
        "FUSION_MEDIA_BUCKET": "fusion-images",
        "FUSION_MEDIA_ENDPOINT_URL": s3,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # moto takes any key
    }
    with live_stack(
        hub_env, s3_settings(settings, s3), ("amazon_sc",), concurrency=1, **env
    ) as hub:
        team = make_team(hub.app.test_client(), "Images in S3")
        store_id, shop = connect(team, hub.servers["amazon_sc"], "amazon_sc")
        sku = new_sku()
        product_id = product(team, [sku])
        main = png(31)
        ok(upload(team, product_id, main, "main.png"), 201)
        org = f"/orgs/{team.org_id}"
        body = {"product_id": product_id, "store_id": store_id}
        listing = ok(team.owner.post(f"{org}/listings", json=body), 201)

        # When it is published on Amazon
        finished(team, ok(team.owner.post(f"{org}/listings/{listing['id']}/publish"))["job"]["id"])

        # Then Amazon fetched the image from the bucket, at a pre-signed URL
        fetched = sandbox_state(hub, "amazon_sc", shop.external_id)["listings"][sku]["images"]
        locator = fetched["main_product_image_locator"]
        assert locator["sha256"] == sha(main)
        assert locator["url"].startswith(f"{s3}/fusion-images/images/")
        assert "X-Amz-Signature=" in locator["url"]
