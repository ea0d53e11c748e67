"""Time-based one-time passwords: HOTP (RFC 4226) and TOTP (RFC 6238) with hmac, nothing else.

A code is the HOTP of the number of whole ``step``-second periods since the Unix epoch. The
hub accepts the current step and one either side (clocks drift; a person types slowly), and
reports *which* step matched so the caller can refuse that step and every earlier one next
time: a code seen once (shoulder-surfed, phished, replayed) never works again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from urllib.parse import quote, urlencode

STEP_S = 30
DIGITS = 6
WINDOW = 1  # steps accepted either side of the current one
SECRET_BYTES = 20  # 160 bits: RFC 4226 section 4 recommends it, and SHA-1 blocks fit it
ALGORITHMS = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}


def new_secret() -> str:
    """A fresh random shared secret, base32 without padding (what authenticator apps take)."""
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode().rstrip("=")


def secret_bytes(secret: str) -> bytes:
    """The key bytes of a base32 secret (case, spaces and missing padding tolerated). Raises
    ValueError if it is not base32."""
    cleaned = secret.replace(" ", "").upper()
    cleaned += "=" * (-len(cleaned) % 8)
    try:
        return base64.b32decode(cleaned)
    except ValueError:
        raise ValueError("not a base32 secret") from None


def hotp(key: bytes, counter: int, *, digits: int = DIGITS, algorithm: str = "SHA1") -> str:
    """RFC 4226: the ``digits``-digit code for ``counter`` (dynamic truncation of the HMAC)."""
    mac = hmac.new(key, struct.pack(">Q", counter), ALGORITHMS[algorithm]).digest()
    offset = mac[-1] & 0x0F
    binary = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(binary % 10**digits).zfill(digits)


def time_step(at: float, *, step_s: int = STEP_S) -> int:
    """The RFC 6238 counter T for Unix time ``at``."""
    return int(at // step_s)


def totp(
    key: bytes,
    at: float,
    *,
    step_s: int = STEP_S,
    digits: int = DIGITS,
    algorithm: str = "SHA1",
) -> str:
    """RFC 6238: the code at Unix time ``at``."""
    return hotp(key, time_step(at, step_s=step_s), digits=digits, algorithm=algorithm)


def matching_step(key: bytes, code: str, at: float, *, after_step: int | None = None) -> int | None:
    """The time step whose code is ``code``, among the current step at ``at`` and ``WINDOW``
    either side, skipping steps at or before ``after_step`` (already used); None if none
    matches. Every candidate is compared in constant time; a code that is not ``DIGITS``
    digits is None."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    current = time_step(at)
    found = None
    for step in range(current - WINDOW, current + WINDOW + 1):
        if after_step is not None and step <= after_step:
            continue
        if hmac.compare_digest(hotp(key, step), code) and found is None:
            found = step
    return found


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    """The ``otpauth://totp/...`` URI authenticator apps read (usually from a QR code)."""
    label = quote(f"{issuer}:{account}", safe="@:")
    query = urlencode(
        {
            "secret": secret,
            "issuer": issuer,
            "algorithm": "SHA1",
            "digits": DIGITS,
            "period": STEP_S,
        },
        quote_via=quote,
    )
    return f"otpauth://totp/{label}?{query}"
