"""The lock files in locks/ hold every exact pin they are made from: `make lock` was run after the last change."""

import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .conftest import ROOT

LOCKS = ROOT / "locks"
APPS = ["echo-service", "tutorial-2-job", "tutorial-3-service-to-service"]


def pins(lines: list[str]) -> dict[str, str]:
    """Each `name==version` of a requirements file, by normalized name."""
    found = {}
    for line in lines:
        text = line.split("#")[0].split(";")[0].strip()
        if text and not text.startswith("-"):
            requirement = Requirement(text)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", f"{text}: pins are exact"
            found[canonicalize_name(requirement.name)] = specifier.version
    return found


def locked(name: str) -> dict[str, str]:
    return pins((LOCKS / name).read_text().splitlines())


def test_the_development_lock_holds_the_apps_requirements_and_the_tooling_pins() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    wanted = pins(project["dev"] + project["local"])
    for app in APPS:
        wanted |= pins((ROOT / app / "requirements.txt").read_text().splitlines())

    lock = locked("dev.txt")
    assert {name: lock.get(name) for name in wanted} == wanted


@pytest.mark.parametrize("tool", ["snow-cli", "connector5"])
def test_each_tool_lock_holds_its_pins_and_overrides(tool: str) -> None:
    wanted = pins((LOCKS / f"{tool}.in").read_text().splitlines())
    overrides = LOCKS / f"{tool}-overrides.txt"
    if overrides.exists():
        wanted |= pins(overrides.read_text().splitlines())

    lock = locked(f"{tool}.txt")
    assert {name: lock.get(name) for name in wanted} == wanted
