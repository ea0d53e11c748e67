"""Short-lived JWT access tokens: HS256 pinned, every registered claim required.

An access token carries who (``sub``) and which login session (``sid``, the refresh-token
family); never roles. Membership is looked up on every request so a removal applies at once.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import jwt

from fusion.auth.errors import AuthenticationFailed

ALGORITHM = "HS256"
ISSUER = "fusion-stage-hub"
AUDIENCE = "fusion-api"
LEEWAY_S = 10
REQUIRED_CLAIMS = ["sub", "sid", "iat", "nbf", "exp", "iss", "aud", "jti"]
# Tokens verified in this process, by (secret, token): a client presents the same token on
# every request until it expires, and its verification (the signature, PyJWT's check of every
# character of every segment, the claims) took about 0.17 ms of each (cProfile, bench/
# api_profile.py). Only accepted tokens are kept, with their expiry, the one check whose
# answer changes with time.
VERIFIED_CACHE = 4096


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    token_id: str
    expires_at: datetime


def issue_access_token(
    secret: str, *, user_id: uuid.UUID, session_id: uuid.UUID, ttl_s: int
) -> tuple[str, datetime]:
    """A signed access token for ``user_id`` in login session ``session_id``, and its expiry."""
    now = datetime.now(UTC)
    expires = now + timedelta(seconds=ttl_s)
    claims = {
        "sub": str(user_id),
        "sid": str(session_id),
        "iat": now,
        "nbf": now,
        "exp": expires,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM), expires


def decode_access_token(secret: str, token: str) -> AccessClaims:
    """The claims of a valid token. Raises AuthenticationFailed for anything else: another
    algorithm (``none`` included), a bad signature, expiry, a future ``nbf``, another audience
    or issuer, a missing claim, or ids that are not UUIDs.

    A token accepted before (the last ``VERIFIED_CACHE`` of this process) is not verified
    again, only its expiry checked: every other check's answer is the same for the same bytes
    and secret, and a refused token is never kept (it is checked in full each time)."""
    claims, exp = _verified(secret, token)
    if exp <= time.time() - LEEWAY_S:  # as PyJWT's own check of ``exp``
        raise AuthenticationFailed("access token rejected: ExpiredSignatureError")
    return claims


@lru_cache(maxsize=VERIFIED_CACHE)
def _verified(secret: str, token: str) -> tuple[AccessClaims, int]:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],  # pinned: never taken from the token's header
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=LEEWAY_S,
            options={"require": REQUIRED_CLAIMS, "strict_aud": True},
        )
        exp = int(claims["exp"])
        verified = AccessClaims(
            user_id=uuid.UUID(str(claims["sub"])),
            session_id=uuid.UUID(str(claims["sid"])),
            token_id=str(claims["jti"]),
            expires_at=datetime.fromtimestamp(exp, UTC),
        )
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
        raise AuthenticationFailed(f"access token rejected: {type(exc).__name__}") from None
    return verified, exp
