"""``lpm emulator`` as a real subprocess: the JSON line, serving, clean stop, error exits."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from click.testing import CliRunner

from lpm import __version__
from lpm.cli.main import main

LPM = [sys.executable, "-m", "lpm.cli.main"]
#: Start-up generates RSA keys (and a CA with --tls): generous, but only hit on failure.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0


@asynccontextmanager
async def lpm_emulator(*args: str) -> AsyncIterator[dict[str, Any]]:
    """Run ``lpm emulator --port 0 --json *args``; yield the description; stop it with SIGINT
    and check it exits 0 without a traceback."""
    proc = await asyncio.create_subprocess_exec(
        *LPM,
        "emulator",
        "--port",
        "0",
        "--json",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)
        if not line:
            _, err = await proc.communicate()
            raise AssertionError(f"lpm emulator exited {proc.returncode}: {err.decode()}")
        yield json.loads(line)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
        await proc.communicate()
        raise
    proc.send_signal(signal.SIGINT)
    rest, err = await asyncio.wait_for(proc.communicate(), STOP_TIMEOUT)
    assert proc.returncode == 0, err.decode()
    assert rest == b"", "nothing but the JSON line goes to stdout"
    assert b"Traceback" not in err, err.decode()


async def check_serves(info: dict[str, Any], ssl_context: ssl.SSLContext | None = None) -> None:
    """CSDS answers, and the first printed user can log in at the agentVep it names."""
    acc = info["account_id"]
    domain = info["csds_domain"]
    base = domain if domain.startswith("http://") else f"https://{domain}"
    scheme = base.split("://", 1)[0]
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{base}/api/account/{acc}/service/baseURI.json", ssl=ssl_context or True
        ) as resp:
            assert resp.status == 200
            services = {s["service"]: s["baseURI"] for s in (await resp.json())["baseURIs"]}
        user = info["users"][0]
        async with http.post(
            f"{scheme}://{services['agentVep']}/api/account/{acc}/login?v=1.3",
            json={"username": user["username"], "password": user["password"]},
            ssl=ssl_context or True,
        ) as resp:
            assert resp.status == 200
            body = await resp.json()
            assert body["config"]["userId"] == user["user_id"]


async def test_json_line_then_serves_until_sigint() -> None:
    async with lpm_emulator("--faults") as info:
        assert info["csds_domain"].startswith("http://127.0.0.1:")
        assert info["ca_file"] is None
        assert info["account_id"] == "12345678"
        assert {u["username"] for u in info["users"]} == {"agent", "bot", "survey-bot"}
        assert {s["id"] for s in info["skills"]} == {"11", "12"}
        kinds = {c["id"]: c for c in info["connectors"]}
        assert await asyncio.to_thread(Path(kinds["3002"]["signing_key_file"]).is_file)
        assert info["app_installs"][0]["client_id"]
        # Demo credentials only: no bearer, no JWT.
        text = json.dumps(info)
        assert "bearer" not in text and "eyJ" not in text
        await check_serves(info)
        # --faults switched the control API on.
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{info['csds_domain']}/_emulator/state") as resp,
        ):
            assert resp.status == 200


async def test_tls() -> None:
    async with lpm_emulator("--tls") as info:
        assert not info["csds_domain"].startswith("http")
        ca_file = Path(info["ca_file"])
        assert await asyncio.to_thread(ca_file.is_file)
        await check_serves(info, ssl.create_default_context(cafile=str(ca_file)))
        # Without the CA the certificate is not trusted.
        async with aiohttp.ClientSession() as http:
            try:
                async with http.get(
                    f"https://{info['csds_domain']}/api/account/12345678/service/baseURI.json"
                ):
                    raise AssertionError("the emulator's certificate was trusted without its CA")
            except aiohttp.ClientConnectorCertificateError:
                pass


async def test_flags_override_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "world.toml"
    config.write_text(
        '[settings]\nring_expiry = 5\n\n[[accounts]]\nid = "777"\n\n'
        '[[accounts.users]]\nuser_id = "1"\nlogin_name = "ann"\npassword = "pw"\n'
    )
    async with lpm_emulator("--config", str(config), "--faults", "--ring-expiry", "9") as info:
        assert info["account_id"] == "777"
        assert [u["username"] for u in info["users"]] == ["ann"]
        await check_serves(info)


def test_bad_config_exits_3(tmp_path: Path) -> None:
    config = tmp_path / "world.toml"
    config.write_text("[settings]\nwarp_speed = 9\n")
    result = subprocess.run(
        [*LPM, "emulator", "--port", "0", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    assert result.returncode == 3  # ConfigurationError's code
    assert "warp_speed" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_missing_config_exits_3(tmp_path: Path) -> None:
    result = subprocess.run(
        [*LPM, "emulator", "--config", str(tmp_path / "nope.toml")],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    assert result.returncode == 3
    assert "nope.toml" in result.stderr


def test_port_in_use_exits_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*LPM, "emulator", "--port", str(port), "--json"],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            check=False,
        )
    assert result.returncode == 1
    assert "already in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_help_and_version() -> None:
    runner = CliRunner()
    top = runner.invoke(main, ["--help"])
    assert top.exit_code == 0
    assert "emulator" in top.output
    sub = runner.invoke(main, ["emulator", "--help"])
    assert sub.exit_code == 0
    for flag in ("--port", "--tls", "--db", "--config", "--faults", "--json", "--ring-expiry"):
        assert flag in sub.output
    version = runner.invoke(main, ["--version"])
    assert version.exit_code == 0
    assert __version__ in version.output


def test_help_as_a_real_process() -> None:
    result = subprocess.run(
        [*LPM, "emulator", "--help"], capture_output=True, text=True, timeout=START_TIMEOUT, check=False
    )
    assert result.returncode == 0
    assert "Usage:" in result.stdout


async def test_start_up_table_shows_skills_and_survey_roles() -> None:
    """Issue 12.6: who does what in the world is on screen: each user's skills and role, and
    which bot runs each skill's post-conversation survey."""
    proc = await asyncio.create_subprocess_exec(
        *LPM,
        "emulator",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},  # a wide "terminal": one row per line
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        while not any("Press Ctrl-C" in line for line in lines):
            raw = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)
            assert raw, f"lpm emulator ended: {lines}"
            lines.append(raw.decode())
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), STOP_TIMEOUT)
    assert proc.returncode == 0, err.decode()

    def row(first_cell: str) -> list[str]:
        found = [line for line in lines if line.startswith(f"│ {first_cell} ")]
        assert found, (first_cell, lines)
        return [cell.strip() for cell in found[0].strip().strip("│").split("│")]

    assert row("agent")[-2:] == ["12 support", "agent, manager"]
    assert row("bot")[-2:] == ["11 sales", "bot"]
    assert row("survey-bot")[-2:] == ["12 support", "bot, survey bot of 12 support"]
    assert row("11")[1:] == ["sales", ""]
    assert row("12")[1:] == ["support", "yes, by survey-bot"]
