"""Credentials never travel in URLs: a request whose query string carries one is refused
before anything sees (or logs) it.

The middleware wraps the whole Flask app, so it runs first. It answers the generic 401 at
once, and it removes the query string from the WSGI environ first: the environ is what the
server's access log line is written from (gunicorn's ``%(r)s`` is ``RAW_URI``, ``%(q)s`` is
``QUERY_STRING``), after the answer, so the line shows the path and ``?[redacted]`` instead
of the key. The names are matched case-insensitively after percent-decoding, wider than what
authentication would read, because the point is what reaches the log.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from flask import Flask

from api import problems

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

CREDENTIAL_PARAMETERS = frozenset({"api_key", "apikey", "access_token", "refresh_token", "token"})
REDACTED = "?[redacted]"


def carries_credentials(query: str) -> bool:
    """True if the query string names a credential parameter (any case, percent-encoded or
    not)."""
    names = {name.strip().lower() for name, _ in parse_qsl(query, keep_blank_values=True)}
    return not names.isdisjoint(CREDENTIAL_PARAMETERS)


class RefuseCredentialsInUrl:
    """WSGI middleware: a credential in the query string is a 401, and the query string is
    gone from the environ before the answer is sent."""

    def __init__(self, app: Flask) -> None:
        self.flask = app
        self.inner: WSGIApplication = app.wsgi_app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if carries_credentials(environ.get("QUERY_STRING", "")):
            _redact(environ)
            with self.flask.app_context():  # the app's JSON: the very body of every other 401
                response = problems.unauthorized()
            return response(environ, start_response)
        return self.inner(environ, start_response)


def _redact(environ: WSGIEnvironment) -> None:
    environ["QUERY_STRING"] = ""
    for key in ("RAW_URI", "REQUEST_URI"):
        if key in environ:
            environ[key] = str(environ[key]).split("?", 1)[0] + REDACTED
