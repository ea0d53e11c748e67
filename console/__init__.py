"""The ops console: server-rendered pages under ``/console`` over the same ``fusion`` services
as the API (docs/console.md). ``install`` adds it to the API's Flask app."""

from __future__ import annotations

from flask import Flask

from api.context import Serves
from fusion.config import Settings


def install(app: Flask, settings: Settings, serves: Serves) -> None:
    """The console's cookie, pages, live stream and security headers, and Swagger UI from
    local files; the streams process gets only the console's live stream."""
    from console import docs, headers, live, pages, session

    session.configure(app, settings)
    headers.install(app)
    if serves is Serves.STREAMS:
        app.register_blueprint(live.bp)
        return
    pages.register(app, settings)
    app.register_blueprint(live.bp)
    app.register_blueprint(docs.bp)
