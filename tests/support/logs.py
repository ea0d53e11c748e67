"""Reading a process's output the way a log store would: the lines that are JSON objects."""

from __future__ import annotations

import json
from typing import Any


def json_lines(output: str) -> list[dict[str, Any]]:
    """The lines of ``output`` that are JSON objects (banners and gunicorn's own text lines
    are passed over)."""
    lines = []
    for raw in output.splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict):
            lines.append(line)
    return lines
