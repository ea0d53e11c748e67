"""GET /metrics in Prometheus text format, and the request counters behind it."""

from __future__ import annotations

import hmac
import time

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api import problems
from api.security import public
from fusion import telemetry
from fusion.metrics import ApiMetrics


def _scraper_allowed(token: str) -> bool:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        value.strip().encode(), token.encode()
    )


def install(app: Flask) -> None:
    """Count every request and serve /metrics to a scraper presenting FUSION_METRICS_TOKEN
    (anyone else: the one 401; no token configured: 404, not served). It carries no org and
    no tenant's data, but store ids (the per-store series): never serve it unprotected. Read
    at most once per FUSION_METRICS_CACHE_S."""
    fusion = app.extensions["fusion"]
    settings = fusion.settings
    metrics = ApiMetrics(fusion.database, fusion.redis, cache_s=settings.metrics_cache_s)
    # What this process counts (webhook deliveries, orders, stock) goes to Redis, like the
    # workers': any API process serves the sum.
    telemetry.install(fusion.redis)
    app.extensions["fusion_metrics"] = metrics

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        # The rule, not the path: ids in paths would explode the label set.
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.requests.labels(request.method, endpoint, str(response.status_code)).inc()
        started = g.get("started")
        if started is not None:
            metrics.latency.labels(request.method, endpoint).observe(time.perf_counter() - started)
        return response

    @public  # not a caller of the API: the scraper's own token is checked here
    def serve() -> Response:
        if settings.metrics_token is None:
            return problems.problem(404)
        if not _scraper_allowed(settings.metrics_token):
            return problems.unauthorized()
        return Response(generate_latest(metrics.registry), mimetype=CONTENT_TYPE_LATEST)

    app.add_url_rule("/metrics", "metrics", serve, methods=["GET"])
