"""``lpm demo``: a bot, a human agent and consumers, all on the SDK, through the embedded emulator."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lpm.cli import demo_cmd
from lpm.cli.demo_brand import AGENT_GREETING, BOT_GREETING, HANDOVER, SURVEY_QUESTION, SURVEY_THANKS
from lpm.cli.demo_consumer import SCRIPT, SURVEY_ANSWER
from lpm.cli.demo_report import ConversationResult, summarize
from lpm.cli.main import main

#: The installed console script, next to the interpreter running the tests.
LPM = Path(sys.executable).with_name("lpm")
#: Per conversation: the greeting, each scripted line and its answers, then the survey's
#: question, the consumer's answer and the thanks.
MESSAGES_PER_CONVERSATION = 1 + sum(1 + len(speakers) for _, speakers in SCRIPT) + 3
#: Credentials of the default world and anything token-like: never in the output.
SECRETS = ("bot-password", "agent-password", "survey-bot-password", "eyJ", "bearer")


def run_demo(*args: str) -> Result:
    return CliRunner().invoke(main, ["demo", *args])


def assert_no_secrets(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text.lower(), secret


def said(who: str, text: str) -> str:
    """The transcript line where ``who`` says ``text`` (the speaker is padded to 9 columns)."""
    return f"{who:<9}» {text}"


def test_one_consumer_prints_the_transcript() -> None:
    result = run_demo("--consumers", "1")
    assert result.exit_code == 0, result.output
    out = result.stdout
    # The whole story, in order.
    milestones = [
        "bot      logged in as bot, ONLINE on skill 11 (sales)",
        "agent    logged in as agent, ONLINE on skill 12 (support)",
        "survey   logged in as survey-bot, runs the survey of skill 12 (support); takes no rings",
        "bot      accepted the ring",
        said("bot", BOT_GREETING),
        said("consumer", SCRIPT[0][0]),
        said("consumer", SCRIPT[2][0]),
        said("bot", HANDOVER),
        "bot      transferred the conversation to skill 12 (support)",
        "agent    accepted the ring",
        said("agent", AGENT_GREETING),
        said("consumer", SCRIPT[-1][0]),
        "agent    closed the conversation",
        said("survey", SURVEY_QUESTION),
        said("consumer", SURVEY_ANSWER),
        f"survey   recorded the survey answer '{SURVEY_ANSWER}'",
        said("survey", SURVEY_THANKS),
        "emulator conversation closed",
    ]
    positions = [out.find(line) for line in milestones]
    assert -1 not in positions, [line for line, pos in zip(milestones, positions, strict=True) if pos < 0]
    assert positions == sorted(positions), out
    for line, _ in SCRIPT:
        assert said("consumer", line) in out
    assert "conversation moved to skill 12 (support)" in out
    assert "post-conversation survey opened" in out
    # Typing indicators and read receipts, both ways.
    assert "bot      is typing…" in out and "agent    is typing…" in out
    assert "bot      read it ✓✓" in out and "agent    read it ✓✓" in out
    assert "survey   read it ✓✓" in out  # the consumer's survey answer
    assert "consumer read it ✓✓" in out
    # Every consumer line (the script and the survey answer) got an answer with its latency.
    assert len(re.findall(r"\(\d+\.\d ms\)", out)) == len(SCRIPT) + 1
    assert "1/1" in out  # the summary table
    assert_no_secrets(result.output)


def test_several_consumers_json_summary() -> None:
    result = run_demo("--consumers", "5", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # one object and nothing else on stdout
    assert summary["consumers"] == summary["completed"] == 5
    assert summary["transferred"] == summary["surveyed"] == 5
    assert summary["errors"] == 0 and summary["error_messages"] == []
    assert summary["messages"] == 5 * MESSAGES_PER_CONVERSATION
    latency = summary["latency_ms"]
    assert 0 < latency["p50"] <= latency["p99"] <= latency["max"]
    assert summary["duration_s"] > 0
    assert_no_secrets(result.output)


def test_several_consumers_show_progress_and_summary() -> None:
    result = run_demo("--consumers", "3")
    assert result.exit_code == 0, result.output
    assert "3/3" in result.stdout
    assert "answer latency p99" in result.stdout
    assert BOT_GREETING not in result.stdout  # no transcript with more than one consumer


def test_timeout_fails_with_exit_code_1() -> None:
    result = run_demo("--consumers", "2", "--timeout", "0.001", "--json")
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["completed"] == 0
    assert "conversation 1: did not complete within 0.001 s" in summary["error_messages"]
    assert "2 of 2 conversations did not complete" in result.stderr
    assert "did not complete within 0.001 s" in result.stderr  # the reason


def test_refused_login_maps_to_the_sdk_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    # The emulator refuses the login: AuthenticationError, exit code 4, at once (no retries).
    monkeypatch.setattr(demo_cmd, "_password", lambda emu, username: "not-the-password")
    result = run_demo("--json")
    assert result.exit_code == 4, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("lpm: AuthenticationError: ")
    assert "not-the-password" not in result.output
    assert_no_secrets(result.output)


def test_installed_script() -> None:
    proc = subprocess.run(
        [str(LPM), "demo", "--consumers", "2", "--json"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["completed"] == 2
    assert proc.stderr == ""


def has_socket(pid: int) -> bool:
    """Whether process ``pid`` has a socket open (Linux /proc)."""
    fds = Path(f"/proc/{pid}/fd")
    try:
        return any(os.readlink(fd).startswith("socket:") for fd in fds.iterdir())
    except OSError:  # an fd closed while we looked
        return False


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux /proc")
def test_ctrl_c_exits_130() -> None:
    # Enough consumers to still be running when the signal arrives.
    proc = subprocess.Popen(
        [str(LPM), "demo", "--consumers", "1000", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Interrupt the demo itself, not the interpreter's start-up: wait for its first socket.
    deadline = time.monotonic() + 30
    while not has_socket(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert out == ""
    assert err.strip() == "lpm: interrupted"


def test_summary_percentiles_and_errors() -> None:
    done = ConversationResult(
        1,
        messages=MESSAGES_PER_CONVERSATION,
        latencies=[0.001 * i for i in range(1, 101)],
        transferred=True,
        surveyed=True,
        closed=True,
    )
    unfinished = ConversationResult(2, transferred=True)
    summary = summarize([done, unfinished], ["bot: boom"], 1.0)
    assert summary["completed"] == 1 and summary["transferred"] == 2 and summary["surveyed"] == 1
    assert summary["latency_ms"] == {"p50": 50.0, "p99": 99.0, "max": 100.0}
    assert summary["error_messages"] == ["bot: boom", "conversation 2: not surveyed, closed"]
    assert summary["errors"] == 2
