"""The Python examples of the guides run as written (docs/getting-started.md, docs/concepts.md), the
testing guide shows the example test that really runs, and the emulator guide's world file loads."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from lpm.emulator import Emulator, load_toml

DOCS = Path(__file__).resolve().parents[2] / "docs"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RUNNABLE_PAGES = ("getting-started.md", "concepts.md")


def python_blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(encoding="utf-8"), flags=re.S)


def block_ids() -> list[tuple[str, int]]:
    return [(page, i) for page in RUNNABLE_PAGES for i in range(len(python_blocks(page)))]


@pytest.mark.parametrize(("page", "index"), block_ids(), ids=lambda v: str(v))
async def test_guide_example_runs(page: str, index: int) -> None:
    """Every Python block of the guides is a whole program: it runs and prints OK.  Blocks made for
    a LivePerson account read it from LPM_* variables; here they point at an emulator."""
    block = python_blocks(page)[index]
    assert "asyncio.run(" in block, f"{page} block {index} is not a runnable program"
    env = dict(os.environ)
    async with Emulator() as emu:
        env.update(
            LPM_ACCOUNT=emu.account_id,
            LPM_CSDS_DOMAIN=emu.csds_domain,
            LPM_USERNAME="bot",
            LPM_PASSWORD="bot-password",
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            block,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, err.decode()
    assert out.decode().splitlines()[-1] == "OK", (out.decode(), err.decode())


def test_getting_started_first_bot_output() -> None:
    first = python_blocks("getting-started.md")[0]
    assert "Emulator()" in first and "print((await reply).text)" in first


def test_testing_guide_shows_the_real_example_test() -> None:
    example = (EXAMPLES / "tests" / "test_my_bot.py").read_text(encoding="utf-8")
    blocks = python_blocks("testing.md")
    assert blocks
    for block in blocks:
        assert block in example or block.strip() in example, block


def test_emulator_guide_world_file_loads(tmp_path: Path) -> None:
    text = (DOCS / "emulator.md").read_text(encoding="utf-8")
    worlds = re.findall(r"```toml\n(.*?)```", text, flags=re.S)
    assert worlds
    for n, world in enumerate(worlds):
        path = tmp_path / f"world{n}.toml"
        path.write_text(world, encoding="utf-8")
        spec = load_toml(path)
        assert spec.accounts and spec.accounts[0].users


async def test_emulator_guide_full_world_serves(tmp_path: Path) -> None:
    """The full example world starts and its users log in."""
    text = (DOCS / "emulator.md").read_text(encoding="utf-8")
    world = max(re.findall(r"```toml\n(.*?)```", text, flags=re.S), key=len)
    path = tmp_path / "world.toml"
    path.write_text(world, encoding="utf-8")
    from lpm.testing import TestEmulator

    async with TestEmulator(load_toml(path)) as emu:
        for user in emu.spec.accounts[0].users:
            if user.password:
                conn = await emu.agent(user.login_name)
                assert conn.agent_id == f"{emu.account_id}.{user.user_id}"


def test_cli_exit_code_tables_match_the_code() -> None:
    from lpm import errors
    from lpm.cli.common import exit_code_for

    by_class = {
        name: code
        for name, code in (
            (cls.__name__, exit_code_for(cls("x") if cls is not errors.RequestError else cls(400, "t", "b")))
            for cls in (
                errors.ConfigurationError,
                errors.AuthenticationError,
                errors.LpmConnectionError,
                errors.RequestError,
                errors.ProtocolError,
                errors.HttpError,
                errors.InvalidStateError,
            )
        )
    }
    for page in ("cli.md", "troubleshooting.md"):
        rows = dict(
            re.findall(r"^\| (\d+) \| `(\w+)`", (DOCS / page).read_text(encoding="utf-8"), flags=re.M)
        )
        for code, name in rows.items():
            if name in by_class:
                assert by_class[name] == int(code), (page, name)
        assert len(rows) >= 8, page


def test_doc_links_resolve() -> None:
    """Relative links of the guides point at files that exist (pages others write excepted).
    The strict site build (tests/docs/test_site.py) checks every link of every page, anchors too."""
    later = {"cli-chat.md", "cli-agent.md", "performance.md"}
    for page in (
        "index.md",
        "getting-started.md",
        "concepts.md",
        "testing.md",
        "troubleshooting.md",
        "cli.md",
        "porting-from-node.md",
        "porting-from-node-agent-sdk.md",
    ):
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", (DOCS / page).read_text(encoding="utf-8")):
            if target in later:
                continue
            assert (DOCS / target).resolve().exists(), (page, target)
