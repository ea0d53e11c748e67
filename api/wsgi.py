"""The WSGI entry point for gunicorn: ``gunicorn api.wsgi:app``. Event streams are not served
here (they would hold a request thread each) but by ``api.streams_wsgi``."""

from __future__ import annotations

from api.app import create_app
from api.context import Serves

app = create_app(serves=Serves.API)
