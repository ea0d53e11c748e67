"""What ``fusion up`` hands its children: the same home and servers, and outside production
the API's own address as the public URL (the local sandboxes reach it)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fusion.config import Settings
from fusion.runtime.services import child_env


def _settings(tmp_path: Path, **over: object) -> Settings:
    base = Settings(home=tmp_path, api_host="127.0.0.1", api_port=8123)
    return dataclasses.replace(base, **over)


def test_outside_production_the_public_url_defaults_to_the_api(tmp_path: Path) -> None:
    assert child_env(_settings(tmp_path))["FUSION_PUBLIC_URL"] == "http://127.0.0.1:8123"


def test_a_given_public_url_is_passed_on_and_production_gets_no_default(tmp_path: Path) -> None:
    given = _settings(tmp_path, env="production", public_url="https://hub.example.com")
    assert child_env(given)["FUSION_PUBLIC_URL"] == "https://hub.example.com"
    assert "FUSION_PUBLIC_URL" not in child_env(_settings(tmp_path, env="production"))
