"""Authentication failures. Every one reads the same to the client (no oracle)."""

from __future__ import annotations

from datetime import datetime

from fusion.errors import FusionError


class AuthenticationFailed(FusionError):
    """Authentication required: the credentials are missing, invalid or expired."""

    def __init__(self, reason: str = "invalid credentials") -> None:
        # ``reason`` is for logs and tests; the API never shows it to the client.
        super().__init__()
        self.reason = reason


class HashingBusy(FusionError):
    """Too many password checks are under way; try again in a moment."""

    retry_after_s = 1


class SecondFactorRequired(FusionError):
    """The password is right, and this account also needs a code: POST /auth/login/mfa with
    the challenge and a code from your authenticator app (or a recovery code)."""

    def __init__(self, challenge: str, expires_at: datetime) -> None:
        super().__init__()
        self.challenge = challenge
        self.expires_at = expires_at
