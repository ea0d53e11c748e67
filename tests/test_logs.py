"""The log context and the JSON format (fusion/logs.py): what a line carries, that a unit of
work starts clean, and that redaction holds in JSON as in text."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from fusion import logs
from fusion.security import redact


@pytest.fixture
def json_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger(f"tests.logs.{id(stream)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    logs.use([handler], "json")
    redact.install(logger)
    try:
        yield logger, stream
    finally:
        logs.clear()
        logger.removeHandler(handler)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_carries_time_level_logger_message_context_and_extra(json_log) -> None:
    logger, stream = json_log
    # Given a request bound to the context, then its org
    logs.start(request_id="req-1")
    logs.add(org_id="org-9")
    # When a line is logged with an extra field, and another inside a job's run
    logger.info("pushed %d", 3, extra={"duration_ms": 12.5})
    with logs.bound(job_id="job-7", attempt=2):
        logger.warning("retrying")
    logger.info("after the job")
    # Then each is one JSON object with the context that applied at the time
    first, in_job, after = _lines(stream)
    assert first["message"] == "pushed 3" and first["level"] == "info"
    assert first["logger"] == logger.name and str(first["time"]).endswith("+00:00")
    assert (first["request_id"], first["org_id"], first["duration_ms"]) == ("req-1", "org-9", 12.5)
    assert (in_job["job_id"], in_job["attempt"], in_job["request_id"]) == ("job-7", "2", "req-1")
    assert in_job["level"] == "warning"
    assert "job_id" not in after


def test_a_new_unit_of_work_starts_without_the_last_ones_context(json_log) -> None:
    logger, stream = json_log
    logs.start(request_id="first", org_id="org-1")
    logs.start(request_id="second")
    logger.info("hello")
    [line] = _lines(stream)
    assert line["request_id"] == "second" and "org_id" not in line


def test_secrets_are_redacted_in_json_lines_and_exceptions(json_log) -> None:
    logger, stream = json_log
    token = "shpat_" + "a1b2c3d4e5f6"
    try:
        raise RuntimeError(f"the platform refused Bearer {token}")
    except RuntimeError:
        logger.exception("push failed for %s", token, extra={"access_token": token})
    text = stream.getvalue()
    assert token not in text
    [line] = _lines(stream)
    assert line["access_token"] == redact.REDACTED
    assert "RuntimeError" in str(line["exception"])


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="text, json"):
        logs.formatter("xml")
