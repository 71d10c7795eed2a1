"""The typing test (issue 12): the README's and the guides' examples, ``examples/`` and
``tests/typing/must_pass`` pass ``mypy --strict``; each mistake of ``tests/typing/must_fail`` gets
the error its ``# E:`` comment names.  ``make lint`` runs the same check
(``python tools/check_typing.py``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_typing", ROOT / "tools" / "check_typing.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("check_typing", module)
    spec.loader.exec_module(module)
    return module


def test_docs_examples_and_typing_cases_are_as_expected() -> None:
    problems = load_tool().check()
    assert problems == [], "\n".join(problems)


def test_doc_examples_are_extracted_whole() -> None:
    tool = load_tool()
    modules = {m.name: m for m in tool.doc_modules()}
    readme = modules["doc_README_0"]
    assert "asyncio.run(main())" in readme.source() and readme.page == "README.md"
    # docs/testing.md shows one test file in two blocks: one module.
    testing = [m for m in modules.values() if m.page == "docs/testing.md"]
    assert len(testing) == 1 and "test_bot_survives_a_dropped_socket" in testing[0].source()
    # A fragment awaiting at top level is checked inside an async def.
    fragment = modules["doc_README_1"]
    assert fragment.lines[0] == "async def _example() -> None:"
    # Every line maps back to its page line.
    text = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    for line, origin in zip(readme.lines, readme.origin, strict=True):
        assert text[origin - 1] == line


def test_the_comparison_reports_missing_and_unexpected_errors(tmp_path: Path) -> None:
    tool = load_tool()
    case = tmp_path / "case.py"
    case.write_text('x: int = "a"  # E: assignment\ny = 1  # E: name-defined\nz = 2\n', encoding="utf-8")
    expected = tool.expectations([case])
    assert [(e.line, e.code) for e in expected] == [(1, "assignment"), (2, "name-defined")]
    path = case.resolve()
    errors = [
        (path, 1, "assignment", "Incompatible types in assignment"),
        (path, 3, "misc", "something else"),
    ]
    problems = tool.compare(expected, errors, {})
    assert len(problems) == 2
    assert "case.py:2: expected a [name-defined] error" in problems[0]
    assert "case.py:3: unexpected error: something else" in problems[1]
    # A fragment of the message must match too.
    fragment = tool.Expectation(case, 1, "assignment", "Incompatible")
    assert tool.compare([fragment], errors[:1], {}) == []
    assert tool.compare([tool.Expectation(case, 1, "assignment", "unrelated")], errors[:1], {})
