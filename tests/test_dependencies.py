"""The floors of the dependencies that guard input: each one above a release known to let
something through."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _floor(name: str) -> Version:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    for line in project["dependencies"]:
        requirement = Requirement(line)
        if requirement.name == name:
            floors = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
            assert floors, f"{name} has no floor"
            return max(floors)
    raise AssertionError(f"{name} is not a dependency")


def test_marshmallow_floor_refuses_a_backslash_before_userinfo_in_urls() -> None:
    # marshmallow 3.20.x's URL field accepts http://127.0.0.1:80\@evil.com/ (3.21.0 is the
    # first to refuse it); 3.26.2 also fixes CVE-2025-68480 (Schema.load(many=True) DoS).
    assert _floor("marshmallow") >= Version("3.26.2")
