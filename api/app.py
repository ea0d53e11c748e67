"""The Flask application factory: thin views over `fusion`, one blueprint per resource."""

from __future__ import annotations

import http
from typing import Any

from flask import Flask, Response
from flask_smorest import Api
from flask_smorest.utils import prepare_response
from werkzeug.exceptions import HTTPException

import boot
import console
from api import (
    adoptions,
    api_keys,
    approvals,
    audit,
    auth,
    dashboard,
    events,
    health,
    images,
    imports,
    inventory,
    job_items,
    jobs,
    listings,
    me,
    metrics,
    notifications,
    orders,
    orgs,
    plugins,
    preflight,
    problems,
    products,
    request_log,
    stores,
    webhook_deliveries,
    webhooks,
)
from api.context import Hub, Serves
from api.quota import QuotaExceeded
from api.urls import RefuseCredentialsInUrl
from fusion.auth.errors import HashingBusy
from fusion.config import Settings
from fusion.errors import FusionError
from fusion.ratelimit.slots import SlotsTaken
from schemas.common import ProblemSchema
from workers import dispatcher  # the one allowed import from workers (the publish port)


class FusionApi(Api):
    """flask-smorest's Api with problem+json errors, both served and documented."""

    ERROR_SCHEMA = ProblemSchema

    def handle_http_exception(self, error: HTTPException) -> Response:
        return problems.from_http_exception(error)

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, problems.PROBLEM_TYPE)
            self.spec.components.response(status.name, response, lazy=True)
        default: dict[str, Any] = {"description": "Any error", "schema": self.ERROR_SCHEMA}
        prepare_response(default, self.spec, problems.PROBLEM_TYPE)
        self.spec.components.response("DEFAULT_ERROR", default, lazy=True)


def _configure(app: Flask, settings: Settings) -> None:
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        API_TITLE="Fusion Stage Hub",
        API_VERSION="1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        # Swagger UI at /docs is served from local files by the console (console/docs.py).
        API_SPEC_OPTIONS={
            "components": {
                "securitySchemes": {
                    "bearerAuth": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "A JWT access token or an org API key.",
                    },
                    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                }
            },
        },
        PROPAGATE_EXCEPTIONS=False,
        JSON_SORT_KEYS=False,
    )


def _start(hub: Hub) -> None:
    # The publisher talks to this app's broker (celeryconfig alone would read the environment).
    publisher = dispatcher.producer_app()
    publisher.conf.broker_url = hub.settings.redis_url
    boot.start(hub.settings, hub.database, dispatcher=dispatcher.CeleryDispatcher(publisher))


RESOURCES = (
    auth,
    me,
    orgs,
    api_keys,
    stores,
    plugins,
    products,
    listings,
    inventory,
    jobs,
    job_items,
    imports,
    orders,
    approvals,
    notifications,
    audit,
    dashboard,
    events,
    adoptions,
    images,
    webhook_deliveries,
)


def create_app(
    settings: Settings | None = None, *, install_ports: bool = True, serves: Serves = Serves.ALL
) -> Flask:
    """Build the API for ``settings`` (read from the environment when not given).

    ``serves`` says which process this is (``api.wsgi``: the API, ``api.streams_wsgi``: the
    event streams; everything in one process otherwise, as in the tests)."""
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    _configure(app, settings)
    hub = app.extensions["fusion"] = Hub.connect(settings, serves)
    if install_ports:
        _start(hub)

    api = FusionApi(app)
    app.register_error_handler(FusionError, _fusion_error)
    app.register_error_handler(Exception, problems.from_unexpected)
    # The request's id first (so even a refused request's line and answer carry it), then
    # authentication, before any other hook: authentication comes before parsing.
    request_log.install(app)
    preflight.install(app)

    for module in (events,) if serves is Serves.STREAMS else RESOURCES:
        api.register_blueprint(module.blp)
    app.register_blueprint(health.blp)
    if serves is not Serves.STREAMS:
        app.register_blueprint(webhooks.blp)
        app.register_blueprint(images.served)
        metrics.install(app)
    console.install(app, settings, serves)
    app.after_request(_no_store)
    # Outermost: a credential in the URL is refused before Flask, and kept out of the log.
    app.wsgi_app = RefuseCredentialsInUrl(app)  # type: ignore[method-assign]
    return app


def _no_store(response: Response) -> Response:
    # Responses carry one org's data for one caller: no shared cache may keep them.
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def _fusion_error(error: FusionError) -> Response:
    if isinstance(error, QuotaExceeded | SlotsTaken):
        return problems.problem(429, str(error), headers={"Retry-After": str(error.retry_after_s)})
    if isinstance(error, HashingBusy):
        return problems.problem(503, str(error), headers={"Retry-After": str(error.retry_after_s)})
    return problems.from_fusion_error(error)
