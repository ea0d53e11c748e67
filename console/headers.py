"""What every console and docs response carries: a Content-Security-Policy that allows only
the hub's own origin (no inline script, no inline style, nothing from another host), and the
headers that keep the pages out of frames and caches."""

from __future__ import annotations

from flask import Flask, Response, request

CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
PREFIXES = ("/console", "/docs")


def install(app: Flask) -> None:
    app.after_request(_secure)


def _secure(response: Response) -> Response:
    if request.path.startswith(PREFIXES):
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
    return response
