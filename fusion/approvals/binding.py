"""What an approval binds: the content of the change, not just the ids it names.

When an approval is asked for, the domain that asks snapshots what the approved job would do
(for a listing, the product as it would be pushed; for a delete, the item and the listings it
would take down) into ``approvals.content``, with :func:`content_digest`. When the job runs,
it builds the same snapshot from what it is about to act on, in the transaction that acts,
and hands it to ``fusion.approvals.service.check_released``: a different digest means the
approved change is not the one about to happen, so the job does nothing and a new approval is
asked for.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def canonical(content: Mapping[str, Any]) -> bytes:
    """``content`` as canonical JSON (sorted keys, no whitespace, UTF-8); values that JSON has
    no type for (Decimal, UUID, dates) are written as their ``str``."""
    return json.dumps(
        content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode()


def content_digest(content: Mapping[str, Any]) -> str:
    """The SHA-256 (hex) of ``content``'s canonical form: equal for equal content, whatever
    the order of its keys."""
    return hashlib.sha256(canonical(content)).hexdigest()
