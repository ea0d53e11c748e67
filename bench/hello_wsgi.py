"""bench/api.py's baseline: a Flask hello-world, served by the API's own gunicorn settings.

    gunicorn hello_wsgi:app   (PYTHONPATH=bench; fusion.runtime.services.api_server_command)

What any Flask app costs per request on this machine with the hub's worker class, processes
and threads: the hub's endpoints are measured as a fraction of it.
"""

from __future__ import annotations

from flask import Flask, jsonify

app = Flask("hello")


@app.get("/hello")
def hello() -> object:
    return jsonify(hello="world")


@app.post("/hello")
def hello_post() -> object:
    return jsonify(hello="world"), 202
