"""tools/docs_hooks.py: a page being written joins the site's navigation once its file exists."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[3]


def load_hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "tools" / "docs_hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("docs_hooks", module)
    spec.loader.exec_module(module)
    return module


def nav() -> list[Any]:
    return [{"Home": "index.md"}, {"Testing your bots": "testing.md"}, {"API": ["reference/index.md"]}]


def test_an_optional_page_joins_the_nav_once_it_exists(tmp_path: Path) -> None:
    hooks = load_hooks()
    title, page, after = hooks.OPTIONAL_PAGES[0]
    config = {"docs_dir": str(tmp_path), "nav": nav()}
    assert hooks.on_config(config)["nav"] == nav()  # not written yet: nothing added
    (tmp_path / page).write_text("# Bots\n", encoding="utf-8")
    titles = [next(iter(entry)) for entry in hooks.on_config(config)["nav"]]
    assert titles.index(title) == titles.index(after) + 1
    # Once listed (by the hook or by mkdocs.yml), it is not added twice.
    assert [next(iter(e)) for e in hooks.on_config(config)["nav"]].count(title) == 1


def test_the_optional_pages_follow_entries_of_mkdocs_yml() -> None:
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for _title, _page, after in load_hooks().OPTIONAL_PAGES:
        assert f"  - {after}:" in text, after
