"""The bulk-operation flow behind Shopify's ``bulk_set_inventory``, as a mixin of the client.

Stage the JSONL variables (``stagedUploadsCreate``, then a multipart POST to the storage host)
→ ``bulkOperationRunMutation`` of ``inventorySetQuantities`` → poll ``bulkOperation(id:)``
until it finishes → read the result file and check every line. Quantities are absolute, so a
job retried after a timeout only repeats the same outcome.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from fusion.errors import PermanentError, RetryableError
from fusion.plugins import _shopify_queries as q
from fusion.plugins._shopify_calls import ShopifyCalls
from fusion.plugins._shopify_ids import StaleIds, stale_codes
from fusion.plugins.base import SettingSpec, SettingType
from fusion.ratelimit.spec import ApiCall

BULK_POLL_INTERVAL = SettingSpec(
    "bulk_poll_interval_s",
    SettingType.NUMBER,
    "Seconds between two reads of a bulk operation's status.",
    default=1.0,
    minimum=0,
    maximum=60,
)
BULK_TIMEOUT = SettingSpec(
    "bulk_timeout_s",
    SettingType.NUMBER,
    "Seconds a bulk inventory operation may run before the job gives up and is retried.",
    default=600.0,
    minimum=1,
    maximum=86400,
)
BULK_SETTINGS = (BULK_POLL_INTERVAL, BULK_TIMEOUT)


class BulkInventory(ShopifyCalls):
    """Shopify's bulk inventory, for a client that has ``graphql`` and ``_payload``."""

    def _run_inventory_bulk(self, quantities: Sequence[dict[str, Any]], recoverable: bool) -> None:
        """Run one bulk ``inventorySetQuantities`` over ``quantities`` (``inventorySetQuantities``
        inputs) and wait for it. Raises RetryableError when the operation fails, is cancelled or
        expires, or is still running after ``bulk_timeout_s``; StaleIds when ``recoverable`` and
        a result line refuses an id as unknown (``_shopify_ids``); PermanentError when any result
        line carries errors otherwise."""
        lines = [
            json.dumps(
                {
                    "input": {
                        "name": "available",
                        "reason": "correction",
                        "quantities": quantities[start : start + q.INVENTORY_BATCH],
                    },
                    "key": str(uuid.uuid4()),
                }
            )
            for start in range(0, len(quantities), q.INVENTORY_BATCH)
        ]
        path = self._stage(("\n".join(lines) + "\n").encode())
        data = self.graphql(
            "bulkRun",
            q.BULK_RUN,
            {"mutation": q.INVENTORY_SET, "path": path, "client": self.conn.store_id},
        )
        operation = self._payload(data, "bulkOperationRunMutation", "bulkOperationRunMutation")
        finished = self._await_bulk(str(operation["bulkOperation"]["id"]))
        self._check_bulk_results(finished, recoverable)

    def _stage(self, content: bytes) -> str:
        data = self.graphql(
            "stagedUpload",
            q.STAGED_UPLOAD,
            {
                "input": [
                    {
                        "resource": "BULK_MUTATION_VARIABLES",
                        "filename": "inventory.jsonl",
                        "mimeType": "text/jsonl",
                        "httpMethod": "POST",
                    }
                ]
            },
        )
        target = self._payload(data, "stagedUploadsCreate", "stagedUploadsCreate")["stagedTargets"][
            0
        ]
        fields = [(p["name"], p["value"]) for p in target["parameters"]]
        body, content_type = _multipart(fields, "inventory.jsonl", content)
        # The upload goes to the storage host, never with the shop's access token.
        self.http.request(
            "POST",
            target["url"],
            call=ApiCall(operation="staged-upload"),
            headers={"Content-Type": content_type},
            data=body,
        )
        return str(dict(fields)["key"])

    def _await_bulk(self, operation_id: str) -> dict[str, Any]:
        interval = float(BULK_POLL_INTERVAL.value(self.conn.settings))
        deadline = time.monotonic() + float(BULK_TIMEOUT.value(self.conn.settings))
        while True:
            data = self.graphql("bulkPoll", q.BULK_POLL, {"id": operation_id})
            operation = data.get("bulkOperation") or {}
            status = operation.get("status")
            if status == "COMPLETED":
                return dict(operation)
            if status in ("FAILED", "CANCELED", "EXPIRED"):
                raise RetryableError(
                    f"shopify bulk operation {operation_id} ended {status} "
                    f"({operation.get('errorCode')})"
                )
            if time.monotonic() > deadline:
                raise RetryableError(f"shopify bulk operation {operation_id} still {status}")
            time.sleep(interval)

    def _check_bulk_results(self, operation: Mapping[str, Any], recoverable: bool) -> None:
        if not operation.get("url"):
            return  # no output: nothing ran (an empty file)
        response = self.http.request("GET", str(operation["url"]), call=ApiCall("bulk-result"))
        failures = []
        stale: set[str] = set()
        for raw in response.body.decode().splitlines():
            if not raw.strip():
                continue
            line = json.loads(raw)
            payload = (line.get("data") or {}).get("inventorySetQuantities") or {}
            stale |= stale_codes(payload.get("userErrors") or [])
            problems = [e.get("message") for e in line.get("errors") or []] + [
                e.get("message") for e in payload.get("userErrors") or []
            ]
            if problems:
                failures.append(f"line {line.get('__lineNumber')}: {'; '.join(map(str, problems))}")
        if recoverable and stale:
            raise StaleIds(", ".join(sorted(stale)))
        if failures:
            raise PermanentError("shopify bulk inventory failed: " + " | ".join(failures)[:500])
        self.log(f"shopify bulk operation {operation.get('id')} completed")


def _multipart(
    fields: Sequence[tuple[str, str]], filename: str, content: bytes
) -> tuple[bytes, str]:
    """A multipart/form-data body: the target's fields first, the file last (storage hosts
    ignore fields after the file)."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields:
        disposition = f'Content-Disposition: form-data; name="{name}"'
        parts.append(f"--{boundary}\r\n{disposition}\r\n\r\n{value}\r\n".encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: text/jsonl\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
