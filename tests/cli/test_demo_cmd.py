"""``lpm demo``: a bot and consumers through the embedded emulator, end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner, Result

from lpm.cli.demo_cmd import GREETING, SCRIPT, Conversation, summarize
from lpm.cli.main import main

#: The installed console script, next to the interpreter running the tests.
LPM = Path(sys.executable).with_name("lpm")


def run_demo(*args: str) -> Result:
    return CliRunner().invoke(main, ["demo", *args])


def test_one_consumer_prints_the_transcript() -> None:
    result = run_demo("--consumers", "1")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert GREETING in out
    for line in SCRIPT:
        assert f"consumer » {line}" in out
    assert "accepted the ring" in out
    assert "is typing" in out and "read it" in out
    assert "conversation closed by AGENT" in out
    assert "rated the conversation" in out
    assert " ms)" in out  # each answer's latency
    assert "1/1" in out  # the summary table
    # Never a JWT (they start with a base64 '{"'), nor the word bearer.
    assert "eyJ" not in result.output and "bearer" not in result.output.lower()


def test_five_consumers_json_summary() -> None:
    result = run_demo("--consumers", "5", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # one object and nothing else on stdout
    assert summary["consumers"] == 5
    assert summary["completed"] == 5
    assert summary["errors"] == 0 and summary["error_messages"] == []
    # Per conversation: the greeting, then each scripted line and its answer.
    assert summary["messages"] == 5 * (1 + 2 * len(SCRIPT))
    latency = summary["latency_ms"]
    assert 0 < latency["p50"] <= latency["p99"] <= latency["max"]


def test_several_consumers_show_progress_and_summary() -> None:
    result = run_demo("--consumers", "3")
    assert result.exit_code == 0, result.output
    assert "3/3" in result.stdout
    assert GREETING not in result.stdout  # no transcript with more than one consumer


def test_timeout_fails_with_exit_code_1() -> None:
    result = run_demo("--consumers", "2", "--timeout", "0.001", "--json")
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["completed"] == 0 and summary["errors"] == 2
    assert "did not complete within 0.001 s" in summary["error_messages"][0]
    assert "2 of 2 conversations did not complete" in result.stderr


def test_installed_script() -> None:
    proc = subprocess.run(
        [str(LPM), "demo", "--consumers", "2", "--json"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["completed"] == 2
    assert "Traceback" not in proc.stderr


def test_summary_percentiles_and_errors() -> None:
    done = Conversation(1, messages=7, latencies=[0.001 * i for i in range(1, 101)], closed=True, rated=True)
    unrated = Conversation(2, closed=True)
    summary = summarize([done, unrated], ["bot: boom"], 1.0)
    assert summary["completed"] == 1
    assert summary["latency_ms"] == {"p50": 50.0, "p99": 99.0, "max": 100.0}
    assert summary["error_messages"] == ["bot: boom", "conversation 2: not closed and rated"]
    assert summary["errors"] == 2
