"""The extras of pyproject.toml and the modules fusion/runtime/extras.py checks for agree, and
the dev install (bin/setup) has them all."""

from __future__ import annotations

import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from fusion.runtime.extras import DISTRIBUTION, EXTRAS, missing

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _project() -> dict[str, object]:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]


def _names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def test_each_extra_checks_for_the_modules_of_exactly_its_distributions() -> None:
    optional = _project()["optional-dependencies"]
    assert isinstance(optional, dict)
    providers = packages_distributions()
    for extra, modules in EXTRAS.items():
        provided = {canonicalize_name(d) for m in modules for d in providers.get(m, [])}
        assert provided == _names(optional[extra]), extra


def test_no_extra_is_also_a_production_dependency() -> None:
    project = _project()
    optional = project["optional-dependencies"]
    assert isinstance(optional, dict) and isinstance(project["dependencies"], list)
    production = _names(project["dependencies"])
    for extra in EXTRAS:
        assert not production & _names(optional[extra]), extra


def test_dev_includes_every_extra_and_the_dev_install_has_them() -> None:
    optional = _project()["optional-dependencies"]
    assert isinstance(optional, dict)
    [itself] = [Requirement(r) for r in optional["dev"] if Requirement(r).name == DISTRIBUTION]
    assert itself.extras == set(EXTRAS)
    for extra in EXTRAS:
        assert missing(extra) == ()
