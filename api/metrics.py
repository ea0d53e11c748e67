"""GET /metrics in Prometheus text format, and the request counters behind it."""

from __future__ import annotations

import time

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.security import public
from fusion.metrics import ApiMetrics


def install(app: Flask) -> None:
    """Count every request and serve /metrics. It carries aggregates only (no org, no ids);
    expose it to the scraper's network, not to the internet."""
    fusion = app.extensions["fusion"]
    metrics = ApiMetrics(fusion.database, fusion.redis)
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

    @public
    def serve() -> Response:
        return Response(generate_latest(metrics.registry), mimetype=CONTENT_TYPE_LATEST)

    app.add_url_rule("/metrics", "metrics", serve, methods=["GET"])
