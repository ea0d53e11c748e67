"""The Flask application factory: thin views over `fusion`, one blueprint per resource."""

from __future__ import annotations

from flask import Flask

from api.context import Hub
from fusion.config import Settings


def create_app(settings: Settings | None = None) -> Flask:
    """Build the API for ``settings`` (read from the environment when not given)."""
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["fusion"] = Hub.connect(settings)

    from api.health import blp as health

    app.register_blueprint(health)
    return app
