"""The outbound signer against the Standard Webhooks specification's own test vectors (read
from the shared contracts at run time), and the test receiver's checker against the same."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fusion.notifications.channels.webhook import signed_headers
from fusion.sandbox.server import contracts_dir
from tests.notifications.receivers import signature_holds

VECTORS_FILE = contracts_dir() / "webhooks" / "standard-webhooks-vectors.json"
VECTORS: list[dict[str, Any]] = (
    json.loads(VECTORS_FILE.read_text()) if Path(VECTORS_FILE).is_file() else []
)
needs_vectors = pytest.mark.skipif(
    not VECTORS, reason=f"Standard Webhooks test vectors not found at {VECTORS_FILE}"
)


@needs_vectors
@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: f"{v['valid']}-{v['signature'][:12]}")
def test_the_signer_makes_the_signature_of_every_valid_vector_only(vector: dict[str, Any]) -> None:
    headers = signed_headers(
        vector["secret"], vector["id"], int(vector["timestamp"]), vector["payload"].encode()
    )
    assert (headers["webhook-id"], headers["webhook-timestamp"]) == (
        vector["id"],
        vector["timestamp"],
    )
    # A valid header holds our one signature among its entries; an invalid one never does
    entries = vector["signature"].split(" ")
    assert (headers["webhook-signature"] in entries) is vector["valid"]


@needs_vectors
@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: f"{v['valid']}-{v['signature'][:12]}")
def test_the_receivers_checker_agrees_with_the_vectors(vector: dict[str, Any]) -> None:
    headers = {
        "webhook-id": vector["id"],
        "webhook-timestamp": vector["timestamp"],
        "webhook-signature": vector["signature"],
    }
    assert signature_holds(vector["secret"], headers, vector["payload"].encode()) is vector["valid"]
