"""The package's extras (issue 12.7): ``testing`` for users' bot tests, ``dev`` for this project.

A team testing its bots installs ``lp-messaging-sdk[testing]`` and gets pytest and pytest-asyncio,
not this project's linters and plotting libraries; the Makefile's virtualenv installs ``dev``,
which holds everything ``make test`` and ``make lint`` run.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
EXTRAS: dict[str, list[str]] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))[
    "project"
]["optional-dependencies"]


def names(extra: str) -> set[str]:
    return {Requirement(r).name.lower() for r in EXTRAS[extra]}


def test_testing_extra_is_what_the_fixture_runs_on() -> None:
    assert names("testing") == {"pytest", "pytest-asyncio"}


def test_dev_extra_holds_the_project_tools_and_every_user_extra() -> None:
    dev = names("dev")
    for extra in ("testing", "redis", "bench"):
        assert names(extra) <= dev, extra
    assert {"ruff", "mypy", "import-linter", "pytest-timeout", "hypothesis", "matplotlib"} <= dev
    # Same bounds where both name a package: dev is not an older or newer world.
    for extra in ("testing", "redis", "bench"):
        for requirement in EXTRAS[extra]:
            assert requirement in EXTRAS["dev"], requirement


def test_the_makefile_venv_installs_dev_and_it_is_installed() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"pip install [^\n]*-e '\.\[dev\]'", makefile)
    for requirement in map(Requirement, EXTRAS["dev"]):
        version = metadata.version(requirement.name)
        assert requirement.specifier.contains(version, prereleases=True), (requirement, version)
