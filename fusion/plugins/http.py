"""The one HTTP helper every plugin client calls its platform through.

It implements :class:`fusion.plugins.base.HttpClient`: before each attempt it takes the call's
cost from the store's shared token bucket (raising ``RateLimited`` when short, so the job is
rescheduled and the worker slot freed), runs the egress check on the URL, relative or absolute
(``fusion/security/egress.py``: resolved once, the connection pinned to the vetted address,
redirects never followed), refuses an absolute URL on a host that is neither the store's nor
on the plugin's list, always sets connect and read timeouts, reads at most
``max_answer_bytes`` of an answer, retries transport failures of idempotent calls with
tenacity, maps statuses to the hub's errors, and feeds the platform's rate-limit headers back
into the bucket. Error messages carry the method, the path without its query string, the
status and a fixed reason: never what the platform answered (the errors reach tenants, and a
body could be anything the host at that URL holds), never a credential, never a URL with a
token in it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from tenacity import (
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)
from tenacity import Retrying as _Retrying
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from fusion import telemetry
from fusion.errors import PermanentError, RateLimited, RetryableError
from fusion.plugins._pinned import (
    DESTINATION_ATTR,
    Deadline,
    PinnedAdapter,
    TooLarge,
    read_capped,
)
from fusion.plugins.base import HttpResponse, SettingSpec, SettingType, StoreConnection
from fusion.ratelimit.bucket import BucketConfig, TokenBucket
from fusion.ratelimit.spec import ApiCall, RateLimitSpec
from fusion.ratelimit.waits import record_rate_limit_wait
from fusion.security.egress import EgressPolicy, EgressRefused

__all__ = ["Deadline", "StoreHttp", "drop_session", "new_session", "session_for"]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 3.05
READ_TIMEOUT_S = 20.0
TRANSPORT_ATTEMPTS = 3
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
STATE_WRITE_INTERVAL_S = 5.0
# A job that has already made calls waits this long at most, inline, for tokens before it is
# rescheduled: rescheduling re-runs the job from the start, so a multi-call job whose first
# call drains the bucket would otherwise never get past its second (a livelock).
MAX_INLINE_WAIT_S = 2.0
USER_AGENT = "FusionStageHub/0.1 (+https://github.com/fusion-stage-hub)"
# The most a job reads of any one answer (bulk result files included); more is refused.
MAX_ANSWER_BYTES = 64 * 1024 * 1024
# Where no policy is handed in: public destinations on ports 80/443 only (fail closed).
STRICT_EGRESS = EgressPolicy()

CONNECT_TIMEOUT = SettingSpec(
    "connect_timeout_s",
    SettingType.NUMBER,
    "Seconds to wait for the platform to accept a connection before the call counts as failed "
    "(and is retried).",
    default=CONNECT_TIMEOUT_S,
    minimum=0.01,
    maximum=60,
)
READ_TIMEOUT = SettingSpec(
    "read_timeout_s",
    SettingType.NUMBER,
    "Seconds to wait for each answer of the platform before the call counts as failed (and is "
    "retried).",
    default=READ_TIMEOUT_S,
    minimum=0.01,
    maximum=300,
)
MAX_INLINE_WAIT = SettingSpec(
    "max_inline_wait_s",
    SettingType.NUMBER,
    "Seconds a job that has already made calls may wait inline for rate-limit tokens before it "
    "is rescheduled instead.",
    default=MAX_INLINE_WAIT_S,
    minimum=0,
    maximum=60,
)
# The knobs of this helper, which every plugin's stores have.
HTTP_SETTINGS = (CONNECT_TIMEOUT, READ_TIMEOUT, MAX_INLINE_WAIT)

_sessions: dict[str, requests.Session] = {}
_sessions_lock = threading.Lock()


def new_session(*, pool_maxsize: int = 32) -> requests.Session:
    """A session whose transport connects only to vetted addresses (``_pinned.py``) and that
    reads nothing from the environment (no proxy, no ``.netrc`` credentials)."""
    session = requests.Session()
    session.trust_env = False
    # Pools are keyed by address and host name; enough connections for a thread pool
    # hammering one store.
    adapter = PinnedAdapter(pool_connections=4, pool_maxsize=pool_maxsize)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


def session_for(store_id: str) -> requests.Session:
    """The pooled session of ``store_id`` in this process (created on first use).

    One session per store keeps its connections warm across jobs while never sharing cookies
    or auth between stores. Thread-safe."""
    with _sessions_lock:
        session = _sessions.get(store_id)
        if session is None:
            session = _sessions[store_id] = new_session()
        return session


def drop_session(store_id: str) -> None:
    """Close and forget ``store_id``'s session (after its credentials or base URL change)."""
    with _sessions_lock:
        session = _sessions.pop(store_id, None)
    if session is not None:
        session.close()


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield


class _TransportError(Exception):
    """A failure worth another immediate attempt (connection, timeout, 502/503/504)."""

    def __init__(self, error: RetryableError) -> None:
        super().__init__(str(error))
        self.error = error


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (a number or an HTTP date); None if absent or
    unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _float(headers: Mapping[str, str], *names: str) -> float | None:
    for name in names:
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            return float(raw)
        except ValueError:
            continue
    return None


class StoreHttp:
    """The :class:`HttpClient` of one store for one job.

    ``bucket`` may be None only where no shared limit applies (a connection test). ``on_state``
    receives the bucket's state (``stores.rate_limit_state`` shape) at most every few seconds
    and after each throttled response, so the database shows how the store is doing.

    ``egress`` is the process's policy (strict when not given); ``hosts`` the hosts besides
    the base URL's that absolute URLs may name (the plugin's ``egress_hosts``: exact names, or
    ``*.domain`` for any name under it). ``deadline`` bounds every call in wall-clock time
    (a connection test); ``session`` replaces the store's pooled one. ``max_inline_wait_s``
    replaces the store's ``max_inline_wait_s`` setting: 0 for a job that must never wait
    inline for tokens (it is rescheduled instead, its worker slot freed)."""

    def __init__(
        self,
        conn: StoreConnection,
        *,
        spec: RateLimitSpec,
        bucket: TokenBucket | None,
        on_state: Callable[[dict[str, Any]], None] | None = None,
        connect_timeout_s: float | None = None,
        read_timeout_s: float | None = None,
        transport_attempts: int = TRANSPORT_ATTEMPTS,
        transport_backoff_s: float = 0.2,
        egress: EgressPolicy = STRICT_EGRESS,
        hosts: Sequence[str] = (),
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        deadline: Deadline | None = None,
        session: requests.Session | None = None,
        max_inline_wait_s: float | None = None,
    ) -> None:
        self.conn = conn
        self.spec = spec
        self.bucket = bucket
        self.on_state = on_state
        settings = conn.settings or {}
        self.timeout = (
            float(connect_timeout_s or CONNECT_TIMEOUT.value(settings) or CONNECT_TIMEOUT_S),
            float(read_timeout_s or READ_TIMEOUT.value(settings) or READ_TIMEOUT_S),
        )
        self.max_inline_wait_s = (
            float(MAX_INLINE_WAIT.value(settings))
            if max_inline_wait_s is None
            else max(0.0, max_inline_wait_s)
        )
        self.transport_attempts = max(1, transport_attempts)
        self.transport_backoff_s = transport_backoff_s
        self.egress = egress
        base_host = urlsplit(conn.base_url).hostname or ""
        self.hosts = tuple(h.lower() for h in (base_host, *hosts) if h)
        self.max_answer_bytes = max_answer_bytes
        self.deadline = deadline
        self.session = session if session is not None else session_for(conn.store_id)
        self.calls = 0  # attempts actually sent, for logs and benches
        self._operation_buckets: dict[str, TokenBucket] = {}
        self._last_state_write = 0.0

    # -- HttpClient ---------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        call: ApiCall,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        data: bytes | None = None,
        expect: Sequence[int] = (),
    ) -> HttpResponse:
        """Send one call (see :class:`HttpClient`). Raises RateLimited (bucket short or
        platform 429), RetryableError (5xx, timeouts, connection failures, after transport
        retries for idempotent methods) or PermanentError (other 4xx)."""
        invested = self.calls > 0
        budget = self.max_inline_wait_s
        while True:
            try:
                return self._request(method, path, call, headers, json, params, data, expect)
            except RateLimited as exc:
                telemetry.STORE_THROTTLES.inc(self.conn.store_id, self.conn.platform)
                telemetry.store_throttled(self.conn.store_id)
                # A 429 means the call was not processed, so sending it again is safe; a job
                # that has made calls already waits briefly rather than starting over.
                if not invested or exc.retry_after_s > budget:
                    raise
                if self.deadline is not None and exc.retry_after_s >= self.deadline.remaining():
                    raise
                time.sleep(max(exc.retry_after_s, 0.01))
                budget -= max(exc.retry_after_s, 0.01)

    def _request(
        self,
        method: str,
        path: str,
        call: ApiCall,
        headers: Mapping[str, str] | None,
        json: Any,
        params: Mapping[str, Any] | None,
        data: bytes | None,
        expect: Sequence[int],
    ) -> HttpResponse:
        method = method.upper()
        attempts = self.transport_attempts if method in IDEMPOTENT_METHODS else 1
        retrying = _Retrying(
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=self.transport_backoff_s, max=2.0),
            retry=retry_if_exception_type(_TransportError),
            reraise=True,
            before_sleep=self._log_transport_retry,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._send_once(
                        method, path, call, headers, json, params, data, tuple(expect)
                    )
        except _TransportError as exc:
            raise exc.error from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    def feedback(
        self,
        *,
        available: float | None = None,
        retry_after_s: float | None = None,
        capacity: float | None = None,
        refill_rate: float | None = None,
    ) -> None:
        """Correct the store's bucket from quota the platform reported in a body."""
        if self.bucket is None:
            return
        self.bucket.feedback(
            available=available,
            retry_after_s=retry_after_s,
            capacity=capacity,
            refill_rate=refill_rate,
        )
        self._write_state(force=retry_after_s is not None)

    def has_quota(self, operations: Sequence[str]) -> bool:
        """Whether each of ``operations`` has a token now (see :class:`HttpClient`); always
        True without a shared bucket, and for an operation not limited on its own."""
        if self.bucket is None:
            return True
        for operation in operations:
            if operation not in self.spec.operations:
                continue
            bucket, _ = self._priced(ApiCall(operation))
            if bucket.state()["tokens"] < 1:
                return False
        return True

    # -- internals ----------------------------------------------------------------------
    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path  # e.g. a pre-signed document URL the platform handed back
        return self.conn.base_url.rstrip("/") + "/" + path.lstrip("/")

    def _where(self, method: str, path: str) -> str:
        # The path only: query strings and pre-signed URLs may carry tokens.
        return f"{self.conn.platform} {method} {urlsplit(path).path or '/'}"

    def _host_allowed(self, host: str) -> bool:
        for allowed in self.hosts:
            if allowed.startswith("*."):
                if host.endswith(allowed[1:]):
                    return True
            elif host == allowed:
                return True
        return False

    def _prepare(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None,
        json: Any,
        params: Mapping[str, Any] | None,
        data: bytes | None,
    ) -> requests.PreparedRequest:
        """The request as it will be sent, vetted: the URL checked is the URL requests built
        (``prepared.url``), parsed by the parser the connection uses."""
        where = self._where(method, path)
        try:
            prepared = self.session.prepare_request(
                requests.Request(
                    method,
                    self._url(path),
                    headers=dict(headers or {}),
                    json=json,
                    params=dict(params) if params else None,
                    data=data,
                )
            )
        except (requests.RequestException, ValueError):
            raise EgressRefused(f"{where}: the URL is malformed") from None
        # A relative path is on the base URL's host; an absolute URL the platform returned
        # must name that host or one on the plugin's list, checked before the name is even
        # looked up (a lookup alone would tell its name server the hub was sent there).
        try:
            host = (parse_url(str(prepared.url)).host or "").strip("[]").lower()
        except LocationParseError:
            raise EgressRefused(f"{where}: the URL is malformed") from None
        if not self._host_allowed(host):
            raise EgressRefused(
                f"{where} refused: the platform named a host the {self.conn.platform} plugin "
                "may not call"
            )
        try:
            destination = self.egress.vet(str(prepared.url))
        except EgressRefused as exc:
            raise EgressRefused(f"{where} refused: {exc}") from None
        setattr(prepared, DESTINATION_ATTR, destination)
        return prepared

    def _timeouts(self) -> tuple[float, float]:
        if self.deadline is None:
            return self.timeout
        left = max(self.deadline.remaining(), 0.001)
        return (min(self.timeout[0], left), min(self.timeout[1], left))

    def _send_once(
        self,
        method: str,
        path: str,
        call: ApiCall,
        headers: Mapping[str, str] | None,
        json: Any,
        params: Mapping[str, Any] | None,
        data: bytes | None,
        expect: tuple[int, ...],
    ) -> HttpResponse:
        where = self._where(method, path)
        # Vetted before any token is spent: a refused URL costs the store nothing.
        prepared = self._prepare(method, path, headers, json, params, data)
        if self.bucket is not None:
            self._take(*self._priced(call))
        if self.deadline is not None and self.deadline.expired:
            raise RetryableError(f"{where} did not answer within {self.deadline.seconds:g}s")
        self.calls += 1
        try:
            with self.deadline.active() if self.deadline else _nothing():
                # The session's own send would follow redirects and merge the environment;
                # the adapter connects to the vetted address and nowhere else.
                resp = self.session.get_adapter(str(prepared.url)).send(
                    prepared, stream=True, timeout=self._timeouts(), verify=True
                )
                try:
                    body = read_capped(resp, self.max_answer_bytes)
                finally:
                    resp.close()
            if self.deadline is not None and self.deadline.expired:
                # Cut off mid-answer (an answer without a length ends where it was cut).
                raise RetryableError(f"{where} did not answer within {self.deadline.seconds:g}s")
        except TooLarge:
            raise PermanentError(
                f"{where} answered more than {self.max_answer_bytes} bytes; not read"
            ) from None
        except requests.RequestException as exc:
            if self.deadline is not None and self.deadline.expired:
                raise RetryableError(
                    f"{where} did not answer within {self.deadline.seconds:g}s"
                ) from None
            if isinstance(exc, requests.Timeout):
                raise _TransportError(
                    RetryableError(f"{where} timed out (read timeout {self.timeout[1]:g}s)")
                ) from None
            if isinstance(exc, requests.ConnectionError):
                raise _TransportError(RetryableError(f"{where}: could not connect")) from None
            raise RetryableError(f"{where}: {type(exc).__name__}") from None
        response = HttpResponse(
            status=resp.status_code,
            headers={k.lower(): v for k, v in resp.headers.items()},
            body=body,
        )
        self._header_feedback(response)
        status = response.status
        if status in expect or 200 <= status < 300:
            self._write_state()
            return response
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            wait = retry_after if retry_after is not None else 1.0
            if self.bucket is not None:
                self._priced(call)[0].feedback(retry_after_s=max(wait, 0.001))
            self._write_state(force=True)
            self._count_wait(wait)
            raise RateLimited(wait, f"{where} answered 429; retry in {wait:.2f}s")
        # Status and a fixed reason only: the body stays out of every error a tenant reads.
        if status >= 500 or status == 408:
            error = RetryableError(f"{where} answered {status} (the platform failed)")
            if status in (502, 503, 504) and method in IDEMPOTENT_METHODS:
                raise _TransportError(error)
            raise error
        if status in (401, 403):
            raise PermanentError(f"{where} refused the store's credentials ({status})")
        if 300 <= status < 400:
            raise PermanentError(f"{where} answered {status} (a redirect, not followed)")
        raise PermanentError(f"{where} answered {status} (the platform refused the request)")

    def _priced(self, call: ApiCall) -> tuple[TokenBucket, float]:
        """The bucket ``call`` takes from and its cost: one token of the operation's own bucket
        for an operation the platform limits apart (``RateLimitSpec.operations``), else
        ``cost_of(call)`` of the store's."""
        assert self.bucket is not None
        limit = self.spec.operations.get(call.operation)
        if limit is None:
            return self.bucket, self.spec.cost_of(call)
        bucket = self._operation_buckets.get(call.operation)
        if bucket is None:
            config = BucketConfig(
                capacity=float(limit.burst_size), refill_rate=float(limit.requests_per_second)
            )
            bucket = TokenBucket(
                self.bucket.client, f"{self.conn.store_id}:{call.operation}", config
            )
            self._operation_buckets[call.operation] = bucket
        return bucket, 1.0

    def _take(self, bucket: TokenBucket, cost: float) -> None:
        """Take ``cost`` tokens; a job's first call is rescheduled at once when short (it has
        invested nothing), later calls wait inline up to ``max_inline_wait_s`` in total (a job
        allowed no inline wait takes its place in the bucket's line, as a first call does)."""
        waited = 0.0
        while True:
            first = self.calls == 0 or self.max_inline_wait_s <= 0
            grant = bucket.take(cost, queue=first)
            if grant.granted:
                return
            if first or waited + grant.wait_s > self.max_inline_wait_s:
                self._count_wait(grant.wait_s)
                raise RateLimited(
                    grant.wait_s,
                    f"{self.conn.platform} store bucket short; retry in {grant.wait_s:.2f}s",
                )
            pause = max(grant.wait_s, 0.01)
            self._count_wait(pause)
            time.sleep(pause)
            waited += pause

    def _count_wait(self, seconds: float) -> None:
        """Feed ``/metrics``' rate-limit waits (kept in Redis: the API process serves them)."""
        if self.bucket is not None:
            record_rate_limit_wait(self.bucket.client, self.conn.platform, seconds)

    def _header_feedback(self, response: HttpResponse) -> None:
        if self.bucket is None:
            return
        h = response.headers
        available = _float(h, "x-remaining-this-second", "x-remaining-this-secon")
        capacity = refill = None
        per_second = _float(h, "x-limit-per-second")
        if per_second is not None and per_second > 0:
            # Etsy's queries-per-second limit, emulated as a bucket of N refilled N a second;
            # the bucket's safety margin keeps the hub just under it.
            capacity = refill = per_second
        shop_limit = h.get("x-shopify-shop-api-call-limit")  # REST: "used/bucket"
        if shop_limit and "/" in shop_limit:
            used, _, size = shop_limit.partition("/")
            try:
                capacity = float(size)
                available = capacity - float(used)
            except ValueError:
                pass
        if available is None:
            available = _float(h, "x-ratelimit-remaining")
        if available is None and capacity is None and refill is None:
            return
        self.bucket.feedback(available=available, capacity=capacity, refill_rate=refill)

    def _write_state(self, *, force: bool = False) -> None:
        if self.on_state is None or self.bucket is None:
            return
        now = time.monotonic()
        if not force and now - self._last_state_write < STATE_WRITE_INTERVAL_S:
            return
        self._last_state_write = now
        try:
            self.on_state(self.bucket.state())
        except Exception:  # the state is a view; failing to write it must not fail the call
            log.warning("could not record the rate-limit state of store %s", self.conn.store_id)

    def _log_transport_retry(self, state: RetryCallState) -> None:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        log.info("transport retry %d: %s", state.attempt_number, error)


# The hub's own outbound posts (notifications): one pooled session for the process.
_outbound: list[requests.Session] = []
OUTBOUND_MAX_ANSWER_BYTES = 64 * 1024


def post_once(
    url: str,
    *,
    body: bytes,
    headers: Mapping[str, str],
    egress: EgressPolicy,
    timeout: tuple[float, float] = (CONNECT_TIMEOUT_S, 10.0),
) -> HttpResponse:
    """POST ``body`` to ``url`` once, through the same guard as every platform call: the URL
    vetted by ``egress`` (resolved once, the connection pinned to the vetted address, no
    redirects, no proxy from the environment), timeouts always set, at most 64 KiB of the
    answer read. No retries and no status mapping: the caller decides what an answer means.
    Raises EgressRefused for a destination the hub may not call, RetryableError when the
    connection fails or times out (never echoing the URL, which may hold a token)."""
    with _sessions_lock:
        if not _outbound:
            _outbound.append(new_session(pool_maxsize=8))
        session = _outbound[0]
    try:
        prepared = session.prepare_request(
            requests.Request("POST", url, headers=dict(headers), data=body)
        )
    except (requests.RequestException, ValueError):
        raise EgressRefused("the URL is malformed") from None
    destination = egress.vet(str(prepared.url))
    setattr(prepared, DESTINATION_ATTR, destination)
    try:
        resp = session.get_adapter(str(prepared.url)).send(
            prepared, stream=True, timeout=timeout, verify=True
        )
        try:
            answer = read_capped(resp, OUTBOUND_MAX_ANSWER_BYTES)
        except TooLarge:
            answer = b""
        finally:
            resp.close()
    except requests.Timeout:
        raise RetryableError(f"POST to {destination.host} timed out") from None
    except requests.RequestException:
        raise RetryableError(f"POST to {destination.host} failed to connect") from None
    return HttpResponse(status=resp.status_code, headers=dict(resp.headers), body=answer)
