"""``lpm demo``: a bot, a human agent and N consumers, all on the SDK, through the embedded emulator.

The command starts :class:`lpm.emulator.app.Emulator` in-process (default world, plain HTTP, a
free port) and opens SDK connections to it (:func:`lpm.create_connection`):

* the **bot** (brand user ``bot``, sales), a scripted **human agent** (brand user ``agent``,
  support) and the **survey bot** of support (brand user ``survey-bot``), see
  :mod:`lpm.cli.demo_brand`;
* N **consumers** (:mod:`lpm.cli.demo_consumer`), concurrently: each says hi, asks for the
  opening hours, asks for a human and is transferred to support (skill 12), where the agent
  answers and closes; the platform then opens the post-conversation survey of skill 12, the
  survey bot asks for a rating, the consumer answers 5 and the survey bot closes the survey,
  ending the conversation.  Typing indicators and READ receipts travel both ways.

With one consumer the command prints a live transcript with each answer's latency (from the
consumer's publish to the answer's arrival); with more, a progress bar; then a summary table
(:mod:`lpm.cli.demo_report`).  ``--json`` prints one JSON summary object instead and nothing else
on stdout.

With ``--ui`` the emulator also serves its web UI (:mod:`lpm.emulator.ui`): once the consumers
are done, the summary and the page's URL are printed and the demo's world keeps running -- the
bot and the survey bot stay online, the scripted human agent leaves so the agent seat is yours --
until Ctrl-C (then the exit code is the demo's as below).

Exit codes: 0 when every conversation completed within ``--timeout``; 1 otherwise (the reason
goes to stderr); SDK errors outside a conversation (e.g. a refused login) map through
:func:`lpm.cli.common.exit_code_for`; 130 after Ctrl-C.  Tokens and JWTs are never printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
import webbrowser
from typing import TYPE_CHECKING, Any

import click

from lpm.cli import common
from lpm.cli.demo_brand import Bot, BrandUser, HumanAgent, SurveyBot, brand_connection
from lpm.cli.demo_consumer import run_consumer
from lpm.cli.demo_report import ConversationResult, Reporter, Who, make_reporter, print_summary, summarize

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import lpm
    from lpm.emulator.app import Emulator

DEFAULT_TIMEOUT = 30.0
#: Seconds the brand users have to log in and connect (``--timeout`` is the conversations').
BRAND_CONNECT_TIMEOUT = 15.0
BOT_USERNAME = "bot"
AGENT_USERNAME = "agent"
SURVEY_BOT_USERNAME = "survey-bot"


def _password(emu: Emulator, username: str) -> str:
    """The default world's password of ``username`` (never printed)."""
    for user in emu.describe()["users"]:
        if user["username"] == username:
            return str(user["password"])
    raise click.ClickException(f"the emulator's world has no user {username!r}")


async def _run_consumers(
    common_options: dict[str, Any], names: dict[str, Who], count: int, time_limit: float, reporter: Reporter
) -> list[ConversationResult]:
    results = [ConversationResult(i + 1) for i in range(count)]
    tasks = [
        asyncio.create_task(
            run_consumer(common_options, names, r, reporter, time_limit), name=f"lpm-demo-consumer-{r.index}"
        )
        for r in results
    ]
    try:
        _, pending = await asyncio.wait(tasks, timeout=time_limit)
    finally:
        # Also on Ctrl-C: every consumer closes its connection before the emulator stops.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for result, task in zip(results, tasks, strict=True):
        if task in pending and result.error is None:
            result.error = f"did not complete within {time_limit:g} s"
    return results


async def run_demo(
    consumers: int,
    time_limit: float,
    reporter: Reporter,
    *,
    ui: bool = False,
    after: Callable[[Emulator, list[BrandUser], dict[str, Any]], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """Run the whole demo against a fresh in-process emulator; return the summary.

    ``ui``: the emulator serves its web UI (the summary has its ``ui_url``); ``after`` is awaited
    with the emulator, the brand users and the summary before anything stops (``--ui`` waits
    there for Ctrl-C)."""
    from lpm.emulator.app import Emulator

    async with Emulator(port=0, tls=False, ui=ui) as emu, contextlib.AsyncExitStack() as stack:
        reporter.act("emulator", f"listening on {emu.base_url}, account {emu.account_id}")
        common_options: dict[str, Any] = {"account_id": emu.account_id, "csds_domain": emu.csds_domain}
        started = time.monotonic()
        brand: list[BrandUser] = []
        users: tuple[tuple[str, Callable[[lpm.BrandWebsocketConnection, Reporter], BrandUser]], ...] = (
            (BOT_USERNAME, Bot),
            (AGENT_USERNAME, HumanAgent),
            (SURVEY_BOT_USERNAME, SurveyBot),
        )
        for username, role in users:
            conn = brand_connection(username, _password(emu, username), common_options)
            user = role(conn, reporter)
            await common.open_connection(conn, BRAND_CONNECT_TIMEOUT)
            stack.push_async_callback(conn.close)
            await user.start()
            brand.append(user)
        # Consumers see brand users by their user ids: that is how the transcript names them.
        names: dict[str, Who] = {u.conn.user_id or "": u.name for u in brand}
        results = await _run_consumers(common_options, names, consumers, time_limit, reporter)
        duration = time.monotonic() - started
        # Taken before the brand connections close: handlers cut short by the close are no errors.
        brand_errors = [e for u in brand for e in u.errors]
        summary = summarize(results, brand_errors, duration)
        if emu.ui_url is not None:
            summary["ui_url"] = emu.ui_url
        if after is not None:
            await after(emu, brand, summary)
    return summary


@click.command("demo")
@click.option(
    "--consumers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Concurrent consumers; more than one shows a progress bar instead of the transcript.",
)
@common.json_option
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    metavar="S",
    help="Seconds every conversation has to complete.",
)
@click.option(
    "--ui",
    is_flag=True,
    default=False,
    help="Serve the emulator's web UI and keep the demo's world running with it until Ctrl-C.",
)
def demo(consumers: int, as_json: bool, timeout: float, ui: bool) -> None:
    """Chat with a bot and a human agent on a local emulator and show it live.

    Each consumer talks to the bot, is transferred to a human agent, and answers the
    post-conversation survey.  One consumer shows the transcript with each answer's latency;
    more show a progress bar.  Both end with a summary table (or, with --json, one JSON object).
    With --ui the world then stays up with the web UI (chat with the bot, take the agent's seat,
    inspect the frames) until Ctrl-C.
    """
    from rich.console import Console

    console = Console()
    shown = False

    def show(summary: dict[str, Any]) -> None:
        nonlocal shown
        shown = True
        if as_json:
            common.print_json(summary)
        else:
            print_summary(console, summary)

    with contextlib.ExitStack() as reporting:
        reporter = reporting.enter_context(make_reporter(console, consumers, as_json))

        async def keep_running(emu: Emulator, brand: list[BrandUser], summary: dict[str, Any]) -> None:
            reporting.close()  # the live transcript or progress bar is done
            show(summary)
            await _serve_ui(emu, brand, quiet=as_json)

        summary = common.run(
            run_demo(consumers, timeout, reporter, ui=ui, after=keep_running if ui else None)
        )
    if not shown:
        show(summary)
    failed = summary["consumers"] - summary["completed"]
    if failed:
        _fail(f"{failed} of {summary['consumers']} conversations did not complete", summary)
    if summary["errors"]:
        _fail(f"{summary['errors']} errors", summary)


async def _serve_ui(emu: Emulator, brand: list[BrandUser], *, quiet: bool) -> None:
    """Keep the demo's world up with its web UI until Ctrl-C (or SIGTERM)."""
    for user in brand:
        if isinstance(user, HumanAgent):
            # The agent seat is the person's now: the scripted agent leaves (and takes no rings).
            await user.conn.close()
    url = emu.ui_url
    if not quiet:
        click.echo(f"\nWeb UI: {url}")
        click.echo(
            "The bot (sales) and the survey bot are still online; log in as the agent in the Agent seat."
        )
        click.echo("Press Ctrl-C to stop.")
    if url and sys.stdout.isatty():
        with contextlib.suppress(Exception):
            webbrowser.open(url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)


def _fail(message: str, summary: dict[str, Any]) -> None:
    first = summary["error_messages"][0] if summary["error_messages"] else None
    click.echo(f"lpm demo: {message}" + (f" (first: {first})" if first else ""), err=True)
    raise SystemExit(common.EXIT_FAILED)
