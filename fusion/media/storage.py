"""The image store: bytes in under a key, bytes out, and a URL a platform can fetch them from.

``local`` keeps them under ``FUSION_HOME/media`` and hands out the hub's own signed links
(:mod:`fusion.media.links`, served at ``FUSION_PUBLIC_URL/media/<token>``); ``s3`` keeps them
in a bucket of an S3-compatible store and hands out pre-signed GET URLs. Keys are made by the
hub (``images/<org>/<image id>``), never from a user's file name.
"""

from __future__ import annotations

import os
import tempfile
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from fusion.config import Settings
from fusion.errors import NotFound, PermanentError, RetryableError
from fusion.media import links


class MediaStore(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Keep ``data`` under ``key`` (replacing what was there)."""
        ...

    def get(self, key: str) -> bytes:
        """The bytes under ``key``; raises NotFound when there are none."""
        ...

    def delete(self, key: str) -> None:
        """Forget ``key``; one already gone is fine."""
        ...

    def url(self, key: str) -> str | None:
        """Where a platform can fetch ``key`` without the hub's credentials, or None when this
        hub has no address platforms reach (no ``FUSION_PUBLIC_URL`` for the local store)."""
        ...


class LocalStore:
    """A folder: one file per key, written whole then renamed into place."""

    def __init__(self, root: Path, *, public_url: str | None, secret: str) -> None:
        self.root = root
        self.public_url = public_url
        self.secret = secret

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise PermanentError(f"not a media key: {key!r}")
        return path

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(temporary, path)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound("No such image.") from None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def url(self, key: str) -> str | None:
        if not self.public_url:
            return None
        return f"{self.public_url}{links.ROUTE}{links.token(self.secret, key)}"


class S3Store:
    """A bucket of an S3-compatible object store (AWS, MinIO, moto's server in the tests)."""

    def __init__(self, settings: Settings) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = str(settings.media_bucket)
        self.ttl_s = settings.media_url_ttl_s
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=settings.media_endpoint_url,
            region_name=settings.media_region,
            config=Config(signature_version="s3v4", retries={"max_attempts": 3}),
        )

    def _call(self, operation: str, **params: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, operation)(Bucket=self.bucket, **params)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404"):
                raise NotFound("No such image.") from None
            raise RetryableError(f"the image store refused {operation}: {code}") from None
        except BotoCoreError as exc:
            raise RetryableError(f"the image store is unreachable: {type(exc).__name__}") from None

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self._call("put_object", Key=key, Body=data, ContentType=content_type)

    def get(self, key: str) -> bytes:
        body: bytes = self._call("get_object", Key=key)["Body"].read()
        return body

    def delete(self, key: str) -> None:
        self._call("delete_object", Key=key)

    def url(self, key: str) -> str | None:
        url: str = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=self.ttl_s
        )
        return url


@cache
def media_store(settings: Settings) -> MediaStore:
    """The image store ``settings`` name (one per process and settings)."""
    if settings.media_backend == "s3":
        return S3Store(settings)
    return LocalStore(
        settings.home / "media", public_url=settings.public_url, secret=settings.jwt_secret
    )
