"""Opaque random credentials and the one-way digests stored in their place."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_opaque_token(nbytes: int = 32) -> str:
    """A fresh url-safe random string with ``nbytes`` bytes of entropy."""
    return secrets.token_urlsafe(nbytes)


def digest(value: str) -> str:
    """SHA-256 hex digest: enough for >=128-bit random values (no slow KDF needed)."""
    return hashlib.sha256(value.encode()).hexdigest()


def same_digest(value: str, expected_digest: str) -> bool:
    """Constant-time comparison of ``value``'s digest with ``expected_digest``."""
    return hmac.compare_digest(digest(value), expected_digest)
