"""Probes, Prometheus metrics and the server-sent events stream."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from api import events
from tests.api.conftest import Team
from tests.api.kit import make_kit
from tests.support.api import METRICS_TOKEN

SCRAPER = {"Authorization": f"Bearer {METRICS_TOKEN}"}
ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "fusion-alerts.yml"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def test_probes(client: FlaskClient) -> None:
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json["checks"] == {"database": "ok", "broker": "ok"}


def test_metrics_report_requests_and_jobs(
    client: FlaskClient, team_a: Team, admin_engine: Engine
) -> None:
    make_kit(admin_engine, team_a.org_id, None)  # one pending and one failed shopify job
    with admin_engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE jobs SET started_at = now() - interval '3 seconds', finished_at = now() "
                "WHERE status = 'failed'"
            )
        )
    team_a.viewer.get(f"/orgs/{team_a.org_id}/jobs")
    body = client.get("/metrics", headers=SCRAPER).get_data(as_text=True)
    assert 'fusion_jobs{queue="shopify",status="pending"} 1.0' in body
    assert 'fusion_jobs{queue="shopify",status="failed"} 1.0' in body
    assert 'fusion_queue_depth_jobs{queue="shopify"} 1.0' in body
    # Run time is the workers' histogram now (tests/workers/test_metrics.py), not a window
    assert "fusion_job_duration_seconds" not in body
    assert 'fusion_metrics_source_up{source="database"} 1.0' in body
    assert 'fusion_metrics_source_up{source="broker"} 1.0' in body
    assert (
        'fusion_http_requests_total{endpoint="/orgs/<uuid:org_id>/jobs",method="GET",status="200"}'
    ) in body
    assert str(team_a.org_id) not in body


def _events(response, count: int) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    found: list[dict[str, object]] = []
    buffer = ""
    for chunk in response.response:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            lines = dict(
                line.split(": ", 1)
                for line in block.splitlines()
                if ": " in line and not line.startswith(":")
            )
            if "event" in lines:
                found.append(
                    {
                        "event": lines["event"],
                        "position": lines.get("id"),
                        **json.loads(lines["data"]),
                    }
                )
        if len(found) >= count:
            return found
    return found


def test_event_stream_shows_job_and_approval_changes(
    client: FlaskClient, team_a: Team, team_b: Team, admin_engine: Engine, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(events, "POLL_S", 0.1)
    monkeypatch.setattr(events, "STREAM_S", 20)
    make_kit(admin_engine, team_b.org_id, None)  # B's changes must never show up
    # Given a viewer listening
    stream = team_a.viewer.get(f"/orgs/{team_a.org_id}/events")
    assert stream.status_code == 200 and stream.mimetype == "text/event-stream"
    # When a job is enqueued and an approval requested in A
    kit = make_kit(admin_engine, team_a.org_id, None)
    try:
        got = _events(stream, 3)
    finally:
        stream.close()
    # Then the stream carries exactly A's changes, each with a resumable position
    assert {(e["event"], e["id"], e["status"]) for e in got} == {
        ("job", str(kit["job_id"]), "pending"),
        ("job", str(kit["failed_job_id"]), "failed"),
        ("approval", str(kit["approval_id"]), "pending"),
    }
    assert all(e["position"] for e in got)


def test_removed_member_stream_ends(client: FlaskClient, team_a: Team, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(events, "POLL_S", 0.05)
    monkeypatch.setattr(events, "STREAM_S", 3)
    stream = team_a.viewer.get(f"/orgs/{team_a.org_id}/events")
    assert stream.status_code == 200
    removed = team_a.owner.call(
        "DELETE", f"/orgs/{team_a.org_id}/members/{team_a.member_ids['viewer']}"
    )
    assert removed.status_code == 204
    got = _events(stream, 1)
    stream.close()
    assert got and got[-1]["event"] == "end"


def _exported(client: FlaskClient) -> set[str]:
    """Every series name a scrape carries, samples or not (a family without samples yet,
    such as a histogram no worker has fed, still names its series)."""
    body = client.get("/metrics", headers=SCRAPER).get_data(as_text=True)
    names: set[str] = set()
    for family in text_string_to_metric_families(body):
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
        names |= {sample.name for sample in family.samples}
    return names


def test_the_shipped_alerts_name_only_series_the_hub_exports(client: FlaskClient) -> None:
    # Given the rules file and a real scrape
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    exported = _exported(client)
    assert len(rules) >= 8
    for rule in rules:
        # Then every rule is complete, its expression balanced, and every fusion_ series it
        # names is one the hub serves
        assert set(rule) >= {"alert", "expr", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"]["summary"]
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "0m")), rule
        expr = rule["expr"]
        assert expr.count("(") == expr.count(")"), rule["alert"]
        named = set(re.findall(r"\bfusion_[a-z0-9_]+", expr))
        assert named, rule["alert"]
        assert named <= exported, (rule["alert"], named - exported)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_shipped_alerts() -> None:
    checked = subprocess.run(
        ["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
