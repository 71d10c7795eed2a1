"""The typing test (``make lint``): what must pass ``mypy --strict`` passes, and what must fail
fails with the expected errors.

::

    python tools/check_typing.py            # exit 0 when every expectation holds
    python tools/check_typing.py --keep DIR # also keep the extracted doc examples in DIR

One ``mypy`` run (the project's configuration: ``strict``) over:

* every Python example of ``README.md`` and ``docs/*.md``, extracted into modules (below);
* every file of ``examples/``;
* ``tests/typing/must_pass/*.py``: uses of the API that must type-check, pinned with
  ``typing.assert_type``;
* ``tests/typing/must_fail/*.py``: mistakes that must not.  Each line that must fail ends with an
  expected-error comment, ``# E: <error code>`` optionally followed by a fragment of the message
  (``# E: attr-defined "set_agent_state"``); the line must get an error with that code (and
  fragment), and no line without such a comment may get one.

Extraction: each Python block of a page starts a new module when it begins with an import,
and otherwise continues the module of the block before it (``docs/testing.md`` shows one test
file in two blocks).  A module that awaits at top level (``async with Emulator() as emu: ...``)
is checked as the body of an ``async def``.  Errors are reported at the page's own lines.
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("README.md", "docs/*.md", "docs/connections/*.md", "docs/reference/*.md")
TYPING = ROOT / "tests" / "typing"
EXPECTED = re.compile(r"#\s*E:\s*(?P<code>[a-z][a-z0-9-]*)(?:\s+(?P<text>.+?))?\s*$")
MYPY_LINE = re.compile(
    r"^(?P<path>[^:]+):(?P<line>\d+): (?P<kind>error|note): (?P<message>.*?)(?:  \[(?P<code>[a-z0-9-]+)\])?$"
)
BLOCK = re.compile(r"^```python\n(.*?)^```", flags=re.M | re.S)


@dataclass
class DocModule:
    """Python blocks of one page checked as one module; ``origin[i]`` is the page line of line i+1."""

    page: str
    name: str
    lines: list[str] = field(default_factory=list)
    origin: list[int] = field(default_factory=list)

    def source(self) -> str:
        return "\n".join(self.lines) + "\n"


def _starts_with_import(block: str) -> bool:
    for line in block.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return stripped.startswith(("import ", "from "))
    return False


def _awaits_at_top_level(source: str) -> bool:
    try:  # compiled, never run: only the compiler refuses a top-level await (ast.parse allows it)
        compile(source, "<doc>", "exec", dont_inherit=True)
    except SyntaxError:
        try:
            compile(source, "<doc>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
        except SyntaxError:
            return False  # a real syntax error: mypy reports it
        return True
    return False


def doc_modules(root: Path = ROOT) -> list[DocModule]:
    """The Python examples of the README and the guides, as modules to type-check."""
    pages = sorted({p for pattern in PAGES for p in root.glob(pattern)})
    modules: list[DocModule] = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        rel = page.relative_to(root).as_posix()
        current: DocModule | None = None
        for match in BLOCK.finditer(text):
            block = match.group(1)
            first_line = text.count("\n", 0, match.start(1)) + 1
            if current is None or _starts_with_import(block):
                stem = re.sub(r"\W", "_", rel.removesuffix(".md"))
                current = DocModule(rel, f"doc_{stem}_{len([m for m in modules if m.page == rel])}")
                modules.append(current)
            elif current.lines:
                current.lines.append("")
                current.origin.append(first_line - 1)
            for n, line in enumerate(block.splitlines()):
                current.lines.append(line)
                current.origin.append(first_line + n)
    for module in modules:
        if _awaits_at_top_level(module.source()):
            module.lines = [
                "async def _example() -> None:",
                *(f"    {line}" if line else "" for line in module.lines),
            ]
            module.origin = [module.origin[0], *module.origin]
    return modules


#: ``(path, line, error code, message)`` of one error ``mypy`` reported.
Error = tuple[Path, int, str, str]


@dataclass(frozen=True)
class Expectation:
    path: Path
    line: int
    code: str
    text: str | None


def expectations(files: list[Path]) -> list[Expectation]:
    found = []
    for path in files:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            match = EXPECTED.search(line)
            if match:
                text = match.group("text")
                found.append(Expectation(path, n, match.group("code"), text.strip('"') if text else None))
    return found


def run_mypy(files: list[Path]) -> list[Error]:
    """``(path, line, code, message)`` of every error ``mypy`` reports for ``files``."""
    command = [
        sys.executable,
        "-m",
        "mypy",
        "--config-file",
        str(ROOT / "pyproject.toml"),
        "--no-pretty",
        "--no-error-summary",
        "--show-error-codes",
        "--no-color-output",
        *map(str, files),
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if result.returncode not in (0, 1) or result.stderr.strip():
        raise SystemExit(f"mypy failed to run ({result.returncode}):\n{result.stderr}{result.stdout}")
    errors = []
    for line in result.stdout.splitlines():
        match = MYPY_LINE.match(line)
        if match is None:
            raise SystemExit(f"unexpected mypy output: {line}\n{result.stdout}")
        if match.group("kind") == "error":
            path = Path(match.group("path"))
            path = path if path.is_absolute() else ROOT / path
            errors.append(
                (path.resolve(), int(match.group("line")), match.group("code") or "", match.group("message"))
            )
    return errors


def check(keep: Path | None = None) -> list[str]:
    """The problems found (empty: every expectation holds)."""
    must_pass = sorted((TYPING / "must_pass").glob("*.py"))
    must_fail = sorted((TYPING / "must_fail").glob("*.py"))
    examples = sorted((ROOT / "examples").rglob("*.py"))
    with tempfile.TemporaryDirectory(prefix="lpm-typing-") as tmp:
        out = keep or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        docs = doc_modules()
        where: dict[Path, DocModule] = {}
        for module in docs:
            path = (out / f"{module.name}.py").resolve()
            path.write_text(module.source(), encoding="utf-8")
            where[path] = module
        errors = run_mypy([*where, *examples, *must_pass, *must_fail])

    return compare(expectations(must_fail), errors, where)


def compare(expected: list[Expectation], errors: list[Error], where: dict[Path, DocModule]) -> list[str]:
    """What differs between the expected errors and ``mypy``'s (``where``: the extracted doc
    modules, to name their page lines)."""
    problems = []
    unmatched = list(errors)
    for want in expected:
        path = want.path.resolve()
        hits = [
            e
            for e in unmatched
            if e[0] == path
            and e[1] == want.line
            and e[2] == want.code
            and (not want.text or want.text in e[3])
        ]
        if not hits:
            fragment = f" containing {want.text!r}" if want.text else ""
            problems.append(
                f"{_show(path)}:{want.line}: expected a [{want.code}] error{fragment}; mypy found none"
            )
        unmatched = [e for e in unmatched if not (e[0] == path and e[1] == want.line)]
    for path, line, code, message in unmatched:
        module = where.get(path)
        place = f"{module.page}:{module.origin[line - 1]}" if module else f"{_show(path)}:{line}"
        problems.append(f"{place}: unexpected error: {message}  [{code}]")
    if not expected:
        problems.append("tests/typing/must_fail has no expected-error comments")
    return problems


def _show(path: Path) -> str:
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--keep", type=Path, help="write the extracted doc examples here")
    args = parser.parse_args(argv)
    problems = check(args.keep)
    for problem in problems:
        print(problem)
    if problems:
        print(f"typing check: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print("typing check: docs, examples and tests/typing are as expected")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
