"""What ``lpm demo`` shows: a live transcript, a progress bar, the summary table and JSON.

Reporters receive the demo's events (who said what, who did what) from the consumers and the
brand users; :func:`summarize` turns the per-conversation results into the ``--json`` object that
:func:`print_summary` also renders as a table.  Nothing here ever sees a token.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "ConversationResult",
    "ProgressReporter",
    "Reporter",
    "TranscriptReporter",
    "Who",
    "make_reporter",
    "print_summary",
    "summarize",
]

#: The speakers of the transcript.
Who = Literal["bot", "agent", "survey", "consumer", "emulator"]
JsonObject = dict[str, Any]
#: Error lines under the summary table; ``--json`` has them all.
MAX_ERRORS_SHOWN = 10


@dataclass
class ConversationResult:
    """What one consumer's conversation achieved; the summary is computed from these."""

    index: int
    conversation_id: str | None = None
    #: Content messages seen in the conversation (the consumer's and the brand's, every dialog).
    messages: int = 0
    #: Seconds from each consumer publish to the arrival of its answer.
    latencies: list[float] = field(default_factory=list)
    transferred: bool = False
    #: The consumer answered the post-conversation survey.
    surveyed: bool = False
    closed: bool = False
    error: str | None = None

    @property
    def completed(self) -> bool:
        """Transferred, surveyed and closed, without an error."""
        return self.transferred and self.surveyed and self.closed and self.error is None


class Reporter:
    """Where the demo's events go.  This base ignores them (``--json``); subclasses show them."""

    def say(self, who: Who, message: str, latency: float | None = None) -> None:
        """``who`` sent a text message (``latency``: seconds since the question, for answers)."""

    def act(self, who: Who, action: str) -> None:
        """``who`` did something other than talking (typing, reading, transferring, closing)."""

    def finished(self, result: ConversationResult) -> None:
        """A consumer is done, successfully or not."""

    def __enter__(self) -> Reporter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


class TranscriptReporter(Reporter):
    """The live transcript of a single conversation."""

    _STYLES: dict[Who, str] = {
        "bot": "bold magenta",
        "survey": "bold green",
        "agent": "bold yellow",
        "consumer": "bold cyan",
        "emulator": "bold",
    }

    def __init__(self, console: Console) -> None:
        self._console = console
        self._started = time.monotonic()

    def _line(self, who: Who, *parts: tuple[str, str]) -> None:
        from rich.text import Text

        # Text pieces, not markup: a message like "[b]" must be shown as it is.
        elapsed = time.monotonic() - self._started
        # soft_wrap: a long message stays one line when the output is piped.
        self._console.print(
            Text.assemble((f"{elapsed:7.3f}s ", "dim"), (f"{who:<9}", self._STYLES[who]), *parts),
            soft_wrap=True,
        )

    def say(self, who: Who, message: str, latency: float | None = None) -> None:
        """Print the message, with the answer's latency when known."""
        suffix = ("", "") if latency is None else (f"  ({latency * 1000:.1f} ms)", "green")
        self._line(who, ("» ", "dim"), (message, ""), suffix)

    def act(self, who: Who, action: str) -> None:
        """Print the action, dimmed."""
        self._line(who, (action, "italic dim"))

    def finished(self, result: ConversationResult) -> None:
        """Print why a conversation failed; a success shows in the summary."""
        if result.error:
            self._line("emulator", (f"conversation failed: {result.error}", "bold red"))


class ProgressReporter(Reporter):
    """A progress bar over the conversations, counting messages as they go."""

    def __init__(self, console: Console, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self._task = self._progress.add_task("conversations", total=total)
        self._messages = 0

    def say(self, who: Who, message: str, latency: float | None = None) -> None:
        """Count the message."""
        self._messages += 1
        self._progress.update(self._task, description=f"conversations ({self._messages} messages)")

    def finished(self, result: ConversationResult) -> None:
        """Advance the bar."""
        self._progress.advance(self._task)

    def __enter__(self) -> Reporter:
        self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()


def make_reporter(console: Console, consumers: int, as_json: bool) -> Reporter:
    """Silent for ``--json``, the transcript for one consumer, else a progress bar."""
    if as_json:
        return Reporter()
    if consumers == 1:
        return TranscriptReporter(console)
    return ProgressReporter(console, consumers)


def _percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (``None`` without samples): p99 of a few samples is their max."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def summarize(results: list[ConversationResult], brand_errors: list[str], duration: float) -> JsonObject:
    """The ``--json`` object: counts, answer latencies in ms, and every error message."""
    latencies = [latency for r in results for latency in r.latencies]
    errors = [f"conversation {r.index}: {r.error}" for r in results if r.error] + brand_errors
    for r in results:
        if r.error is None and not r.completed:
            steps = (("transferred", r.transferred), ("surveyed", r.surveyed), ("closed", r.closed))
            missing = [step for step, done in steps if not done]
            errors.append(f"conversation {r.index}: not {', '.join(missing)}")
    return {
        "consumers": len(results),
        "completed": sum(r.completed for r in results),
        "transferred": sum(r.transferred for r in results),
        "surveyed": sum(r.surveyed for r in results),
        "messages": sum(r.messages for r in results),
        "latency_ms": {
            "p50": _ms(_percentile(latencies, 50)),
            "p99": _ms(_percentile(latencies, 99)),
            "max": _ms(max(latencies, default=None)),
        },
        "errors": len(errors),
        "error_messages": errors,
        "duration_s": round(duration, 3),
    }


def print_summary(console: Console, summary: JsonObject) -> None:
    """The summary as a rich table, then one line per error."""
    from rich.table import Table
    from rich.text import Text

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} ms"

    table = Table(title="lpm demo", title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    ok = summary["completed"] == summary["consumers"] and summary["errors"] == 0
    table.add_row(
        "conversations completed",
        Text(f"{summary['completed']}/{summary['consumers']}", style="green" if ok else "red"),
    )
    table.add_row("transferred to a human", str(summary["transferred"]))
    table.add_row("surveys answered", str(summary["surveyed"]))
    table.add_row("messages", str(summary["messages"]))
    latency = summary["latency_ms"]
    table.add_row("answer latency p50", ms(latency["p50"]))
    table.add_row("answer latency p99", ms(latency["p99"]))
    table.add_row("errors", Text(str(summary["errors"]), style="green" if ok else "red"))
    table.add_row("duration", f"{summary['duration_s']:.2f} s")
    console.print(table)
    messages = summary["error_messages"]
    for message in messages[:MAX_ERRORS_SHOWN]:
        console.print(Text(f"✗ {message}", style="red"), soft_wrap=True)
    if len(messages) > MAX_ERRORS_SHOWN:
        more = len(messages) - MAX_ERRORS_SHOWN
        console.print(Text(f"… and {more} more (--json lists them all)", style="red"))
