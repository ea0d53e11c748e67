"""Login with Amazon (LWA) access tokens for SP-API calls, cached per store until expiry.

SP-API wants ``x-amz-access-token`` on every call; the token comes from exchanging the store's
refresh token at the LWA endpoint and lives an hour. Clients are made per job, so the cache is
per process (keyed by store and a digest of the refresh token, so a rotated credential never
reuses the old token). Tokens are held as :class:`Secret` and never logged.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit

from fusion.errors import PermanentError
from fusion.plugins.base import HttpClient, SettingSpec, SettingType, StoreConnection
from fusion.ratelimit.spec import ApiCall
from fusion.security.crypto import Secret

LWA_URL = "https://api.amazon.com/auth/o2/token"
LWA_URL_SETTING = SettingSpec(
    "lwa_url",
    SettingType.URL,
    "The Login with Amazon token endpoint. Unset: Amazon's own for an Amazon base URL, else "
    "the base URL's /auth/o2/token.",
    destination=True,
)
# Refresh a little before Amazon's expiry so a token never dies in the middle of a job.
EXPIRY_MARGIN_S = 60.0

_cache: dict[tuple[str, str], tuple[Secret, float]] = {}
_lock = threading.Lock()


def lwa_url(conn: StoreConnection) -> str:
    """The token endpoint: ``settings["lwa_url"]``, else Amazon's own for an Amazon host, else
    the base URL's ``/auth/o2/token`` (where the sandbox serves LWA)."""
    configured = LWA_URL_SETTING.value(conn.settings)
    if configured:
        return str(configured)
    host = urlsplit(conn.base_url).hostname or ""
    if host.endswith("amazon.com"):
        return LWA_URL
    return conn.base_url.rstrip("/") + "/auth/o2/token"


def _key(conn: StoreConnection) -> tuple[str, str]:
    refresh = str.__str__(conn.credentials.get("refresh_token", ""))
    return (conn.store_id, hashlib.sha256(refresh.encode()).hexdigest())


def access_token(conn: StoreConnection, http: HttpClient) -> Secret:
    """A valid access token for ``conn``, from the cache or a fresh exchange.

    Raises PermanentError when a credential is missing or LWA refuses it (a refresh token that
    was revoked will not start working on retry); transport failures surface as the HTTP
    client's RetryableError."""
    key = _key(conn)
    with _lock:
        cached = _cache.get(key)
        if cached and cached[1] > time.monotonic():
            return cached[0]
    missing = [
        k for k in ("client_id", "client_secret", "refresh_token") if not conn.credentials.get(k)
    ]
    if missing:
        raise PermanentError(f"amazon_sc store is missing credentials: {missing}")
    form = {
        "grant_type": "refresh_token",
        "refresh_token": str.__str__(conn.credentials["refresh_token"]),
        "client_id": str.__str__(conn.credentials["client_id"]),
        "client_secret": str.__str__(conn.credentials["client_secret"]),
    }
    response = http.request(
        "POST",
        lwa_url(conn),
        call=ApiCall("lwa:token"),
        data=urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"},
        expect=(400, 401),
    )
    body = response.json()
    if response.status != 200 or not isinstance(body, Mapping) or "access_token" not in body:
        error = body.get("error", "unknown") if isinstance(body, Mapping) else "unknown"
        raise PermanentError(
            f"Login with Amazon refused the store's credentials ({response.status} {error})"
        )
    token = Secret(str(body["access_token"]))
    lifetime = float(body.get("expires_in", 3600))
    with _lock:
        margin = min(EXPIRY_MARGIN_S, lifetime / 10)
        _cache[key] = (token, time.monotonic() + max(0.0, lifetime - margin))
    return token


def forget(conn: StoreConnection) -> None:
    """Drop ``conn``'s cached token (after Amazon said it expired or was revoked)."""
    with _lock:
        _cache.pop(_key(conn), None)
