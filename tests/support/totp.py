"""TOTP codes computed straight from RFC 6238 / RFC 4226 with hmac, sharing no code with
``fusion.security.totp``, so the tests check the hub against the standard, not against itself."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import time


def code_at(secret: str, at: float | None = None, *, step_offset: int = 0) -> str:
    """The 6-digit SHA-1 code of base32 ``secret`` at Unix time ``at`` (now by default),
    ``step_offset`` 30-second steps later."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    counter = int(time.time() if at is None else at) // 30 + step_offset
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = (int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF) % 1_000_000
    return f"{value:06d}"
