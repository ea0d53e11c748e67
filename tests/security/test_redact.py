"""The logging filter redacts secrets by key name and by shape."""

from __future__ import annotations

import io
import logging

from fusion.security.redact import REDACTED, RedactingFilter, redact, redact_text

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"


def test_shapes_are_redacted() -> None:
    text = (
        f"token shpat_abc123 and shpss_x9 secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw "
        f"jwt {JWT} header Bearer 1234.abcdEFG url https://x.test/a?access_token=SEKRIT&b=1"
    )
    out = redact_text(text)
    for leaked in ("shpat_abc123", "shpss_x9", "whsec_MfKQ", JWT, "1234.abcdEFG", "SEKRIT"):
        assert leaked not in out
    assert "b=1" in out and "https://x.test/a" in out


def test_each_shape_alone_in_a_line_is_redacted_whatever_its_case() -> None:
    # A line is scanned once for what any shape needs before the shapes run: none may slip by.
    alone = {
        f"job ran {JWT}": JWT,
        "got shpca_9f8e7d": "shpca_9f8e7d",
        "got shppa_x1": "shppa_x1",
        "sig whsec_abc": "whsec_abc",
        "header BEARER Zm9vYmFy": "Zm9vYmFy",
        "lwa Atzr|IwEBIA-refresh": "Atzr|IwEBIA-refresh",
        "url ?Token=t0psecr3t&x=1": "t0psecr3t",
        "API_KEY: hunter2": "hunter2",
        "Signature=0xdeadbeef": "0xdeadbeef",
        "{'Password': 'pa55'}": "pa55",
        "client_secret=cs-42": "cs-42",
        # letters IGNORECASE takes for s and k: the scan folds case as widely as the shapes
        "\u017fecret=long-s": "long-s",
        "api_\u212aey=kelvin": "kelvin",
    }
    for line, leaked in alone.items():
        out = redact_text(line)
        assert leaked not in out and REDACTED in out, line
    clean = "Task fusion.run_job[3f2a0c1e-9b7d-4e5f-8a6b-1c2d3e4f5a6b] succeeded in 0.01s"
    assert redact_text(clean) == clean


def test_mappings_are_redacted_by_key_name_and_walked() -> None:
    data = {"Authorization": "plain", "nested": [{"x-api-key": "k:s", "sku": "A-1"}]}
    assert redact(data) == {
        "Authorization": REDACTED,
        "nested": [{"x-api-key": REDACTED, "sku": "A-1"}],
    }


def test_filter_rewrites_messages_args_extras_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("tests.redact")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("calling with %s", {"access_token": "shpat_leak1"}, extra={"token": "t0k"})
        try:
            raise RuntimeError("boom Bearer abc.def")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "shpat_leak1" not in out and "abc.def" not in out
    assert "calling with" in out and "RuntimeError" in out
