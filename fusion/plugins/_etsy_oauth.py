"""Etsy access tokens that stay valid: the refresh-token grant, as a mixin of the client.

Etsy access tokens live 3,600 s; the refresh token (90 days) buys a new pair at
``POST /v3/public/oauth/token`` (``grant_type=refresh_token``, ``client_id`` = the keystring)
and Etsy retires the old refresh token. So a refresh is done once for every worker at a time:
the client asks the hub's :class:`~fusion.plugins.base.CredentialRenewer` (the store row
locked while the exchange runs), and a worker that finds the pair already renewed by
another uses it instead of spending the new refresh token.

A token is refreshed before it expires (``access_token_refresh_at``, kept with the
credentials, is a tenth of the lifetime, at most 5 minutes, before Etsy's expiry) and after
a 401 that says it has expired. A refused refresh token (``invalid_grant``: revoked, or past
its 90 days) raises ReauthorisationNeeded; the hub then marks the store. Tokens are held as
``Secret`` values and never logged.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from fusion.errors import PermanentError, ReauthorisationNeeded
from fusion.ratelimit.spec import ApiCall
from fusion.security.crypto import Secret

if TYPE_CHECKING:
    from fusion.plugins.base import HttpClient, HttpResponse, StoreConnection

TOKEN_PATH = "/v3/public/oauth/token"  # noqa: S105 (a path, not a secret)
REFRESH_AT = "access_token_refresh_at"  # epoch seconds, beside the tokens in the credentials
MAX_MARGIN_S = 300.0


class TokenRefresh:
    """Keeps ``_credentials`` (the store's, or newer ones) fresh; the client provides
    ``conn`` and ``http``."""

    if TYPE_CHECKING:
        conn: StoreConnection
        http: HttpClient

        def log(self, message: str) -> None: ...

    _fresh: Mapping[str, Secret] | None = None

    @property
    def _credentials(self) -> Mapping[str, Secret]:
        return self._fresh if self._fresh is not None else self.conn.credentials

    def _refreshable(self) -> bool:
        return bool(self._credentials.get("refresh_token"))

    def _due(self) -> bool:
        """True when the access token is at (or past) its refresh time; a token whose expiry
        the hub does not know yet is used until Etsy says it expired."""
        return self._refreshable() and _due(self._credentials)

    @staticmethod
    def says_expired(response: HttpResponse) -> bool:
        """Etsy's 401 for an expired token (``invalid_token``, "access token is expired")."""
        if response.status != 401:
            return False
        try:
            body = response.json()
        except ValueError:
            return False
        text = str(body.get("error_description") or "") if isinstance(body, dict) else ""
        return "expired" in text.lower()

    def _refresh(self) -> None:
        """Swap the access token the client holds for a fresh one, once across workers.

        Raises ReauthorisationNeeded when Etsy refuses the refresh token, PermanentError when
        the store has none; transport errors are the HTTP client's."""
        if not self._refreshable():
            raise PermanentError(
                "the store's Etsy access token has expired and the store has no refresh_token: "
                "connect the store again with its refresh token"
            )
        stale = str.__str__(self._credentials["access_token"])

        def exchange(current: Mapping[str, Secret]) -> Mapping[str, str] | None:
            if str.__str__(current.get("access_token", "")) != stale and not _due(current):
                return None  # another worker renewed the pair while this one waited
            return self._grant(current)

        if self.conn.renew is None:  # nowhere to keep them: this client's own use only
            renewed = exchange(self._credentials)
            if renewed is not None:
                self._fresh = {k: Secret(v) for k, v in renewed.items()}
            return
        self._fresh = dict(self.conn.renew(exchange))

    def _grant(self, current: Mapping[str, Secret]) -> dict[str, str]:
        form = {
            "grant_type": "refresh_token",
            "client_id": str.__str__(current["keystring"]),
            "refresh_token": str.__str__(current["refresh_token"]),
        }
        response = self.http.request(
            "POST",
            TOKEN_PATH,
            call=ApiCall("oauth:refresh"),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            data=urlencode(form).encode(),
            expect=(400, 401),
        )
        body = response.json() if response.body else {}
        if response.status != 200 or not isinstance(body, dict) or "access_token" not in body:
            error = body.get("error", "unknown") if isinstance(body, dict) else "unknown"
            raise ReauthorisationNeeded(
                f"Etsy refused the store's refresh token ({error}): the merchant must connect "
                "the store again (Etsy's OAuth consent) and give the hub the new tokens"
            )
        lifetime = float(body.get("expires_in") or 3600)
        margin = min(MAX_MARGIN_S, lifetime / 10)
        self.log("etsy access token refreshed with the store's refresh token")
        return {
            **{k: str.__str__(v) for k, v in current.items()},
            "access_token": str(body["access_token"]),
            # Etsy rotates the refresh token; one it did not send keeps the old one.
            "refresh_token": str(body.get("refresh_token") or current["refresh_token"]),
            REFRESH_AT: f"{time.time() + lifetime - margin:.0f}",
        }


def _due(credentials: Mapping[str, Secret]) -> bool:
    stamp = credentials.get(REFRESH_AT)
    return stamp is not None and float(stamp) <= time.time()
