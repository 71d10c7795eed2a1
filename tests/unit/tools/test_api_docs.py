"""The API reference (docs/api/) is what tools/gen_api_docs.py generates from the current docstrings,
and every public name of ``lpm`` is documented."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType

import lpm

ROOT = Path(__file__).resolve().parents[3]
API_DIR = ROOT / "docs" / "api"


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_api_docs", ROOT / "tools" / "gen_api_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_api_docs", module)
    spec.loader.exec_module(module)
    return module


def test_docs_api_is_up_to_date(tmp_path: Path) -> None:
    tool = load_tool()
    assert tool.main(["--out", str(tmp_path)]) == 0
    fresh = {p.name: p.read_text(encoding="utf-8") for p in sorted(tmp_path.glob("*.md"))}
    committed = {p.name: p.read_text(encoding="utf-8") for p in sorted(API_DIR.glob("*.md"))}
    stale = sorted(name for name in fresh.keys() | committed.keys() if fresh.get(name) != committed.get(name))
    assert not stale, f"docs/api is out of date ({', '.join(stale)}): run `make docs`"


def test_generation_is_deterministic() -> None:
    tool = load_tool()
    first, second = tool.generate(), tool.generate()
    assert first == second
    assert "index.md" in first and "lpm.md" in first and "lpm.Conversation.md" in first
    assert not any(" at 0x" in text for text in first.values())
    assert not any(str(ROOT) in text for text in first.values())


def test_every_public_module_and_exported_class_has_a_page() -> None:
    pages = load_tool().generate()
    for module in ("lpm", "lpm.errors", "lpm.enums", "lpm.sde", "lpm.webhooks", "lpm.stores", "lpm.testing"):
        assert f"{module}.md" in pages
    assert "lpm.emulator.md" in pages
    index = pages["index.md"]
    for name in lpm.__all__:
        obj = getattr(lpm, name)
        # Every exported name is listed on the lpm page, linked to where it is documented.
        assert f"[`{name}`]" in pages["lpm.md"], name
        if inspect.isclass(obj) and obj.__module__.startswith("lpm.client"):
            assert f"lpm.{name}.md" in pages and f"(lpm.{name}.md)" in index, name
    # Public methods appear with their signatures.
    conversation = pages["lpm.Conversation.md"]
    assert "### `send_message()`" in conversation
    assert "async def send_message(" in conversation
    assert "async def consumer(" in pages["lpm.testing.md"]


def test_every_exported_name_has_a_docstring() -> None:
    tool = load_tool()
    missing = []
    for name in lpm.__all__:
        obj = getattr(lpm, name)
        if inspect.isclass(obj) or inspect.isroutine(obj) or inspect.ismodule(obj):
            # A class's own docstring, not one inherited from object or Exception.
            doc = vars(obj).get("__doc__") if inspect.isclass(obj) else obj.__doc__
            ok = bool(doc and doc.strip())
        else:
            # Values have no docstrings: their "#:" comment is their documentation.
            ok = bool(tool.value_doc(lpm, name, obj))
        if not ok:
            missing.append(name)
    assert not missing, f"public names without documentation: {missing}"


def test_markdown_conversion() -> None:
    tool = load_tool()
    text = tool.markdown(
        """Use :class:`~lpm.errors.LpmError` or :func:`lpm.create_connection` with ``x=1``::

            conn = make()

        Done."""
    )
    assert text == (
        "Use `LpmError` or `lpm.create_connection` with `x=1`:\n\n```\nconn = make()\n```\n\nDone.\n"
    )
