"""The WSGI entry point of the event-stream process: ``gunicorn api.streams_wsgi:app`` with
the gevent worker ``api.serving.StreamWorker`` (docs/running.md). It answers only the stream
paths and the probes; the API's own gunicorn answers everything else."""

from __future__ import annotations

from api.app import create_app
from api.context import Serves

app = create_app(serves=Serves.STREAMS)
