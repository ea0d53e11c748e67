"""Webhook signing helpers against the Standard Webhooks test vectors (read at run time from the
shared contracts) and Shopify's base64 HMAC."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from fusion.errors import PermanentError
from fusion.sandbox.server import contracts_dir
from fusion.security.signing import (
    shopify_hmac,
    standard_webhooks_sign,
    verify_shopify_hmac,
    verify_standard_webhook,
)


def _vectors() -> list[dict[str, Any]]:
    path = contracts_dir() / "webhooks" / "standard-webhooks-vectors.json"
    if not Path(path).is_file():
        return []
    return json.loads(path.read_text())  # type: ignore[no-any-return]


VECTORS = _vectors()


@pytest.mark.skipif(not VECTORS, reason="webhooks/standard-webhooks-vectors.json not found")
@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["signature"][:14])
def test_standard_webhooks_vectors(vector):
    def verify() -> None:
        verify_standard_webhook(
            vector["secret"],
            msg_id=vector["id"],
            timestamp=vector["timestamp"],
            signature=vector["signature"],
            body=vector["payload"].encode(),
            now=float(vector["timestamp"]),  # the vectors are from 2021-2022: pin the clock
        )

    if vector["valid"]:
        verify()
    else:
        with pytest.raises(PermanentError, match="does not match"):
            verify()


@pytest.mark.skipif(not VECTORS, reason="webhooks/standard-webhooks-vectors.json not found")
def test_signing_reproduces_the_reference_signature():
    first = VECTORS[0]
    signed = standard_webhooks_sign(
        first["secret"], first["id"], first["timestamp"], first["payload"].encode()
    )
    assert signed == first["signature"]


def test_shopify_hmac_is_base64_of_the_raw_body():
    body = b'{"id": 1}'
    expected = base64.b64encode(hmac.new(b"k", body, hashlib.sha256).digest()).decode()
    assert shopify_hmac("k", body) == expected
    verify_shopify_hmac("k", body, expected)
    with pytest.raises(PermanentError):
        verify_shopify_hmac("k", body + b"\n", expected)
    with pytest.raises(PermanentError, match="missing"):
        verify_shopify_hmac("k", body, None)
