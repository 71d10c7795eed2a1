"""``lpm chat``: the installed command as a subprocess, talking through the in-process emulator
to an agent played here with an SDK brand connection."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import struct
import sys
import time
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import lpm
from lpm.cli.console import describe_structured
from lpm.emulator.app import Emulator

#: The installed console script, next to the interpreter running the tests.
LPM = Path(sys.executable).with_name("lpm")
ACC = "12345678"
WAIT = 15.0

QUICK_REPLIES = {
    "type": "quickReplies",
    "itemsPerRow": 8,
    "replies": [
        {
            "type": "button",
            "title": "Yes",
            "click": {"actions": [{"type": "publishText", "text": "yes please"}]},
        },
        {"type": "button", "title": "No", "click": {"actions": [{"type": "publishText", "text": "no"}]}},
    ],
}
CARD = {
    "type": "vertical",
    "elements": [
        {"type": "text", "text": "Red shoe"},
        {"type": "image", "url": "https://example.com/shoe.png", "caption": "the shoe"},
        {
            "type": "button",
            "title": "Buy",
            "click": {"actions": [{"type": "link", "uri": "https://example.com/buy"}]},
        },
    ],
}


def tiny_png() -> bytes:
    """A valid 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


class ChatProcess:
    """``lpm chat`` with piped stdin/stdout; stdout is read line by line as the test goes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.events: list[dict[str, Any]] = []
        self.stderr = b""
        self._stderr_task = asyncio.ensure_future(self._read_stderr())

    @classmethod
    async def start(cls, *args: str) -> ChatProcess:
        env = {k: v for k, v in os.environ.items() if k not in ("LPM_ACCOUNT", "LPM_CSDS_DOMAIN")}
        proc = await asyncio.create_subprocess_exec(
            str(LPM),
            "chat",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        return cls(proc)

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = await self.proc.stderr.read()

    async def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def _line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not raw:
            await asyncio.wait_for(self._stderr_task, timeout)
            raise AssertionError(f"lpm chat ended; stderr: {self.stderr.decode(errors='replace')}")
        line = raw.decode().rstrip("\n")
        self.lines.append(line)
        return line

    async def expect(self, check: Callable[[dict[str, Any]], bool], timeout: float = WAIT) -> dict[str, Any]:
        """The next JSON event passing ``check`` (the ones before it are kept in ``events``)."""
        async with asyncio.timeout(timeout):
            while True:
                event = json.loads(await self._line(timeout))
                self.events.append(event)
                if check(event):
                    return event

    async def expect_text(self, text: str, timeout: float = WAIT) -> str:
        """The next stdout line containing ``text`` (human-readable mode)."""
        async with asyncio.timeout(timeout):
            while True:
                line = await self._line(timeout)
                if text in line:
                    return line

    async def finish(self, *, close_stdin: bool = True, timeout: float = WAIT) -> int:
        """Close stdin (end of input) and return the exit code; the rest of stdout is kept."""
        if close_stdin and self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        assert self.proc.stdout is not None
        rest = await asyncio.wait_for(self.proc.stdout.read(), timeout)
        self.lines.extend(rest.decode().splitlines())
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await asyncio.wait_for(self._stderr_task, timeout)
        return code

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


@dataclass
class Agent:
    """The agent side: a brand connection, its routing subscription and every ring it saw."""

    conn: lpm.BrandWebsocketConnection
    routing: lpm.RoutingTaskSubscription
    rings: list[lpm.Ring] = field(default_factory=list)

    async def take(self, conversation_id: str) -> lpm.Conversation:
        """Accept the conversation's ring; the agent's view of it once the agent is assigned."""
        await until(lambda: any(r.conversation_id == conversation_id for r in self.rings))
        ring = next(r for r in self.rings if r.conversation_id == conversation_id)
        await ring.accept()
        await until(lambda: self.conn.get_conversation_by_id(conversation_id) is not None)
        view = self.conn.get_conversation_by_id(conversation_id)
        assert isinstance(view, lpm.Conversation)
        await until(lambda: view.assigned_agent is not None)
        return view


@contextlib.asynccontextmanager
async def online_agent(csds_domain: str, username: str = "agent") -> AsyncIterator[Agent]:
    """A brand user of the default world (``agent`` takes support, 12; ``bot`` sales, 11), ONLINE,
    keeping every ring (the chat's conversation may ring before a test waits for it)."""
    conn = lpm.create_connection(
        account_id=ACC,
        user_type=lpm.UserType.BRAND,
        csds_domain=csds_domain,
        auth_data={"username": username, "password": f"{username}-password"},
    )
    assert isinstance(conn, lpm.BrandWebsocketConnection)
    errors: list[BaseException] = []
    conn.on("error", errors.append)
    rings: list[lpm.Ring] = []
    # On the connection, before subscribing: a waiting conversation rings during the subscribe.
    conn.on("ring", rings.append)
    try:
        await conn.open()
        await conn.set_agent_state(lpm.AgentState.ONLINE)
        routing = await conn.create_routing_task_subscription()
        assert isinstance(routing, lpm.RoutingTaskSubscription)
        yield Agent(conn, routing, rings)
    finally:
        await conn.close()
    assert errors == []


@pytest.fixture
async def agent(emulator: Emulator) -> AsyncIterator[Agent]:
    async with online_agent(emulator.csds_domain) as side:
        yield side


@pytest.fixture
async def sales_bot(emulator: Emulator) -> AsyncIterator[Agent]:
    """Sales (11) is the bot's skill: it plays the brand side of the sales conversations."""
    async with online_agent(emulator.csds_domain, "bot") as side:
        yield side


@pytest.fixture
async def chat_process() -> AsyncIterator[list[ChatProcess]]:
    """Started chat processes, killed at the end if a test failed before they exited."""
    started: list[ChatProcess] = []
    yield started
    for process in started:
        process.kill()
        await process.proc.wait()


async def until(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    """Wait (polling the object model) until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_json_chat_with_an_agent_files_reconnect_close_and_csat(
    emulator: Emulator,
    sales_bot: Agent,
    http: aiohttp.ClientSession,
    chat_process: list[ChatProcess],
    tmp_path: Path,
) -> None:
    chat = await ChatProcess.start(
        "--account", ACC, "--csds-domain", emulator.csds_domain, "--skill", "11", "--json"
    )
    chat_process.append(chat)
    opened = await chat.expect(lambda e: e["event"] == "conversation")
    assert opened["state"] == "opened" and opened["skill_id"] == "11"
    cid = opened["conversation_id"]
    view = await sales_bot.take(cid)
    joined = await chat.expect(lambda e: e["event"] == "participant")
    assert (joined["action"], joined["role"]) == ("joined", "ASSIGNED_AGENT")

    # Typing, then a text message: shown, and read (a READ receipt comes back).
    await view.set_chat_state(lpm.ParticipantChatState.COMPOSING)
    typing = await chat.expect(lambda e: e["event"] == "typing")
    assert typing["typing"] is True and typing["from"] == "agent"
    seq = await view.send_message("Hello from the agent")
    message = await chat.expect(lambda e: e["event"] == "message")
    assert message["from"] == "agent" and message["text"] == ["Hello from the agent"]
    assert message["sequence"] == seq and message["conversation_id"] == cid
    sent = view.main_dialog.get_message(seq)
    assert sent is not None
    await until(sent.has_consumer_read)

    # Quick replies as numbered choices; "1" sends the first reply's text.
    await view.send_message("Shall we?", quick_replies=QUICK_REPLIES)
    choice = await chat.expect(lambda e: e["event"] == "message")
    assert choice["quick_replies"] == ["Yes", "No"]
    assert choice["text"] == ["Shall we?", "1) Yes", "2) No"]
    from_consumer = asyncio.ensure_future(view.wait_for("message", timeout=WAIT))
    await chat.send("1")
    assert (await from_consumer).body == "yes please"
    picked = await chat.expect(lambda e: e["event"] == "sent")
    assert (picked["kind"], picked["text"]) == ("quick_reply", "yes please")

    # Structured content flattened to readable lines.
    await view.send_rich_text(CARD)
    card = await chat.expect(lambda e: e["event"] == "message")
    assert card["content_type"] == "RichContentEvent" and card["body"] == CARD
    assert card["text"] == describe_structured(CARD)
    assert "[button] Buy -> link https://example.com/buy" in card["text"]

    # A file: uploaded to storage, published, downloadable by the agent.
    png = tiny_png()
    (tmp_path / "dot.png").write_bytes(png)
    file_message = asyncio.ensure_future(view.wait_for("message", timeout=WAIT))
    await chat.send(f"/file {tmp_path / 'dot.png'} a dot")
    uploaded = await file_message
    assert uploaded.content_type == lpm.ContentType.HOSTED_FILE and uploaded.caption == "a dot"
    assert uploaded.file_type == "PNG" and uploaded.relative_path
    assert await view.download_file(uploaded.relative_path) == png
    sent_file = await chat.expect(lambda e: e["event"] == "sent")
    assert sent_file["kind"] == "file" and sent_file["size"] == len(png)

    # A failing command is reported and the chat goes on.
    await chat.send("/file /no/such/file.png")
    error = await chat.expect(lambda e: e["event"] == "error")
    assert error["command"] == "file" and "cannot read" in error["message"]

    # The consumer's socket is dropped: the loss and the reconnect are visible, the chat goes on.
    async with http.post(f"{emulator.base_url}/_emulator/sockets/drop", json={"dialect": "consumer"}) as resp:
        assert resp.status == 200 and (await resp.json())["dropped"] == 1
    lost = await chat.expect(lambda e: e["event"] == "connection")
    assert lost["state"] == "disconnected" and lost["code"] == 1006
    back = await chat.expect(lambda e: e["event"] == "connection" and e["state"] != "waiting")
    assert back["state"] == "reconnected"
    after = asyncio.ensure_future(view.wait_for("message", timeout=WAIT))
    await chat.send("still there?")
    assert (await after).body == "still there?"
    await view.send_message("Yes, still here")
    reply = await chat.expect(lambda e: e["event"] == "message")
    assert reply["text"] == ["Yes, still here"]

    # /close, then /csat 5.
    await chat.send("/close")
    closed = await chat.expect(lambda e: e["event"] == "conversation" and e["state"] == "closed")
    assert closed["close_reason"] == "CONSUMER"
    await until(lambda: view.stage == lpm.ConversationState.CLOSE)
    await chat.send("/csat 5")
    rated = await chat.expect(lambda e: e["event"] in ("csat", "error"))
    assert rated == {"event": "csat", "rate": 5, "conversation_id": cid}
    assert emulator.world.accounts[ACC].conversations[cid].csat["csatRate"] == 5

    await chat.send("/quit")
    assert await chat.expect(lambda e: e["event"] == "quit") == {"event": "quit", "reason": "quit"}
    assert await chat.finish(close_stdin=False) == 0
    assert "Traceback" not in chat.stderr.decode()
    # Never a JWT (they start with a base64 '{"').
    assert "eyJ" not in "\n".join(chat.lines) + chat.stderr.decode()


async def test_readable_output_and_end_of_input(
    emulator: Emulator, agent: Agent, http: aiohttp.ClientSession, chat_process: list[ChatProcess]
) -> None:
    chat = await ChatProcess.start("--account", ACC, "--csds-domain", emulator.csds_domain)
    chat_process.append(chat)
    line = await chat.expect_text("opened")
    cid = line.split("conversation ", 1)[1].split(" ", 1)[0]
    view = await agent.take(cid)
    assert "* agent joined" in await chat.expect_text("joined")
    await view.set_chat_state(lpm.ParticipantChatState.COMPOSING)
    assert await chat.expect_text("typing") == "agent is typing…"
    await view.send_message("Pick one", quick_replies=QUICK_REPLIES)
    assert await chat.expect_text("Pick one") == "agent » Pick one"
    assert [await chat._line(WAIT), await chat._line(WAIT)] == ["  1) Yes", "  2) No"]
    await view.send_rich_text(CARD)
    assert await chat.expect_text("Red shoe") == "agent » Red shoe"
    assert await chat._line(WAIT) == "  [image] the shoe (https://example.com/shoe.png)"
    async with http.post(f"{emulator.base_url}/_emulator/sockets/drop", json={"dialect": "consumer"}) as resp:
        assert resp.status == 200
    assert await chat.expect_text("connection lost") == "* connection lost (code 1006); reconnecting…"
    assert await chat.expect_text("reconnected") == "* reconnected; the conversation goes on"
    closed = asyncio.ensure_future(view.wait_for("close", timeout=WAIT))
    await view.close()
    await closed
    assert "conversation closed by agent" in await chat.expect_text("closed")
    assert await chat.finish() == 0  # end of input
    assert "end of input" in chat.lines[-1]
    assert "\x1b[" not in "\n".join(chat.lines)  # no colours when stdout is not a terminal


async def test_exit_codes(
    emulator: Emulator, http: aiohttp.ClientSession, chat_process: list[ChatProcess]
) -> None:
    # Usage error: a remote CSDS needs an account.
    usage = await ChatProcess.start("--csds-domain", emulator.csds_domain)
    chat_process.append(usage)
    assert await usage.finish() == 2
    # The IdP refuses the consumer: the connection cannot open (an SDK error, its exit code).
    async with http.post(
        f"{emulator.base_url}/_emulator/http",
        json={"target": "idp", "count": 5, "action": "refuse", "status": 401},
    ) as resp:
        assert resp.status == 200
    refused = await ChatProcess.start("--account", ACC, "--csds-domain", emulator.csds_domain, "--json")
    chat_process.append(refused)
    code = await refused.finish(close_stdin=False)
    assert code == 4, refused.stderr.decode()  # AuthenticationError
    assert refused.stderr.decode().count("IdP signup failed") == 1
    assert "lpm: " in refused.stderr.decode() and "Traceback" not in refused.stderr.decode()


async def test_authenticated_consumer_resumes_its_conversation(
    emulator: Emulator, sales_bot: Agent, chat_process: list[ChatProcess]
) -> None:
    connector = emulator.world.accounts[ACC].connectors["3002"]
    assert connector.private_key_file is not None and connector.issuer
    args = ["--account", ACC, "--csds-domain", emulator.csds_domain, "--json", "--skill", "11"]
    args += ["--auth", "jwt", "--connector-id", "3002", "--signing-key", str(connector.private_key_file)]
    args += ["--issuer", connector.issuer, "--customer-id", "customer-9"]
    first = await ChatProcess.start(*args)
    chat_process.append(first)
    opened = await first.expect(lambda e: e["event"] == "conversation")
    assert opened["state"] == "opened"
    cid = opened["conversation_id"]
    view = await sales_bot.take(cid)
    await view.send_message("Welcome!")
    await first.expect(lambda e: e["event"] == "message")
    question = asyncio.ensure_future(view.wait_for("message", timeout=WAIT))
    await first.send("my question")
    assert (await question).body == "my question"
    assert await first.finish() == 0

    # The same customer again: the open conversation is resumed with its history.
    second = await ChatProcess.start(*args)
    chat_process.append(second)
    resumed = await second.expect(lambda e: e["event"] == "conversation")
    assert (resumed["state"], resumed["conversation_id"]) == ("resumed", cid)
    joined = await second.expect(lambda e: e["event"] == "participant")
    assert joined["role"] == "ASSIGNED_AGENT"
    history = [await second.expect(lambda e: e["event"] == "message") for _ in range(2)]
    assert [(m["from"], m["text"]) for m in history] == [("agent", ["Welcome!"]), ("you", ["my question"])]
    assert await second.finish() == 0


async def test_embedded_emulator(chat_process: list[ChatProcess]) -> None:
    chat = await ChatProcess.start("--json", "--skill", "11")
    chat_process.append(chat)
    embedded = await chat.expect(lambda e: e["event"] == "emulator")
    assert embedded["account_id"] == ACC
    assert f"lpm agent --account {ACC} --csds-domain {embedded['csds_domain']}" in embedded["agent_command"]
    opened = await chat.expect(lambda e: e["event"] == "conversation")
    async with online_agent(embedded["csds_domain"], "bot") as agent:
        view = await agent.take(opened["conversation_id"])
        await view.send_message("hello from the embedded emulator")
        message = await chat.expect(lambda e: e["event"] == "message")
        assert message["text"] == ["hello from the embedded emulator"]
        assert await chat.finish() == 0


async def test_post_conversation_survey_dialog(
    emulator: Emulator, agent: Agent, chat_process: list[ChatProcess]
) -> None:
    # Skill 12 has a survey: the chat declares MULTI_DIALOG, so closing MAIN opens POST_SURVEY.
    chat = await ChatProcess.start(
        "--account", ACC, "--csds-domain", emulator.csds_domain, "--skill", "12", "--json"
    )
    chat_process.append(chat)
    opened = await chat.expect(lambda e: e["event"] == "conversation")
    view = await agent.take(opened["conversation_id"])
    await view.close()
    survey = await chat.expect(lambda e: e["event"] == "dialog")
    assert survey["dialog_type"] == "POST_SURVEY"
    await chat.send("5")
    sent = await chat.expect(lambda e: e["event"] == "sent")
    assert sent["sequence"] == 0
    conversation = emulator.world.accounts[ACC].conversations[opened["conversation_id"]]
    dialog = next(d for d in conversation.dialogs if d.dialog_id == survey["dialog_id"])
    assert dialog.next_seq == 1  # the answer went to the survey dialog, not to a new conversation
    assert [e["state"] for e in chat.events if e["event"] == "conversation"] == ["opened"]
    assert await chat.finish() == 0


async def test_stdin_that_is_not_a_pipe_ends_at_once(emulator: Emulator) -> None:
    # /dev/null cannot be watched by the event loop: the reader thread sees the end of input.
    proc = await asyncio.create_subprocess_exec(
        str(LPM),
        "chat",
        "--account",
        ACC,
        "--csds-domain",
        emulator.csds_domain,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), WAIT)
    assert proc.returncode == 0, err.decode()
    assert out.decode().splitlines()[-1] == "* end of input; bye"


@contextlib.asynccontextmanager
async def survey_bot(emulator: Emulator) -> AsyncIterator[lpm.BrandWebsocketConnection]:
    """The survey bot of skill 12 in the emulator's world, logged in."""
    account = emulator.spec.accounts[0]
    skill = next(s for s in account.skills if s.skill_id == "12")
    user = next(u for u in account.users if u.user_id == skill.survey_bot_user_id)
    conn = lpm.create_connection(
        account_id=ACC,
        user_type=lpm.UserType.BRAND,
        csds_domain=emulator.csds_domain,
        auth_data={"username": user.login_name, "password": user.password},
    )
    assert isinstance(conn, lpm.BrandWebsocketConnection)
    errors: list[BaseException] = []
    conn.on("error", errors.append)
    async with conn:
        yield conn
    assert errors == []


async def surveyed(
    emulator: Emulator, agent: Agent, bot: lpm.BrandWebsocketConnection, chat: ChatProcess
) -> tuple[str, lpm.Dialog]:
    """The chat's conversation on skill 12, taken and closed by the agent: the survey is open.
    Returns the conversation id and the survey bot's view of the survey dialog."""
    opened = await chat.expect(lambda e: e["event"] == "conversation")
    cid = opened["conversation_id"]
    view = await agent.take(cid)
    await view.close()
    survey = await chat.expect(lambda e: e["event"] == "dialog")
    assert survey["dialog_type"] == "POST_SURVEY"
    await until(lambda: (c := bot.get_conversation_by_id(cid)) is not None and c.open_dialog is not None)
    bot_view = bot.get_conversation_by_id(cid)
    assert bot_view is not None and bot_view.open_dialog is not None
    assert bot_view.open_dialog.dialog_id == survey["dialog_id"]
    return cid, bot_view.open_dialog


async def test_close_during_the_survey_and_the_survey_bot_is_a_bot(
    emulator: Emulator, agent: Agent, chat_process: list[ChatProcess]
) -> None:
    """Issue 12.6: the survey bot's messages are the bot's; /close while the survey is open ends
    it (it used to fail with "already closed" and leave the consumer in the survey)."""
    chat = await ChatProcess.start(
        "--account", ACC, "--csds-domain", emulator.csds_domain, "--skill", "12", "--json"
    )
    chat_process.append(chat)
    async with survey_bot(emulator) as bot:
        cid, survey = await surveyed(emulator, agent, bot, chat)
        await survey.send_message("How would you rate us, from 1 to 5?")
        question = await chat.expect(lambda e: e["event"] == "message")
        assert question["from"] == "bot" and question["dialog_id"] == survey.dialog_id

        await chat.send("/close")
        closed = await chat.expect(
            lambda e: e["event"] in ("error", "conversation") and e.get("state") != "closing"
        )
        assert closed["event"] == "conversation" and closed["state"] == "closed", closed
        assert emulator.world.accounts[ACC].conversations[cid].stage == "CLOSE"
    assert await chat.finish() == 0
    assert not [e for e in chat.events if e["event"] == "error"]
    assert "Traceback" not in chat.stderr.decode()


async def test_no_read_receipt_for_a_dialog_the_bot_closed(
    emulator: Emulator, agent: Agent, chat_process: list[ChatProcess]
) -> None:
    """Issue 12.6: a bot that answers and closes at once; the chat shows the answer and sends no
    READ receipt to the closed dialog (it used to warn "read receipt failed ... is closed")."""
    chat = await ChatProcess.start(
        "--account", ACC, "--csds-domain", emulator.csds_domain, "--skill", "12", "--json"
    )
    chat_process.append(chat)
    async with survey_bot(emulator) as bot:
        _cid, survey = await surveyed(emulator, agent, bot, chat)
        # Both requests on the wire at once: the close is applied before any receipt can be.
        await asyncio.gather(
            survey.send_message("Thank you, goodbye!"), survey.close(lpm.DialogCloseReason.AGENT, "done")
        )
        thanks = await chat.expect(lambda e: e["event"] == "message")
        assert thanks["text"] == ["Thank you, goodbye!"]
        await chat.expect(lambda e: e["event"] == "conversation" and e["state"] == "closed")
    assert await chat.finish() == 0
    stderr = chat.stderr.decode()
    assert "read receipt" not in stderr and "Traceback" not in stderr, stderr
