"""Each example runs as its own process against its embedded emulator, exits 0 and says OK.

The examples are what users copy first: they must keep working with one command.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: example -> (small arguments, a line its output must contain)
CASES: dict[str, tuple[list[str], str]] = {
    "greeting_bot": (["--consumers", "2"], "OK: 2 consumer(s) greeted"),
    "echo_bot": (["--messages", "2"], "OK: 2 message(s) echoed, conversation closed on 'bye'"),
    "transfer_bot": ([], "OK: transferred to skill 12 and greeted by the human agent"),
    "survey_bot": (["--answer", "4"], "OK: survey answer '4' recorded, survey dialog closed"),
    "manager_bot": (["--conversations", "2"], "OK: manager joined 2 conversation(s); notes stayed private"),
    "consumer_load": (
        ["--consumers", "5", "--messages", "3"],
        "OK: 5 consumer(s), 15 message(s), all echoed",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_runs(name: str) -> None:
    args, expected = CASES[name]
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), "--timeout", "8", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert expected in result.stdout, output


def test_consumer_load_reports_throughput_and_latency() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "consumer_load.py"), "--consumers", "3", "--messages", "2"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "messages/s" in result.stdout and "p50" in result.stdout and "p99" in result.stdout


def test_an_unreachable_platform_fails_with_a_message() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "echo_bot.py"),
            "--csds-domain",
            "http://127.0.0.1:9",
            "--timeout",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "FAILED" in result.stderr
