"""The documentation site for the tests: build it, and read the API reference's objects the way
mkdocstrings renders them (griffe, with ``mkdocs.yml``'s extensions and filters)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import griffe
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
REFERENCE = DOCS / "reference"


def build_site(dest: Path) -> str:
    """``mkdocs build --strict`` into ``dest``; fails with MkDocs' output when the build fails."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(dest)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{output}"
    return output


def python_options() -> dict[str, Any]:
    """The mkdocstrings Python handler's options of ``mkdocs.yml``."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    for plugin in config["plugins"]:
        if isinstance(plugin, dict) and "mkdocstrings" in plugin:
            options: dict[str, Any] = plugin["mkdocstrings"]["handlers"]["python"]["options"]
            return options
    raise AssertionError("mkdocs.yml has no mkdocstrings plugin")


def directives() -> list[tuple[str, dict[str, Any]]]:
    """``(identifier, options)`` of every ``::: identifier`` of the reference pages (the options
    of its indented ``options:`` block, if any)."""
    found: list[tuple[str, dict[str, Any]]] = []
    for page in sorted(REFERENCE.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for match in re.finditer(r"^::: (\S+)\n((?:    .*\n)*)", text, flags=re.M):
            block = yaml.safe_load(textwrap.dedent(match.group(2))) if match.group(2) else None
            found.append((match.group(1), dict((block or {}).get("options") or {})))
    return found


def reference_identifiers() -> list[str]:
    """Every ``::: identifier`` of the reference pages."""
    return [identifier for identifier, _ in directives()]


@cache
def load_api() -> griffe.Module:
    """``lpm`` as mkdocstrings loads it (the same extensions and docstring style)."""
    options = python_options()
    extensions = griffe.load_extensions(
        *(str(ROOT / e) if e.endswith(".py") or ".py:" in e else e for e in options["extensions"])
    )
    loader = griffe.GriffeLoader(
        search_paths=[str(ROOT / "src")], extensions=extensions, docstring_parser=griffe.Parser.sphinx
    )
    package = loader.load("lpm")
    loader.resolve_aliases(implicit=False, external=False)
    assert isinstance(package, griffe.Module)
    return package


def _target(obj: griffe.Object | griffe.Alias) -> griffe.Object:
    target = obj.final_target if isinstance(obj, griffe.Alias) else obj
    assert isinstance(target, griffe.Object)
    return target


def _shown(name: str, filters: list[str]) -> bool:
    """Whether mkdocstrings' ``filters`` let a member called ``name`` through."""
    for pattern in filters:
        negative = pattern.startswith("!")
        if bool(re.search(pattern.lstrip("!"), name)) == negative:
            return False
    return True


def rendered_objects() -> Iterator[tuple[str, griffe.Object]]:
    """``(rendered path, object)`` of each object and member the reference pages show."""
    package = load_api()
    for identifier, options in directives():
        filters: list[str] = options.get("filters", python_options()["filters"])
        obj = _target(package.modules_collection[identifier])
        yield identifier, obj
        if obj.is_module:
            names = [str(n) for n in obj.exports] if obj.exports is not None else list(obj.members)
            members = {n: obj.members[n] for n in names if n in obj.members}
        elif obj.is_class:
            assert isinstance(obj, griffe.Class)
            inherited = options.get("inherited_members", python_options()["inherited_members"])
            members = dict(obj.all_members if inherited else obj.members)
        else:
            continue
        for name, member in members.items():
            if not _shown(name, filters) or (obj.is_module and not member.is_public):
                continue
            target = _target(member)
            yield f"{identifier}.{name}", target
            if target.is_class and obj.is_module:
                assert isinstance(target, griffe.Class)
                for sub_name, sub in target.all_members.items():
                    if _shown(sub_name, filters):
                        yield f"{identifier}.{name}.{sub_name}", _target(sub)
