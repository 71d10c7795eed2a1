"""``lpm demo``: a bot and N consumers chatting through the embedded emulator.

The command starts :class:`lpm.emulator.app.Emulator` in-process (default world, plain HTTP, a
free port), then:

* a **bot** logs in on the brand API (protocol §2.1, §2.2), goes ONLINE, accepts the rings of its
  skill (sales, ``11``), greets each consumer once it is the conversation's ASSIGNED_AGENT,
  answers every consumer text (READ receipt, typing indicator, answer) and closes the conversation
  after the consumer said "bye" and read the goodbye;
* N **consumers** sign up at the IdP (§2.3), open the consumer socket (§2.4), request a
  conversation on that skill, chat through :data:`SCRIPT`, send READ receipts for the bot's
  messages, wait for the close and rate the conversation (CSAT 5).

Until the SDK's client layer exists, both sides speak the documented wire frames directly with
aiohttp (:class:`_UmsSocket`); a later issue rewrites this module on ``lpm.client``.

With one consumer the command prints a live transcript with each answer's latency (from the
consumer's publish to the answer's arrival); with more, a progress bar; then a summary table.
``--json`` prints one JSON summary object instead and nothing else on stdout.

Exit codes: 0 when every conversation was closed and rated within ``--timeout``; 1 otherwise
(the reason goes to stderr); 130 after Ctrl-C.  Tokens, JWTs and bearers are never printed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import click

if TYPE_CHECKING:
    import aiohttp
    from rich.console import Console

    from lpm.emulator.app import Emulator

#: What every consumer says, one line at a time, each after the bot's previous answer.
SCRIPT = ("hi", "what are your opening hours?", "bye")
GREETING = "Hello! I'm the demo bot. How can I help you today?"
#: The skill the consumers ask for: sales, the bot's skill in the default world.
BOT_SKILL = "11"
BOT_USERNAME = "bot"
DEFAULT_TIMEOUT = 30.0
#: node-agent-sdk's request timeout: a response slower than this is a failure.
REQUEST_TIMEOUT = 10.0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130

Who = Literal["bot", "consumer", "emulator"]
JsonObject = dict[str, Any]

_GOODBYE = re.compile(r"\bbye\b", re.IGNORECASE)
_CLOSE_FIELD = {"field": "ConversationStateField", "conversationState": "CLOSE"}
_CSAT_FIELD = {"field": "CSATRate", "csatRate": 5, "csatResolutionConfirmation": True, "status": "FILLED"}


class DemoError(Exception):
    """A step of the demo failed (an error response, a refused login, a closed socket)."""


# ---------------------------------------------------------------- the wire


class _UmsSocket:
    """One UMS WebSocket: matches responses to requests and queues notifications in order.

    A reader task owns the socket's inbound side, so a notification handler may send requests
    and await their responses without deadlocking the reader.
    """

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[JsonObject]] = {}
        # None marks the end of the stream: the socket closed.
        self._notifications: asyncio.Queue[JsonObject | None] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read(), name="lpm-demo-socket-reader")

    @classmethod
    async def connect(
        cls, http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
    ) -> _UmsSocket:
        """Open the WebSocket at ``url``."""
        import aiohttp

        # aiohttp's errors name the URL, and the brand URL holds the bearer: never show them.
        try:
            ws = await http.ws_connect(url, headers=headers)
        except aiohttp.WSServerHandshakeError as exc:
            raise DemoError(f"the WebSocket upgrade was refused with {exc.status}") from None
        except aiohttp.ClientError as exc:
            raise DemoError(f"cannot open the WebSocket ({type(exc).__name__})") from None
        return cls(ws)

    async def _read(self) -> None:
        import aiohttp

        try:
            async for msg in self._ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    continue
                frame = _parse(msg.data)
                if frame is None:
                    continue  # not a JSON object: nothing this demo could act on
                future = (
                    self._pending.pop(str(frame.get("reqId")), None) if frame.get("kind") == "resp" else None
                )
                if future is not None:
                    if not future.done():
                        future.set_result(frame)
                else:
                    self._notifications.put_nowait(frame)
        finally:
            # Whoever waits on this socket learns at once that it is gone.
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(DemoError("the socket closed"))
            self._notifications.put_nowait(None)

    async def request(self, type_: str, body: Any) -> Any:
        """Send a request and return its response body; an error code raises :class:`DemoError`."""
        req_id = str(next(self._ids))
        future: asyncio.Future[JsonObject] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = future
        try:
            await self._ws.send_json({"kind": "req", "id": req_id, "type": type_, "body": body})
            # Not asyncio.wait_for: on 3.11 it can swallow a cancellation that races with the
            # response, and a demo that ignores Ctrl-C hangs.
            async with asyncio.timeout(REQUEST_TIMEOUT):
                frame = await future
        except TimeoutError:
            raise DemoError(f"{type_}: no response within {REQUEST_TIMEOUT:g} s") from None
        finally:
            self._pending.pop(req_id, None)
        if frame.get("code", 500) >= 400:
            raise DemoError(f"{type_} failed with {frame.get('code')}: {frame.get('body')}")
        return frame.get("body")

    async def publish(self, conv_id: str, event: JsonObject, *, brand: bool) -> int:
        """Publish ``event`` in the conversation's MAIN dialog (its id is the conversation id)."""
        type_ = ".ams.ms.PublishEvent" if brand else "ms.PublishEvent"
        body = await self.request(type_, {"dialogId": conv_id, "conversationId": conv_id, "event": event})
        return int(body.get("sequence", 0)) if isinstance(body, dict) else 0

    async def notifications(self) -> AsyncIterator[JsonObject]:
        """Every notification in arrival order, until the socket closes."""
        while (frame := await self._notifications.get()) is not None:
            yield frame

    async def close(self) -> None:
        """Close the socket (a normal 1000 close) and stop the reader."""
        await self._ws.close()
        self._reader.cancel()
        # asyncio.wait, not ``await self._reader``: suppressing the reader's CancelledError
        # would also swallow a cancellation of the caller.
        await asyncio.wait([self._reader])


def _parse(data: str) -> JsonObject | None:
    try:
        frame = json.loads(data)
    except ValueError:
        return None
    return frame if isinstance(frame, dict) else None


def _text(message: str) -> JsonObject:
    return {"type": "ContentEvent", "contentType": "text/plain", "message": message}


def _read_receipt(sequence: int) -> JsonObject:
    return {"type": "AcceptStatusEvent", "status": "READ", "sequenceList": [sequence]}


async def _post_json(http: aiohttp.ClientSession, url: str, body: JsonObject | None = None) -> JsonObject:
    import aiohttp

    # The path names the endpoint; bodies and aiohttp's messages may hold credentials.
    endpoint = url.split("?")[0]
    try:
        async with http.post(url, json=body) as resp:
            if resp.status != 200:
                raise DemoError(f"POST {endpoint} answered {resp.status}")
            data: JsonObject = await resp.json()
    except aiohttp.ClientError as exc:
        raise DemoError(f"POST {endpoint} failed ({type(exc).__name__})") from None
    return data


# ---------------------------------------------------------------- reporting


@dataclass
class Conversation:
    """What one consumer achieved; the summary is computed from these."""

    index: int
    conv_id: str | None = None
    messages: int = 0
    latencies: list[float] = field(default_factory=list)
    closed: bool = False
    rated: bool = False
    error: str | None = None

    @property
    def completed(self) -> bool:
        """Closed and rated, without an error."""
        return self.closed and self.rated and self.error is None


class Reporter:
    """Where the demo's events go.  This base ignores them (``--json``); subclasses show them."""

    def say(self, who: Who, message: str, latency: float | None = None) -> None:
        """``who`` sent a text message (``latency``: seconds since the question, for answers)."""

    def act(self, who: Who, action: str) -> None:
        """``who`` did something other than talking (typing, reading, closing, rating)."""

    def finished(self, conversation: Conversation) -> None:
        """A consumer is done, successfully or not."""

    def __enter__(self) -> Reporter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


class TranscriptReporter(Reporter):
    """The live transcript of a single conversation."""

    _STYLES: dict[Who, str] = {"bot": "bold magenta", "consumer": "bold cyan", "emulator": "bold"}

    def __init__(self, console: Console) -> None:
        self._console = console
        self._started = time.monotonic()

    def _line(self, who: Who, *parts: tuple[str, str]) -> None:
        from rich.text import Text

        # Text pieces, not markup: a message like "[b]" must be shown as it is.
        elapsed = time.monotonic() - self._started
        self._console.print(
            Text.assemble((f"{elapsed:7.3f}s ", "dim"), (f"{who:<9}", self._STYLES[who]), *parts)
        )

    def say(self, who: Who, message: str, latency: float | None = None) -> None:
        """Print the message, with the answer's latency when known."""
        suffix = ("", "") if latency is None else (f"  ({latency * 1000:.1f} ms)", "green")
        self._line(who, ("» ", "dim"), (message, ""), suffix)

    def act(self, who: Who, action: str) -> None:
        """Print the action, dimmed."""
        self._line(who, (action, "italic dim"))

    def finished(self, conversation: Conversation) -> None:
        """Print why a conversation failed; a success shows in the summary."""
        if conversation.error:
            self._line("emulator", (f"conversation failed: {conversation.error}", "bold red"))


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

    def finished(self, conversation: Conversation) -> None:
        """Advance the bar."""
        self._progress.advance(self._task)

    def __enter__(self) -> Reporter:
        self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()


# ---------------------------------------------------------------- the bot


def _answer(text: str) -> str:
    """The bot's canned reply to a consumer's line."""
    lowered = text.lower()
    if _GOODBYE.search(text):
        return "Thanks for chatting with us. Goodbye!"
    if "hour" in lowered or "open" in lowered:
        return "We are open Monday to Friday, 9:00 to 18:00."
    if lowered.strip(" !.") in {"hi", "hello", "hey"}:
        return "Hi there! Ask me anything."
    return f"You said: {text}"


class Bot:
    """The brand side: accepts rings, greets, answers and closes on "bye" (protocol §4.2, §5.2).

    Every notification is handled in its own task, so a slow answer in one conversation does
    not hold up the others; failures are collected in :attr:`errors`, not raised.
    """

    def __init__(self, socket: _UmsSocket, old_id: str, reporter: Reporter) -> None:
        self._socket = socket
        #: ``{account}.{userId}``: how the brand API names this bot (e.g. ``originatorId``).
        self.old_id = old_id
        self._reporter = reporter
        self.errors: list[str] = []
        self._rings: set[str] = set()
        self._greeted: set[str] = set()
        #: Conversation id -> sequence of the goodbye whose READ receipt triggers the close.
        self._goodbyes: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._dispatcher: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, http: aiohttp.ClientSession, emu: Emulator, reporter: Reporter) -> Bot:
        """Log in with the world's bot credentials, go ONLINE and wait for rings."""
        acc = emu.account_id
        user = next((u for u in emu.describe()["users"] if u["username"] == BOT_USERNAME), None)
        if user is None:
            raise DemoError(f"the emulator's world has no user {BOT_USERNAME!r}")
        login = await _post_json(
            http,
            f"{emu.base_url}/api/account/{acc}/login?v=1.3",
            {"username": user["username"], "password": user["password"]},
        )
        url = f"{emu.ws_base_url}/ws_api/account/{acc}/messaging/brand/{login['bearer']}?v=2.1"
        bot = cls(await _UmsSocket.connect(http, url), f"{acc}.{login['config']['userId']}", reporter)
        try:
            await bot._subscribe()
        except BaseException:
            await bot.close()
            raise
        reporter.act("bot", f"logged in as {user['username']}, ONLINE on skill {BOT_SKILL}")
        return bot

    async def _subscribe(self) -> None:
        self._dispatcher = asyncio.create_task(self._dispatch(), name="lpm-demo-bot")
        await self._socket.request(".ams.routing.SetAgentState", {"availability": "ONLINE"})
        # Subscribed before the routing tasks, so no assignment can be missed: it is what
        # tells the bot when to greet.
        await self._socket.request(
            ".ams.aam.SubscribeExConversations", {"convState": ["OPEN"], "agentIds": [self.old_id]}
        )
        await self._socket.request(".ams.routing.SubscribeRoutingTasks", {"channelType": "MESSAGING"})

    async def _dispatch(self) -> None:
        handlers = {
            ".ams.routing.RoutingTaskNotification": self._on_routing_task,
            ".ams.aam.ExConversationChangeNotification": self._on_conversation_change,
            ".ams.ms.OnlineEventDistribution": self._on_event,
        }
        async for frame in self._socket.notifications():
            handler = handlers.get(frame.get("type", ""))
            if handler is not None:
                self._spawn(handler, frame.get("body") or {})

    def _spawn(self, handler: Callable[[JsonObject], Awaitable[None]], body: JsonObject) -> None:
        # The handler's coroutine is created inside the task: a task cancelled before it
        # starts then leaves no coroutine behind that was never awaited.
        task = asyncio.create_task(self._guarded(handler, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, handler: Callable[[JsonObject], Awaitable[None]], body: JsonObject) -> None:
        try:
            await handler(body)
        except Exception as exc:  # one failed conversation must not stop the bot
            self.errors.append(f"bot: {exc or type(exc).__name__}")

    async def _on_routing_task(self, body: JsonObject) -> None:
        for change in body.get("changes", []):
            for ring in change.get("result", {}).get("ringsDetails", []):
                # The same WAITING ring can show in several notifications; accept it once.
                if ring.get("ringState") == "WAITING" and ring["ringId"] not in self._rings:
                    self._rings.add(ring["ringId"])
                    await self._socket.request(
                        ".ams.routing.UpdateRingState", {"ringId": ring["ringId"], "ringState": "ACCEPTED"}
                    )
                    self._reporter.act("bot", "accepted the ring")

    async def _on_conversation_change(self, body: JsonObject) -> None:
        for change in body.get("changes", []):
            result = change.get("result", {})
            details = result.get("conversationDetails", {})
            conv_id = result.get("convId")
            assigned = details.get("participants", {}).get("ASSIGNED_AGENT", [])
            if (
                change.get("type") == "UPSERT"
                and details.get("state") == "OPEN"
                and self.old_id in assigned
                and conv_id not in self._greeted
            ):
                self._greeted.add(conv_id)
                await self._socket.publish(conv_id, _text(GREETING), brand=True)

    async def _on_event(self, body: JsonObject) -> None:
        # The body is one raw event; the bot sees its own events too.
        if body.get("originatorId") == self.old_id:
            return
        event = body.get("event", {})
        conv_id = body.get("conversationId") or body["dialogId"]
        if event.get("type") == "ContentEvent" and isinstance(event.get("message"), str):
            await self._answer(conv_id, body["sequence"], event["message"])
        elif (
            event.get("type") == "AcceptStatusEvent"
            and event.get("status") == "READ"
            # Closing before the consumer read the goodbye would make its READ receipt a
            # publish to a closed dialog, which is refused.
            and self._goodbyes.get(conv_id) in event.get("sequenceList", [])
        ):
            del self._goodbyes[conv_id]
            await self._socket.request(
                ".ams.cm.UpdateConversationField",
                {"conversationId": conv_id, "conversationField": [_CLOSE_FIELD]},
            )

    async def _answer(self, conv_id: str, sequence: int, text: str) -> None:
        await self._socket.publish(conv_id, _read_receipt(sequence), brand=True)
        await self._socket.publish(conv_id, {"type": "ChatStateEvent", "chatState": "COMPOSING"}, brand=True)
        answered = await self._socket.publish(conv_id, _text(_answer(text)), brand=True)
        if _GOODBYE.search(text):
            self._goodbyes[conv_id] = answered

    async def close(self) -> None:
        """Stop handling notifications and close the socket."""
        pending = [t for t in (self._dispatcher, *self._tasks) if t is not None]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self._socket.close()


# ---------------------------------------------------------------- a consumer


class Consumer:
    """One consumer: a conversation on the bot's skill, :data:`SCRIPT`, the close, a CSAT rating.

    A dispatcher task handles notifications (shows the bot's messages, typing and receipts,
    sends READ receipts, notices the close) while :meth:`_converse` drives the script.
    """

    def __init__(
        self, socket: _UmsSocket, consumer_id: str, result: Conversation, reporter: Reporter
    ) -> None:
        self._socket = socket
        #: The JWT's ``sub``: the ``originatorId`` of this consumer's own events.
        self._me = consumer_id
        self._result = result
        self._reporter = reporter
        self._answers: asyncio.Queue[None] = asyncio.Queue()
        self._closed = asyncio.Event()
        #: Loop time of the last line sent and not answered yet.
        self._asked_at: float | None = None

    @classmethod
    async def run(
        cls, http: aiohttp.ClientSession, emu: Emulator, result: Conversation, reporter: Reporter
    ) -> None:
        """Sign up, connect and go through the whole conversation; raises on failure."""
        import jwt

        acc = emu.account_id
        token = (await _post_json(http, f"{emu.base_url}/api/account/{acc}/signup"))["jwt"]
        subject = jwt.decode(token, options={"verify_signature": False})["sub"]
        socket = await _UmsSocket.connect(
            http,
            f"{emu.ws_base_url}/ws_api/account/{acc}/messaging/consumer?v=3",
            headers={"Authorization": f"jwt {token}"},
        )
        try:
            await cls(socket, subject, result, reporter)._run()
        finally:
            await socket.close()

    async def _run(self) -> None:
        dispatcher = asyncio.create_task(self._dispatch(), name="lpm-demo-consumer-events")
        converse = asyncio.create_task(self._converse(), name="lpm-demo-script")
        try:
            # The dispatcher only ends early when the socket closes or a receipt fails.
            done, _ = await asyncio.wait({dispatcher, converse}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
            if converse not in done:
                raise DemoError("the socket closed before the conversation completed")
        finally:
            for task in (dispatcher, converse):
                task.cancel()
            await asyncio.gather(dispatcher, converse, return_exceptions=True)

    async def _converse(self) -> None:
        await self._socket.request("cqm.SubscribeExConversations", {"convState": ["OPEN", "CLOSE"]})
        body = await self._socket.request("cm.ConsumerRequestConversation", {"skillId": BOT_SKILL})
        conv_id: str = body["conversationId"]
        self._result.conv_id = conv_id
        self._reporter.act("consumer", f"opened conversation {conv_id[:8]}… on skill {BOT_SKILL}")
        await self._socket.request("ms.SubscribeMessagingEvents", {"dialogId": conv_id})
        await self._answers.get()  # the greeting
        for line in SCRIPT:
            self._asked_at = asyncio.get_running_loop().time()
            self._reporter.say("consumer", line)
            await self._socket.publish(conv_id, _text(line), brand=False)
            self._result.messages += 1
            await self._answers.get()
        await self._closed.wait()
        await self._socket.request(
            "cm.UpdateConversationField", {"conversationId": conv_id, "conversationField": [_CSAT_FIELD]}
        )
        self._result.rated = True
        self._reporter.act("consumer", "rated the conversation ★★★★★ (5/5)")

    async def _dispatch(self) -> None:
        async for frame in self._socket.notifications():
            body = frame.get("body") or {}
            if frame.get("type") == "ms.MessagingEventNotification":
                for change in body.get("changes", []):
                    await self._on_event(change)
            elif frame.get("type") == "cqm.ExConversationChangeNotification":
                self._on_conversation_change(body)

    async def _on_event(self, change: JsonObject) -> None:
        if change.get("originatorId") == self._me:
            return
        event = change.get("event", {})
        kind = event.get("type")
        if kind == "ContentEvent":
            await self._on_message(change["dialogId"], change["sequence"], str(event.get("message")))
        elif kind == "ChatStateEvent" and event.get("chatState") == "COMPOSING":
            self._reporter.act("bot", "is typing…")
        elif kind == "AcceptStatusEvent" and event.get("status") == "READ":
            self._reporter.act("bot", "read it ✓✓")

    async def _on_message(self, dialog_id: str, sequence: int, message: str) -> None:
        latency = None
        if self._asked_at is not None:
            latency = asyncio.get_running_loop().time() - self._asked_at
            self._asked_at = None
            self._result.latencies.append(latency)
        self._result.messages += 1
        self._reporter.say("bot", message, latency)
        await self._socket.publish(dialog_id, _read_receipt(sequence), brand=False)
        self._reporter.act("consumer", "read it ✓✓")
        # Released only now, so the next line follows the receipt (and the transcript shows it so).
        self._answers.put_nowait(None)

    def _on_conversation_change(self, body: JsonObject) -> None:
        for change in body.get("changes", []):
            result = change.get("result", {})
            details = result.get("conversationDetails", {})
            if (
                result.get("convId") == self._result.conv_id
                and details.get("state") == "CLOSE"
                and not self._closed.is_set()
            ):
                self._result.closed = True
                self._closed.set()
                self._reporter.act("emulator", f"conversation closed by {details.get('closeReason', '?')}")


# ---------------------------------------------------------------- the run


async def _consume(
    http: aiohttp.ClientSession, emu: Emulator, conversation: Conversation, reporter: Reporter
) -> None:
    try:
        await Consumer.run(http, emu, conversation, reporter)
    except Exception as exc:  # counted and reported; the other consumers go on
        conversation.error = str(exc) or type(exc).__name__
    reporter.finished(conversation)


async def _run_consumers(
    http: aiohttp.ClientSession, emu: Emulator, count: int, time_limit: float, reporter: Reporter
) -> list[Conversation]:
    conversations = [Conversation(i + 1) for i in range(count)]
    tasks = [
        asyncio.create_task(_consume(http, emu, c, reporter), name=f"lpm-demo-consumer-{c.index}")
        for c in conversations
    ]
    try:
        _, pending = await asyncio.wait(tasks, timeout=time_limit)
    finally:
        # Also on Ctrl-C: every consumer closes its socket before the emulator stops.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for conversation, task in zip(conversations, tasks, strict=True):
        if task in pending and conversation.error is None:
            conversation.error = f"did not complete within {time_limit:g} s"
    return conversations


async def run_demo(consumers: int, time_limit: float, reporter: Reporter) -> JsonObject:
    """Run the whole demo against a fresh in-process emulator; return the summary."""
    import aiohttp

    from lpm.emulator.app import Emulator

    async with Emulator(port=0, tls=False) as emu:
        reporter.act("emulator", f"listening on {emu.base_url}, account {emu.account_id}")
        # No connection limit: every consumer holds a WebSocket for the whole run, and
        # aiohttp's default pool (100) would make the 101st wait forever.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            started = time.monotonic()
            bot = await Bot.start(http, emu, reporter)
            try:
                conversations = await _run_consumers(http, emu, consumers, time_limit, reporter)
            finally:
                await bot.close()
            return summarize(conversations, bot.errors, time.monotonic() - started)


def _percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (``None`` without samples): p99 of a few samples is their max."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def summarize(conversations: list[Conversation], bot_errors: list[str], duration: float) -> JsonObject:
    """The ``--json`` object: counts, answer latencies in ms, and every error message."""
    latencies = [latency for c in conversations for latency in c.latencies]
    errors = [f"conversation {c.index}: {c.error}" for c in conversations if c.error] + bot_errors
    errors += [
        f"conversation {c.index}: not closed and rated"
        for c in conversations
        if not c.completed and not c.error
    ]
    return {
        "consumers": len(conversations),
        "completed": sum(c.completed for c in conversations),
        "messages": sum(c.messages for c in conversations),
        "latency_ms": {
            "p50": _ms(_percentile(latencies, 50)),
            "p99": _ms(_percentile(latencies, 99)),
            "max": _ms(max(latencies, default=None)),
        },
        "errors": len(errors),
        "error_messages": errors,
        "duration_s": round(duration, 3),
    }


# ---------------------------------------------------------------- the command


def _print_summary(console: Console, summary: JsonObject) -> None:
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
    table.add_row("messages", str(summary["messages"]))
    latency = summary["latency_ms"]
    table.add_row("answer latency p50", ms(latency["p50"]))
    table.add_row("answer latency p99", ms(latency["p99"]))
    table.add_row("errors", Text(str(summary["errors"]), style="green" if ok else "red"))
    table.add_row("duration", f"{summary['duration_s']:.2f} s")
    console.print(table)
    for message in summary["error_messages"]:
        console.print(Text(f"✗ {message}", style="red"))


def _make_reporter(console: Console, consumers: int, as_json: bool) -> Reporter:
    if as_json:
        return Reporter()
    if consumers == 1:
        return TranscriptReporter(console)
    return ProgressReporter(console, consumers)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"lpm demo: {message}", err=True)
    raise SystemExit(code)


@click.command("demo")
@click.option(
    "--consumers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Concurrent consumers; more than one shows a progress bar instead of the transcript.",
)
@click.option("--json", "as_json", is_flag=True, default=False, help="Print one JSON summary object.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    metavar="S",
    help="Seconds every conversation has to be closed and rated.",
)
def demo(consumers: int, as_json: bool, timeout: float) -> None:
    """Chat with a bot on a local emulator and show it live.

    One consumer shows the transcript with each answer's latency; more show a progress bar.
    Both end with a summary table (or, with --json, one JSON object).
    """
    try:
        # The imports are inside too: Ctrl-C while they load is still a clean interruption.
        from rich.console import Console

        console = Console()
        reporter = _make_reporter(console, consumers, as_json)
        with reporter:
            summary = asyncio.run(run_demo(consumers, timeout, reporter))
    except KeyboardInterrupt:
        _fail("interrupted", EXIT_INTERRUPTED)
    except (DemoError, OSError) as exc:
        _fail(f"error: {exc}", EXIT_FAILED)
    if as_json:
        click.echo(json.dumps(summary))
    else:
        _print_summary(console, summary)
    failed = summary["consumers"] - summary["completed"]
    if failed:
        _fail(f"{failed} of {summary['consumers']} conversations did not complete", EXIT_FAILED)
    if summary["errors"]:
        _fail(f"{summary['errors']} errors (see the summary)", EXIT_FAILED)
