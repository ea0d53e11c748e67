"""Settings, read once from ``FUSION_*`` environment variables at the edge of the process.

Every value is checked when it is read: a malformed one raises :class:`ConfigError` naming the
variable. Outside dev mode (``FUSION_ENV=production``) secrets must be given explicitly; in
dev/test mode (the default, used by ``fusion up`` with embedded servers) missing secrets are
generated once and kept under ``FUSION_HOME`` so restarts keep working.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fusion.errors import ConfigError

ENVIRONMENTS = ("dev", "test", "production")
APP_DB_ROLE = "fusion_app"


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def _int(env: Mapping[str, str], name: str, default: int, *, lo: int, hi: int) -> int:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}: must be between {lo} and {hi}, got {value}")
    return value


def _public_url(env: Mapping[str, str], name: str, *, production: bool) -> str | None:
    """``FUSION_PUBLIC_URL``: an http(s) origin (https in production), without a path."""
    raw = _url(env, name, ("https",) if production else ("http", "https"))
    if raw is None:
        return None
    parts = urlsplit(raw)
    if not parts.hostname or parts.path.strip("/") or parts.query or parts.fragment:
        raise ConfigError(f"{name}: expected scheme://host[:port] only, got {raw!r}")
    return raw.rstrip("/")


def _float(env: Mapping[str, str], name: str, default: float, *, lo: float, hi: float) -> float:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}: must be between {lo:g} and {hi:g}, got {value:g}")
    return value


def _names(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = _text(env, name)
    return tuple(n.strip() for n in raw.split(",") if n.strip()) if raw else ()


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    raw = _text(env, name)
    if raw is None:
        return default
    if raw.lower() not in choices:
        raise ConfigError(f"{name}: expected one of {', '.join(choices)}, got {raw!r}")
    return raw.lower()


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _text(env, name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: expected true or false, got {raw!r}")


def _ports(env: Mapping[str, str], name: str) -> tuple[int, ...]:
    ports = []
    for part in _names(env, name):
        if not part.isdigit() or not 1 <= int(part) <= 65535:
            raise ConfigError(f"{name}: expected comma-separated port numbers, got {part!r}")
        ports.append(int(part))
    return tuple(ports)


def _destinations(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """``host:port`` entries (IPv6 in brackets), lower-cased as the egress guard compares."""
    found = []
    for part in _names(env, name):
        host, sep, port = part.rpartition(":")
        bare = host.strip("[]")
        if (
            not sep
            or not bare
            or not port.isdigit()
            or not 1 <= int(port) <= 65535
            or (":" in bare and not host.startswith("["))
        ):
            raise ConfigError(f"{name}: expected comma-separated host:port, got {part!r}")
        found.append(
            f"[{bare.lower()}]:{int(port)}" if ":" in bare else f"{bare.lower()}:{int(port)}"
        )
    return tuple(found)


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    raw = _text(env, name)
    if raw is None:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in schemes:
        allowed = ", ".join(schemes)
        raise ConfigError(f"{name}: expected a URL with scheme {allowed}, got {parts.scheme!r}")
    if not (parts.hostname or "host=" in parts.query or parts.path.strip("/")):
        raise ConfigError(f"{name}: the URL names no host or socket")
    return raw


def _metrics_token(env: Mapping[str, str], name: str) -> str | None:
    token = _text(env, name)
    if token is not None and len(token) < 16:
        raise ConfigError(f"{name}: must be at least 16 characters")
    return token


def _seconds_list(env: Mapping[str, str], name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        values = tuple(int(part) for part in raw.split(","))
    except ValueError:
        raise ConfigError(f"{name}: expected comma-separated seconds, got {raw!r}") from None
    if not values or any(v < 0 for v in values):
        raise ConfigError(f"{name}: expected one or more non-negative numbers, got {raw!r}")
    return values


def _fernet_keys(env: Mapping[str, str], name: str) -> tuple[str, ...] | None:
    raw = _text(env, name)
    if raw is None:
        return None
    import base64
    import binascii

    keys = tuple(k.strip() for k in raw.split(",") if k.strip())
    for i, key in enumerate(keys):
        try:
            ok = len(base64.urlsafe_b64decode(key.encode())) == 32
        except (binascii.Error, ValueError):
            ok = False
        if not ok:
            raise ConfigError(
                f"{name}: key #{i + 1} is not a Fernet key (32 url-safe base64-encoded bytes)"
            )
    return keys


def app_url_from_admin(admin_url: str, password: str | None) -> str:
    """The URL the API and workers use: the admin URL with the non-owner application role."""
    parts = urlsplit(admin_url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = APP_DB_ROLE + (f":{password}" if password else "") + "@" + host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


# The variable each Settings field is read from: the one list :meth:`Settings.from_env` reads
# (and the README's configuration table must name). Other FUSION_* variables are the test
# and bench harnesses' own.
VARIABLES: Mapping[str, str] = {
    "env": "FUSION_ENV",
    "home": "FUSION_HOME",
    "database_url": "FUSION_DATABASE_URL",
    "app_database_url": "FUSION_APP_DATABASE_URL",
    "app_db_password": "FUSION_DB_APP_PASSWORD",
    "redis_url": "FUSION_REDIS_URL",
    "jwt_secret": "FUSION_JWT_SECRET",
    "encryption_keys": "FUSION_ENCRYPTION_KEYS",
    "api_host": "FUSION_API_HOST",
    "api_port": "FUSION_API_PORT",
    "flower_port": "FUSION_FLOWER_PORT",
    "log_format": "FUSION_LOG_FORMAT",
    "access_token_ttl_s": "FUSION_ACCESS_TOKEN_TTL",
    "refresh_token_ttl_s": "FUSION_REFRESH_TOKEN_TTL",
    "refresh_reuse_grace_s": "FUSION_REFRESH_REUSE_GRACE_S",
    "lease_s": "FUSION_LEASE_SECONDS",
    "retry_ladder_s": "FUSION_RETRY_LADDER",
    "max_attempts": "FUSION_MAX_ATTEMPTS",
    "db_statement_timeout_ms": "FUSION_DB_STATEMENT_TIMEOUT_MS",
    "db_idle_in_transaction_timeout_ms": "FUSION_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS",
    "db_prepared_statements": "FUSION_DB_PREPARED_STATEMENTS",
    "request_quota_per_minute": "FUSION_REQUEST_QUOTA_PER_MINUTE",
    "job_retention_days": "FUSION_JOB_RETENTION_DAYS",
    "failed_job_retention_days": "FUSION_FAILED_JOB_RETENTION_DAYS",
    "max_body_bytes": "FUSION_MAX_BODY_BYTES",
    "import_max_bytes": "FUSION_IMPORT_MAX_BYTES",
    "allow_private_egress": "FUSION_ALLOW_PRIVATE_EGRESS",
    "egress_ports": "FUSION_EGRESS_PORTS",
    "egress_allow": "FUSION_EGRESS_ALLOW",
    "test_connection_deadline_s": "FUSION_TEST_CONNECTION_DEADLINE_S",
    "test_connection_max_bytes": "FUSION_TEST_CONNECTION_MAX_BYTES",
    "public_url": "FUSION_PUBLIC_URL",
    "sweep_interval_s": "FUSION_SWEEP_INTERVAL_S",
    "dispatch_stale_s": "FUSION_DISPATCH_STALE_S",
    "worker_soft_shutdown_s": "FUSION_WORKER_SOFT_SHUTDOWN_S",
    "order_queue_poll_s": "FUSION_ORDER_QUEUE_POLL_S",
    "check_interval_s": "FUSION_CHECK_INTERVAL_S",
    "order_queue_listen_s": "FUSION_ORDER_QUEUE_LISTEN_S",
    "beat_lease_ttl_s": "FUSION_BEAT_LEASE_TTL_S",
    "job_modules": "FUSION_JOB_MODULES",
    "session_max_age_days": "FUSION_SESSION_MAX_AGE_DAYS",
    "signup_per_ip_per_minute": "FUSION_SIGNUP_PER_IP_PER_MINUTE",
    "signup_per_minute": "FUSION_SIGNUP_PER_MINUTE",
    "login_per_ip_per_minute": "FUSION_LOGIN_PER_IP_PER_MINUTE",
    "login_per_minute": "FUSION_LOGIN_PER_MINUTE",
    "org_create_per_ip_per_minute": "FUSION_ORG_CREATE_PER_IP_PER_MINUTE",
    "org_create_per_minute": "FUSION_ORG_CREATE_PER_MINUTE",
    "trusted_proxies": "FUSION_TRUSTED_PROXIES",
    "password_hash_concurrency": "FUSION_PASSWORD_HASH_CONCURRENCY",
    "invitation_ttl_days": "FUSION_INVITATION_TTL_DAYS",
    "streams_port": "FUSION_STREAMS_PORT",
    "streams_per_principal": "FUSION_STREAMS_PER_PRINCIPAL",
    "streams_per_org": "FUSION_STREAMS_PER_ORG",
    "metrics_token": "FUSION_METRICS_TOKEN",
    "metrics_cache_s": "FUSION_METRICS_CACHE_S",
    "smtp_host": "FUSION_SMTP_HOST",
    "smtp_port": "FUSION_SMTP_PORT",
    "smtp_user": "FUSION_SMTP_USER",
    "smtp_password": "FUSION_SMTP_PASSWORD",
    "smtp_from": "FUSION_SMTP_FROM",
    "smtp_starttls": "FUSION_SMTP_STARTTLS",
    "notify_retry_base_s": "FUSION_NOTIFY_RETRY_BASE_S",
    "notify_retry_cap_s": "FUSION_NOTIFY_RETRY_CAP_S",
    "notify_per_minute": "FUSION_NOTIFY_PER_MINUTE",
    "notify_repeat_s": "FUSION_NOTIFY_REPEAT_S",
    "notify_expiring_within_s": "FUSION_NOTIFY_EXPIRING_WITHIN_S",
    "image_max_bytes": "FUSION_IMAGE_MAX_BYTES",
    "media_backend": "FUSION_MEDIA_BACKEND",
    "media_bucket": "FUSION_MEDIA_BUCKET",
    "media_endpoint_url": "FUSION_MEDIA_ENDPOINT_URL",
    "media_region": "FUSION_MEDIA_REGION",
    "media_url_ttl_s": "FUSION_MEDIA_URL_TTL_S",
}


@dataclass(frozen=True)
class Settings:
    """Everything the hub reads from its environment; build it with :meth:`from_env`."""

    env: str = "dev"
    home: Path = Path(".fusion")
    database_url: str | None = None  # owner/admin: migrations only
    app_database_url: str | None = None  # the non-owner role every process uses
    app_db_password: str | None = None
    redis_url: str | None = None
    jwt_secret: str = ""
    encryption_keys: tuple[str, ...] = ()
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    flower_port: int = 5555
    log_format: str = "text"  # or "json": one object per line (fusion.logs)
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 30 * 24 * 3600
    refresh_reuse_grace_s: int = 10
    # A SIGKILLed worker's job runs again within about lease - lease/3 + sweep interval (the
    # renewals come every third of the lease): ~6 s at these defaults.
    lease_s: int = 6
    retry_ladder_s: tuple[int, ...] = (60, 300, 900, 3600)
    max_attempts: int = 5
    db_statement_timeout_ms: int = 30_000
    db_idle_in_transaction_timeout_ms: int = 60_000
    # The statements most requests send are prepared once per connection (fusion.db.prepared);
    # off behind a pooler that hands one client's transactions to different server
    # connections (PgBouncer in transaction mode).
    db_prepared_statements: bool = True
    request_quota_per_minute: int = 600
    job_retention_days: int = 14  # completed and cancelled jobs; 0 keeps them for ever
    failed_job_retention_days: int = 90
    max_body_bytes: int = 1024 * 1024
    # A spreadsheet upload (POST /orgs/{org}/imports) is streamed, never held whole.
    import_max_bytes: int = 200 * 1024 * 1024
    # Private/loopback destinations for store base URLs: sandboxes in dev and tests only.
    allow_private_egress: bool = True
    # Ports the hub may call besides 80 and 443, and exact host:port destinations exempt
    # from the address and port rules (fusion/security/egress.py).
    egress_ports: tuple[int, ...] = ()
    egress_allow: tuple[str, ...] = ()
    # "Test connection" calls a host a user chose, synchronously: a hard overall deadline
    # and a cap on each answer it reads.
    test_connection_deadline_s: float = 10.0
    test_connection_max_bytes: int = 2 * 1024 * 1024
    # Where platforms reach this hub (webhook subscriptions): scheme and host, no path.
    public_url: str | None = None
    # Sweep knobs (celeryconfig).
    sweep_interval_s: float = 2  # reaper and dispatcher sweeps
    dispatch_stale_s: int = 30  # a pending job's message older than this is published again
    worker_soft_shutdown_s: float = 10
    # How often beat makes sure every store with an order notification queue has its
    # listener (restarting a broken chain); 0 turns queue reading off.
    order_queue_poll_s: int = 60
    # How often beat runs the notification checks and approval expiry (late or failing
    # stores, throttling, failed jobs; approvals about to expire or expired).
    check_interval_s: int = 300
    # How long one consume_order_queue job listens (long polls) before it hands over to its
    # successor (docs/webhooks.md).
    order_queue_listen_s: int = 60
    # How long beat's Redis lease outlives its holder; a standby beat takes over after it.
    beat_lease_ttl_s: float = 30
    # Modules imported at start besides the built-in job modules, so their job types exist.
    job_modules: tuple[str, ...] = ()
    # A login session (refresh-token family) ends this long after its login, however often
    # it is refreshed.
    session_max_age_days: int = 90
    # Throttles of the unauthenticated and account-level writes, per client IP and in all
    # (token buckets in Redis, refilled over a minute); beyond them 429 with Retry-After.
    signup_per_ip_per_minute: int = 5
    signup_per_minute: int = 60
    login_per_ip_per_minute: int = 30
    login_per_minute: int = 600
    org_create_per_ip_per_minute: int = 10
    org_create_per_minute: int = 100
    # How many reverse proxies in front of the API append to X-Forwarded-For; 0 trusts none
    # (the client IP is the connection's REMOTE_ADDR).
    trusted_proxies: int = 0
    # argon2 hashes (64 MiB each) one process computes at once; more callers wait briefly.
    password_hash_concurrency: int = 2
    invitation_ttl_days: int = 7
    # Event streams are served by a process of their own (gevent) on this port, and capped.
    streams_port: int = 8001
    streams_per_principal: int = 3
    streams_per_org: int = 20
    # /metrics answers only `Authorization: Bearer <token>`; without a token it is not served.
    metrics_token: str | None = None
    metrics_cache_s: float = 5  # job and broker figures are read at most this often
    # Email notifications (fusion/notifications/channels/smtp.py): no host, no email channel.
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_from: str = "fusion@localhost"
    smtp_starttls: bool = True
    # A failed notification is tried again after base * 2^(attempt-1) seconds, at most cap;
    # each channel is sent at most notify_per_minute a minute.
    notify_retry_base_s: float = 30
    notify_retry_cap_s: float = 3600
    notify_per_minute: int = 30
    # One condition (a late store, failing jobs) notifies a channel at most once this often.
    notify_repeat_s: int = 3600
    # An approval is announced as about to expire this long before it does.
    notify_expiring_within_s: int = 3600
    # Product images (fusion/media): the largest upload taken, where the bytes are kept
    # ("local": a folder under FUSION_HOME; "s3": a bucket of an S3-compatible store, its
    # credentials from the standard AWS variables), and how long a pre-signed URL handed to
    # a platform stays valid (S3 allows 7 days at most).
    image_max_bytes: int = 10 * 1024 * 1024
    media_backend: str = "local"
    media_bucket: str | None = None
    media_endpoint_url: str | None = None
    media_region: str = "us-east-1"
    media_url_ttl_s: int = 7 * 86400

    @property
    def dev(self) -> bool:
        return self.env != "production"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and check every ``FUSION_*`` variable; raise ConfigError naming a bad one."""
        env = os.environ if environ is None else environ
        v = VARIABLES
        mode = _mode(env)
        home = Path(_text(env, v["home"]) or ".fusion").absolute()
        pg = ("postgresql", "postgresql+psycopg2", "postgres")
        database_url = _url(env, v["database_url"], pg)
        app_password = _text(env, v["app_db_password"])
        app_database_url = _url(env, v["app_database_url"], pg)
        if app_database_url is None and database_url is not None:
            app_database_url = app_url_from_admin(database_url, app_password)
        redis_url = _redis_url(env)
        jwt_secret = _text(env, v["jwt_secret"])
        keys = _fernet_keys(env, v["encryption_keys"])
        if mode == "production":
            for name, value in (
                (f"{v['app_database_url']} or {v['database_url']}", app_database_url),
                (v["redis_url"], redis_url),
                (v["jwt_secret"], jwt_secret),
                (v["encryption_keys"], keys),
            ):
                if not value:
                    raise ConfigError(f"{name}: required when {v['env']}=production")
            if jwt_secret and len(jwt_secret) < 32:
                raise ConfigError(f"{v['jwt_secret']}: must be at least 32 characters")
        else:
            jwt_secret = jwt_secret or _dev_secret(
                home, "jwt_secret", lambda: secrets.token_urlsafe(48)
            )
            if keys is None:
                keys = (_dev_secret(home, "encryption_key", _new_fernet_key),)
        broker = _broker_values(env, mode=mode, redis_url=redis_url)
        return cls(
            home=home,
            database_url=database_url,
            app_database_url=app_database_url,
            app_db_password=app_password,
            jwt_secret=jwt_secret or "",
            encryption_keys=keys or (),
            api_host=_text(env, v["api_host"]) or "127.0.0.1",
            api_port=_int(env, v["api_port"], 8000, lo=1, hi=65535),
            flower_port=_int(env, v["flower_port"], 5555, lo=1, hi=65535),
            access_token_ttl_s=_int(env, v["access_token_ttl_s"], 900, lo=30, hi=86400),
            refresh_token_ttl_s=_int(
                env, v["refresh_token_ttl_s"], 30 * 24 * 3600, lo=60, hi=365 * 86400
            ),
            refresh_reuse_grace_s=_int(env, v["refresh_reuse_grace_s"], 10, lo=0, hi=300),
            lease_s=_int(env, v["lease_s"], 6, lo=2, hi=3600),
            retry_ladder_s=_seconds_list(env, v["retry_ladder_s"], (60, 300, 900, 3600)),
            max_attempts=_int(env, v["max_attempts"], 5, lo=1, hi=100),
            db_statement_timeout_ms=_int(
                env, v["db_statement_timeout_ms"], 30_000, lo=100, hi=3_600_000
            ),
            db_idle_in_transaction_timeout_ms=_int(
                env, v["db_idle_in_transaction_timeout_ms"], 60_000, lo=100, hi=3_600_000
            ),
            db_prepared_statements=_bool(env, v["db_prepared_statements"], True),
            request_quota_per_minute=_int(env, v["request_quota_per_minute"], 600, lo=1, hi=10**7),
            max_body_bytes=_int(env, v["max_body_bytes"], 1024 * 1024, lo=1024, hi=10**9),
            import_max_bytes=_int(
                env, v["import_max_bytes"], 200 * 1024 * 1024, lo=1024, hi=10**11
            ),
            job_retention_days=_int(env, v["job_retention_days"], 14, lo=0, hi=3650),
            failed_job_retention_days=_int(env, v["failed_job_retention_days"], 90, lo=0, hi=3650),
            allow_private_egress=_bool(env, v["allow_private_egress"], mode != "production"),
            egress_ports=_ports(env, v["egress_ports"]),
            egress_allow=_destinations(env, v["egress_allow"]),
            test_connection_deadline_s=_float(
                env, v["test_connection_deadline_s"], 10.0, lo=0.1, hi=120
            ),
            test_connection_max_bytes=_int(
                env, v["test_connection_max_bytes"], 2 * 1024 * 1024, lo=1024, hi=10**9
            ),
            public_url=_public_url(env, v["public_url"], production=mode == "production"),
            beat_lease_ttl_s=_float(env, v["beat_lease_ttl_s"], 30, lo=1, hi=3600),
            job_modules=_names(env, v["job_modules"]),
            session_max_age_days=_int(env, v["session_max_age_days"], 90, lo=1, hi=3650),
            signup_per_ip_per_minute=_int(env, v["signup_per_ip_per_minute"], 5, lo=1, hi=10**7),
            signup_per_minute=_int(env, v["signup_per_minute"], 60, lo=1, hi=10**7),
            login_per_ip_per_minute=_int(env, v["login_per_ip_per_minute"], 30, lo=1, hi=10**7),
            login_per_minute=_int(env, v["login_per_minute"], 600, lo=1, hi=10**7),
            org_create_per_ip_per_minute=_int(
                env, v["org_create_per_ip_per_minute"], 10, lo=1, hi=10**7
            ),
            org_create_per_minute=_int(env, v["org_create_per_minute"], 100, lo=1, hi=10**7),
            trusted_proxies=_int(env, v["trusted_proxies"], 0, lo=0, hi=10),
            password_hash_concurrency=_int(env, v["password_hash_concurrency"], 2, lo=1, hi=256),
            invitation_ttl_days=_int(env, v["invitation_ttl_days"], 7, lo=1, hi=365),
            streams_port=_int(env, v["streams_port"], 8001, lo=1, hi=65535),
            streams_per_principal=_int(env, v["streams_per_principal"], 3, lo=1, hi=1000),
            streams_per_org=_int(env, v["streams_per_org"], 20, lo=1, hi=100_000),
            metrics_token=_metrics_token(env, v["metrics_token"]),
            metrics_cache_s=_float(env, v["metrics_cache_s"], 5, lo=0, hi=3600),
            order_queue_listen_s=_int(env, v["order_queue_listen_s"], 60, lo=1, hi=3600),
            smtp_host=_text(env, v["smtp_host"]),
            smtp_port=_int(env, v["smtp_port"], 587, lo=1, hi=65535),
            smtp_user=_text(env, v["smtp_user"]),
            smtp_password=_text(env, v["smtp_password"]),
            smtp_from=_text(env, v["smtp_from"]) or "fusion@localhost",
            smtp_starttls=_bool(env, v["smtp_starttls"], True),
            notify_retry_base_s=_float(env, v["notify_retry_base_s"], 30, lo=0.1, hi=86400),
            notify_retry_cap_s=_float(env, v["notify_retry_cap_s"], 3600, lo=0.1, hi=7 * 86400),
            notify_per_minute=_int(env, v["notify_per_minute"], 30, lo=1, hi=10**6),
            notify_repeat_s=_int(env, v["notify_repeat_s"], 3600, lo=1, hi=30 * 86400),
            notify_expiring_within_s=_int(
                env, v["notify_expiring_within_s"], 3600, lo=60, hi=30 * 86400
            ),
            **_media_values(env),
            **broker,
        )

    def with_urls(self, *, database_url: str, redis_url: str) -> Settings:
        """A copy pointing at the given (e.g. embedded) servers."""
        return replace(
            self,
            database_url=database_url,
            app_database_url=app_url_from_admin(database_url, self.app_db_password),
            redis_url=redis_url,
        )


def _mode(env: Mapping[str, str]) -> str:
    mode = _text(env, VARIABLES["env"]) or "dev"
    if mode not in ENVIRONMENTS:
        raise ConfigError(
            f"{VARIABLES['env']}: expected one of {', '.join(ENVIRONMENTS)}, got {mode!r}"
        )
    return mode


def _media_values(env: Mapping[str, str]) -> dict[str, Any]:
    """The image settings, read and checked: an ``s3`` backend needs its bucket."""
    v = VARIABLES
    backend = _choice(env, v["media_backend"], ("local", "s3"), "local")
    bucket = _text(env, v["media_bucket"])
    if backend == "s3" and bucket is None:
        raise ConfigError(f"{v['media_bucket']}: required when {v['media_backend']}=s3")
    return {
        "image_max_bytes": _int(env, v["image_max_bytes"], 10 * 1024 * 1024, lo=1024, hi=10**9),
        "media_backend": backend,
        "media_bucket": bucket,
        "media_endpoint_url": _url(env, v["media_endpoint_url"], ("http", "https")),
        "media_region": _text(env, v["media_region"]) or "us-east-1",
        "media_url_ttl_s": _int(env, v["media_url_ttl_s"], 7 * 86400, lo=60, hi=7 * 86400),
    }


def _redis_url(env: Mapping[str, str]) -> str | None:
    return _url(env, VARIABLES["redis_url"], ("redis", "rediss", "unix"))


def _broker_values(env: Mapping[str, str], *, mode: str, redis_url: str | None) -> dict[str, Any]:
    """The fields :class:`BrokerSettings` shares with :class:`Settings`, read and checked."""
    v = VARIABLES
    return {
        "env": mode,
        "redis_url": redis_url,
        "sweep_interval_s": _float(env, v["sweep_interval_s"], 2, lo=0.1, hi=3600),
        "dispatch_stale_s": _int(env, v["dispatch_stale_s"], 30, lo=1, hi=86400),
        "worker_soft_shutdown_s": _float(env, v["worker_soft_shutdown_s"], 10, lo=0, hi=3600),
        "order_queue_poll_s": _int(env, v["order_queue_poll_s"], 60, lo=0, hi=86400),
        "check_interval_s": _int(env, v["check_interval_s"], 300, lo=1, hi=86400),
        "log_format": _choice(env, v["log_format"], ("text", "json"), "text"),
    }


@dataclass(frozen=True)
class BrokerSettings:
    """What a broker-only process reads (Flower, and ``celeryconfig`` wherever it is
    imported): the broker and sweep fields of :class:`Settings`, with the same variables,
    defaults and checks. It has no secret, no database URL and no home, and building it never
    reads or generates them."""

    env: str = "dev"
    redis_url: str | None = None
    sweep_interval_s: float = 2
    dispatch_stale_s: int = 30
    worker_soft_shutdown_s: float = 10
    order_queue_poll_s: int = 60
    check_interval_s: int = 300
    log_format: str = "text"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BrokerSettings:
        """Read and check the broker variables only; raise ConfigError naming a bad one (in
        production, a missing ``FUSION_REDIS_URL``)."""
        env = os.environ if environ is None else environ
        mode = _mode(env)
        redis_url = _redis_url(env)
        if mode == "production" and not redis_url:
            raise ConfigError(
                f"{VARIABLES['redis_url']}: required when {VARIABLES['env']}=production"
            )
        return cls(**_broker_values(env, mode=mode, redis_url=redis_url))


def sandbox_contracts_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """``FUSION_CONTRACTS_DIR``: where the sandboxes read the platforms' published contracts,
    or None when unset (they then look beside the repository). Not a :class:`Settings` field:
    a sandbox stands in for a platform and builds no hub settings (which would make dev
    secrets)."""
    raw = _text(os.environ if environ is None else environ, "FUSION_CONTRACTS_DIR")
    return Path(raw) if raw else None


def _new_fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def _dev_secret(home: Path, name: str, make: object) -> str:
    """A secret generated once per FUSION_HOME (dev/test only) so restarts keep sessions."""
    path = home / "secrets" / name
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    value = make()  # type: ignore[operator]
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process of the same hub won the race
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(str(value))
    return str(value)
