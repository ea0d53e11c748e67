"""The Feeds API flow behind Amazon bulk operations (one ``JSON_LISTINGS_FEED`` per batch), as
a mixin of the client.

createFeedDocument → PUT the JSON to the pre-signed URL → createFeed → poll getFeed until it is
DONE (or FATAL/CANCELLED) → read the processing report, which says message by message (so SKU
by SKU) what Amazon refused. A feed of absolute quantities can be submitted again safely, so a
job retried after a timeout only repeats the same outcome.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fusion.errors import PermanentError, RateLimited, RetryableError
from fusion.plugins.base import ItemRefusal, SettingSpec, SettingType
from fusion.plugins.http import MAX_ANSWER_BYTES
from fusion.ratelimit.spec import ApiCall

if TYPE_CHECKING:
    from fusion.plugins.base import HttpClient, HttpResponse, StoreConnection

FEEDS = "/feeds/2021-06-30"
CONTENT_TYPE = "application/json; charset=UTF-8"
FINAL = {"DONE", "FATAL", "CANCELLED"}
FIRST_POLL_S = 0.05  # the first wait between status reads; each next one doubles
# How long a submitted feed's status or report read waits for its quota before giving up.
RATE_LIMIT_PATIENCE_S = 60.0

FEED_POLL_INTERVAL = SettingSpec(
    "feed_poll_interval_s",
    SettingType.NUMBER,
    "Seconds between two reads of a submitted listings feed's processing status.",
    default=15.0,
    minimum=0,
    maximum=300,
)
FEED_POLL_ATTEMPTS = SettingSpec(
    "feed_poll_attempts",
    SettingType.INTEGER,
    "Reads of a feed's status before the job gives up for now and is retried (resubmitting "
    "the feed is harmless).",
    default=40,
    minimum=1,
    maximum=1000,
)
FEED_SETTINGS = (FEED_POLL_INTERVAL, FEED_POLL_ATTEMPTS)


class ListingsFeed:
    """Amazon's JSON_LISTINGS_FEED flow, for a client that has ``_call``, ``seller_id`` and
    ``marketplace_id``."""

    if TYPE_CHECKING:
        conn: StoreConnection
        http: HttpClient
        seller_id: str
        marketplace_id: str

        def log(self, message: str) -> None: ...

        def _call(
            self,
            method: str,
            path: str,
            operation: str,
            *,
            json_body: Any = None,
            params: Mapping[str, Any] | None = None,
            expect: Sequence[int] = (),
        ) -> HttpResponse: ...

    def _submit_listings_feed(self, messages: list[dict[str, Any]]) -> list[ItemRefusal]:
        """Submit ``messages`` as one JSON_LISTINGS_FEED, wait for its processing report and
        return the SKUs it refused, each with Amazon's reasons (:func:`feed_refusals`; empty:
        every message taken).

        The status is read at once, then after waits that double from ``FIRST_POLL_S`` up to
        ``feed_poll_interval_s``: a feed that is done in moments is seen in moments, a slow one
        costs one read per interval. A read short of quota waits for it (the feed is submitted;
        starting over would submit it again). Raises PermanentError when Amazon rejects the
        whole feed (FATAL, CANCELLED); RetryableError when the feed is still processing after
        ``feed_poll_attempts`` reads (resubmitting is harmless)."""
        interval = float(FEED_POLL_INTERVAL.value(self.conn.settings))
        attempts = int(FEED_POLL_ATTEMPTS.value(self.conn.settings))
        document = {
            "header": {"sellerId": self.seller_id, "version": "2.0", "issueLocale": "en_US"},
            "messages": messages,
        }
        created = self._call(
            "POST",
            f"{FEEDS}/documents",
            "createFeedDocument",
            json_body={"contentType": CONTENT_TYPE},
        ).json()
        # The upload goes to the pre-signed URL itself: no SP-API token, the signature is in it.
        self.http.request(
            "PUT",
            created["url"],
            call=ApiCall("feeds:upload", items=len(messages)),
            headers={"Content-Type": CONTENT_TYPE},
            data=json.dumps(document).encode(),
        )
        spec = {
            "feedType": "JSON_LISTINGS_FEED",
            "marketplaceIds": [self.marketplace_id],
            "inputFeedDocumentId": created["feedDocumentId"],
        }
        feed_id = self._call("POST", f"{FEEDS}/feeds", "createFeed", json_body=spec).json()[
            "feedId"
        ]
        self.log(f"submitted JSON_LISTINGS_FEED {feed_id} with {len(messages)} messages")
        feed: dict[str, Any] = {}
        for n in range(attempts):
            feed = self._patiently(lambda: self._call("GET", f"{FEEDS}/feeds/{feed_id}", "getFeed"))
            if feed.get("processingStatus") in FINAL:
                break
            time.sleep(min(interval, FIRST_POLL_S * 2**n))
        status = feed.get("processingStatus")
        if status not in FINAL:
            raise RetryableError(f"Amazon feed {feed_id} still {status} after {attempts} polls")
        report = self._feed_report(feed) if feed.get("resultFeedDocumentId") else {}
        if status != "DONE":
            raise PermanentError(f"Amazon feed {feed_id} ended {status}: {_issues(report)}")
        summary = report.get("summary", {})
        self.log(
            f"feed {feed_id} done: {summary.get('messagesAccepted', 0)} accepted, "
            f"{summary.get('messagesInvalid', 0)} invalid"
        )
        return feed_refusals(messages, report)

    def _patiently(self, read: Callable[[], HttpResponse]) -> dict[str, Any]:
        """``read()``'s JSON, waiting out a rate limit (up to ``RATE_LIMIT_PATIENCE_S``)."""
        waited = 0.0
        while True:
            try:
                answer: dict[str, Any] = read().json()
                return answer
            except RateLimited as exc:
                if waited + exc.retry_after_s > RATE_LIMIT_PATIENCE_S:
                    raise
                time.sleep(max(exc.retry_after_s, 0.01))
                waited += max(exc.retry_after_s, 0.01)

    def _feed_report(self, feed: dict[str, Any]) -> dict[str, Any]:
        doc_id = feed["resultFeedDocumentId"]
        located = self._patiently(
            lambda: self._call("GET", f"{FEEDS}/documents/{doc_id}", "getFeedDocument")
        )
        if located.get("compressionAlgorithm") == "GZIP":
            raw = self.http.request("GET", located["url"], call=ApiCall("feeds:download")).body
            report: dict[str, Any] = json.loads(gunzip(raw, MAX_ANSWER_BYTES))
            return report
        response = self.http.request("GET", located["url"], call=ApiCall("feeds:download"))
        parsed: dict[str, Any] = response.json()
        return parsed


def feed_refusals(
    messages: Sequence[Mapping[str, Any]], report: Mapping[str, Any]
) -> list[ItemRefusal]:
    """The SKUs of ``messages`` that the processing ``report`` refused, each with Amazon's
    reasons (``code: message``, its ERROR issues joined); warnings refuse nothing. An issue
    naming no message of the feed is the whole feed's and refuses every SKU."""
    by_id = {m["messageId"]: str(m["sku"]) for m in messages}
    reasons: dict[str, list[str]] = {}
    for issue in report.get("issues", []):
        if str(issue.get("severity", "ERROR")).upper() != "ERROR":
            continue
        text = f"{issue.get('code')}: {issue.get('message')}"
        sku = by_id.get(issue.get("messageId"))
        for each in [sku] if sku is not None else by_id.values():
            reasons.setdefault(each, []).append(text)
    return [ItemRefusal(sku, "; ".join(found)[:1000]) for sku, found in reasons.items()]


def gunzip(raw: bytes, limit: int) -> bytes:
    """``raw`` (one gzip member) decompressed; raises PermanentError when it would be more
    than ``limit`` bytes (a small download must not become gigabytes in memory), zlib.error
    when it is not gzip."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = inflater.decompress(raw, limit + 1)
    if len(out) > limit:
        raise PermanentError(f"Amazon feed report is over {limit} bytes decompressed; not read")
    return out


def _issues(report: dict[str, Any]) -> str:
    issues = report.get("issues", [])
    return "; ".join(f"{i.get('code')}: {i.get('message')}" for i in issues)[:300] or "no report"
