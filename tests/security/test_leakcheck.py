"""The secret-leak check itself: it knows the secrets the emulator issues and finds them in logs."""

from __future__ import annotations

import inspect
import logging
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from lpm.emulator.app import Emulator
from lpm.emulator.world_errors import WorldError
from lpm.errors import AuthenticationError
from tests.helpers import login, signup
from tests.security import leakcheck
from tests.security.leakcheck import LeakCheck


def test_findings_cover_static_issued_and_unknown_secrets() -> None:
    check = LeakCheck()
    bearer = "a" * 32 + "b" * 32
    check.add_issued(bearer)
    check.add_issued("c" * 32)
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4eXoifQ.c2lnbmF0dXJl"
    check.add_issued(jwt)
    kinds = {kind for _, kind in check.findings(f"pw agent-password bearer {bearer} csrf {'c' * 32} {jwt}")}
    assert kinds == {"password of user agent", "agent bearer, csrf or session id", "issued JWT"}
    other = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJvdGhlciJ9."
    assert check.findings(f"token={other}") == [(other, "JWT")]
    assert check.findings("lpm-emulator-app-secret") == [
        ("lpm-emulator-app-secret", "client secret of app lpm-emulator-app")
    ]
    assert check.findings("conversation 0f3c2a7e-2f7a-4b9e-9c36-0d6b1b8e9a11 closed") == []


def test_the_report_never_repeats_the_secret() -> None:
    check = LeakCheck()
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4eXoifQ.c2lnbmF0dXJl"
    check.check(f"refused {jwt} and bot-password", "log test")
    report = "\n".join(check.report_lines())
    assert len(check.leaks) == 2
    assert jwt not in report and "bot-password" not in report
    assert "<password of user bot>" in report and "<JWT>" in report


def test_log_handler_and_error_hook_find_leaks() -> None:
    check = LeakCheck()
    handler = leakcheck._CaptureHandler(check)
    logger = logging.getLogger("tests.security.leakcheck-probe")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug("logging in with %s", "agent-password")
        try:
            raise ValueError("bot-app-secret")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    assert [leak.source for leak in check.leaks] == [
        "log tests.security.leakcheck-probe:DEBUG",
        "log tests.security.leakcheck-probe:ERROR",
    ]

    class Probe(Exception):
        def __init__(self, message: str) -> None:
            super().__init__(message)

    undo = leakcheck._wrap_init(Probe, check, "exception")
    try:
        assert str(Probe("secret agent-app-secret")) == "secret agent-app-secret"
    finally:
        undo()
    assert check.leaks[-1].source == "exception Probe"
    Probe("agent-password")  # unhooked again
    assert len(check.leaks) == 3


async def test_the_run_records_what_the_emulator_issues(
    request: pytest.FixtureRequest, emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    check = leakcheck.active(request.config)
    if check is None:
        pytest.skip("the leak check is off (LPM_LEAKCHECK=0)")
    body = await login(http, emulator)
    jwt = await signup(http, emulator)
    assert {body["bearer"], body["csrf"], jwt} <= check.issued
    # SDK errors are checked as they are built, even when the caller catches them.
    before = check.checked
    error = AuthenticationError("token refused")
    assert check.checked == before + 1 and str(error) == "token refused"
    assert logging.getLogger("lpm").isEnabledFor(logging.DEBUG)
    # The hooked constructors still look like themselves.
    assert str(inspect.signature(WorldError)) == "(message: 'str', *, status: 'int | None' = None) -> 'None'"
    assert WorldError("refused", status=403).status == 403


def test_a_leak_fails_the_session(tmp_path: Path) -> None:
    """End to end: a run whose tests pass but log a password exits 1 and names the leak, redacted."""
    probe = tmp_path / "test_probe.py"
    probe.write_text(
        "import logging\n\n"
        "def test_logs_a_password() -> None:\n"
        "    logging.getLogger('lpm.probe').debug('logging in with %s', 'agent-' + 'password')\n"
    )
    env = {**os.environ, "LPM_LEAKCHECK": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", str(probe)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 passed" in result.stdout and "secret leaks" in result.stdout
    assert "test_logs_a_password [log lpm.probe:DEBUG] password of user agent" in result.stdout
    assert "agent-password" not in result.stdout
