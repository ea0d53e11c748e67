"""Swagger UI at ``/docs``, served from the files the ``swagger-ui-bundle`` package ships
(nothing from a CDN), booted by a script file of ours (no inline script) under the console's
Content-Security-Policy."""

from __future__ import annotations

import swagger_ui_bundle
from flask import Blueprint, render_template, send_from_directory
from werkzeug.exceptions import NotFound
from werkzeug.wrappers import Response

from console.scope import public

bp = Blueprint("docs", __name__, url_prefix="/docs", template_folder="templates")
# The bundle's own files the page loads (its index.html and initializer are replaced by ours).
FILES = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png"})


@bp.get("")
@public
def index() -> str:
    return render_template("docs/index.html")


@bp.get("/ui/<name>")
@public
def asset(name: str) -> Response:
    if name not in FILES:
        raise NotFound()
    return send_from_directory(swagger_ui_bundle.swagger_ui_path, name)
