"""``lpm agent`` as a real subprocess with stdin/stdout pipes, against the in-process emulator.

The test drives consumers with the SDK's consumer connection and the agent console with typed
lines, and checks both sides: what the console prints, and what the consumers receive.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

import lpm
from lpm.cli.common import exit_code_for
from lpm.emulator.app import Emulator
from lpm.errors import AuthenticationError

LPM = [sys.executable, "-m", "lpm.cli.main"]
ACCOUNT = "12345678"
PASSWORD = "agent-password"
#: Generous: a subprocess on a shared, busy machine; only reached on failure.
TIMEOUT = 20.0

Event = dict[str, Any]


class AgentProcess:
    """A running ``lpm agent``: write lines, read what it prints (JSON events or text lines)."""

    def __init__(self, proc: asyncio.subprocess.Process, as_json: bool) -> None:
        self.proc = proc
        self.as_json = as_json
        #: Everything printed so far (parsed events in JSON mode, text lines otherwise).
        self.seen: list[Any] = []

    async def send(self, *lines: str) -> None:
        assert self.proc.stdin is not None
        for line in lines:
            self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def expect(self, check: Callable[[Any], bool], what: str, timeout: float = TIMEOUT) -> Any:
        """The next output item passing ``check`` (earlier ones are skipped, and kept in ``seen``)."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                raw = await asyncio.wait_for(self.proc.stdout.readline(), max(remaining, 0.01))
            except TimeoutError:
                raise AssertionError(f"no {what} within {timeout} s; seen: {self.seen}") from None
            if not raw:
                raise AssertionError(f"lpm agent ended before {what}; seen: {self.seen}")
            text = raw.decode().rstrip("\n")
            item = json.loads(text) if self.as_json else text
            self.seen.append(item)
            if check(item):
                return item

    async def event(self, name: str, timeout: float = TIMEOUT, **fields: Any) -> Event:
        """The next JSON event ``name`` whose fields include ``fields``."""
        result: Event = await self.expect(
            lambda e: e["event"] == name and all(e.get(k) == v for k, v in fields.items()),
            f"{name} {fields}",
            timeout,
        )
        return result

    async def line(self, fragment: str, timeout: float = TIMEOUT) -> str:
        """The next text line containing ``fragment``."""
        result: str = await self.expect(lambda text: fragment in text, repr(fragment), timeout)
        return result

    async def finish(self) -> tuple[int, str, str]:
        """Close stdin (end of input) and wait for the exit; returns (code, rest of stdout, stderr)."""
        assert self.proc.stdin is not None
        if not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        out, err = await asyncio.wait_for(self.proc.communicate(), TIMEOUT)
        assert self.proc.returncode is not None
        return self.proc.returncode, out.decode(), err.decode()


@asynccontextmanager
async def spawn_agent(
    *args: str, as_json: bool = True, password: str = PASSWORD
) -> AsyncIterator[AgentProcess]:
    """``lpm agent *args`` (password through LPM_PASSWORD), killed if the test leaves it running."""
    env = {**os.environ, "LPM_PASSWORD": password, "PYTHONIOENCODING": "utf-8"}
    proc = await asyncio.create_subprocess_exec(
        *LPM,
        "agent",
        *(["--json"] if as_json else []),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    agent = AgentProcess(proc, as_json)
    try:
        yield agent
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()


def lpm_agent(emu: Emulator, *args: str, as_json: bool = True, password: str = PASSWORD) -> Any:
    """``lpm agent`` logged in to ``emu`` as the default world's agent."""
    where = ("--csds-domain", emu.csds_domain, "--account", ACCOUNT, "--username", "agent")
    return spawn_agent(*where, *args, as_json=as_json, password=password)


@asynccontextmanager
async def consumer(emu: Emulator | str) -> AsyncIterator[lpm.ConsumerWebsocketConnection]:
    """An SDK consumer of ``emu`` (or of the CSDS domain given)."""
    csds_domain = emu if isinstance(emu, str) else emu.csds_domain
    conn = lpm.create_connection(account_id=ACCOUNT, user_type=lpm.UserType.CONSUMER, csds_domain=csds_domain)
    assert isinstance(conn, lpm.ConsumerWebsocketConnection)
    async with conn:
        yield conn


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {TIMEOUT} s")
        await asyncio.sleep(0.02)


async def wait_body(conversation: lpm.Conversation, body: str) -> lpm.Message:
    """The consumer's message ``body`` (already received or the next one)."""
    waiter = asyncio.ensure_future(conversation.wait_for("message", lambda m: m.body == body, TIMEOUT))
    for dialog in conversation.dialogs:
        for message in dialog.messages:
            if message.body == body:
                waiter.cancel()
                return message
    found: lpm.Message = await waiter
    return found


async def fault(emu: Emulator, path: str, body: dict[str, Any]) -> None:
    """Call the emulator's fault API."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{emu.base_url}/_emulator/{path}", json=body) as resp,
    ):
        assert resp.status == 200, await resp.text()


def bodies(conversation: lpm.Conversation) -> list[Any]:
    return [m.body for d in conversation.dialogs for m in d.messages]


async def test_rings_two_conversations_transfer_and_close(emulator: Emulator) -> None:
    async with (
        lpm_agent(emulator, "--state", "away") as agent,
        consumer(emulator) as first,
        consumer(emulator) as second,
    ):
        login = await agent.event("login")
        assert login["username"] == "agent" and login["agent_id"] == f"{ACCOUNT}.1001"
        await agent.event("state", state="AWAY")
        await agent.event("ready")
        await agent.send("/state online")
        await agent.event("state", state="ONLINE")

        # A ring for the first consumer's conversation; /rings lists it, /accept N takes it.
        one = await first.create_conversation(skill_id="12")
        ring = await agent.event("ring", conversation_id=one.conversation_id)
        assert ring["skill_id"] == "12"
        await agent.send("/rings")
        listed = await agent.event("rings")
        assert [r["ring"] for r in listed["rings"]] == [ring["ring"]]
        await agent.send(f"/accept {ring['ring']}")
        await agent.event("ring-accepted", ring=ring["ring"])
        c1 = await agent.event("conversation", conversation_id=one.conversation_id)
        assert c1["current"] is True and c1["skill_id"] == "12"

        # The consumer types, then writes: both show, prefixed with the conversation number;
        # the console marks the message READ.
        await one.set_chat_state(lpm.ParticipantChatState.COMPOSING)
        await agent.event("typing", conversation=c1["conversation"], state="COMPOSING")
        await one.send_message("hello from one")
        shown = await agent.event("message", conversation=c1["conversation"], body="hello from one")
        assert shown["from"] == "consumer"
        sent = await wait_body(one, "hello from one")
        await until(sent.has_assigned_agent_read, "the READ receipt")

        # A plain line goes to the current conversation.
        await agent.send("hi one")
        reply = await wait_body(one, "hi one")
        assert reply.participant.role == lpm.ParticipantRole.ASSIGNED_AGENT

        # A second conversation: /accept without a number takes the only waiting ring; the
        # current conversation stays the first one.
        two = await second.create_conversation(skill_id="12")
        await agent.event("ring", conversation_id=two.conversation_id)
        await agent.send("/accept")
        c2 = await agent.event("conversation", conversation_id=two.conversation_id)
        assert c2["current"] is False and c2["conversation"] != c1["conversation"]
        await two.send_message("hello from two")
        await agent.event("message", conversation=c2["conversation"], body="hello from two")
        await agent.send("still one")
        await wait_body(one, "still one")

        await agent.send(f"/switch {c2['conversation']}")
        await agent.event("switched", conversation=c2["conversation"])
        await agent.send("hi two")
        await wait_body(two, "hi two")
        assert "hi two" not in bodies(one) and "still one" not in bodies(two)

        await agent.send("/list")
        conversations = (await agent.event("list"))["conversations"]
        assert {c["conversation_id"]: c["current"] for c in conversations} == {
            one.conversation_id: False,
            two.conversation_id: True,
        }

        # Transfer the second conversation to skill 11 (sales): the consumer sees the new skill.
        await agent.send("/transfer skill 11")
        await agent.event("transferred", conversation=c2["conversation"], skill_id="11")
        await until(lambda: two.skill_id == "11", "the consumer seeing skill 11")

        # Close the first one: the consumer sees it closed.
        await agent.send(f"/switch {c1['conversation']}", "/close")
        await agent.event("closed", conversation=c1["conversation"])
        await until(lambda: one.stage == lpm.ConversationState.CLOSE, "the consumer seeing the close")

        await agent.send("/quit")
        await agent.event("quit")
        code, rest, err = await agent.finish()
        assert code == 0, err
        assert "Traceback" not in err
        for line in rest.splitlines():  # every line of a --json run is one JSON object
            assert isinstance(json.loads(line), dict)


async def test_text_console_reconnect_and_end_of_input(emulator: Emulator) -> None:
    async with lpm_agent(emulator, as_json=False) as agent, consumer(emulator) as conn:
        await agent.line("logged in as agent")
        await agent.line("state ONLINE")
        conversation = await conn.create_conversation(skill_id="12")
        await conversation.send_message("before the agent")
        ring = await agent.line(f"conversation {conversation.conversation_id[:8]} on skill 12")
        assert ring.startswith("ring 1:") and "/accept 1" in ring
        # The ring expires unanswered; routing rings again once the agent is available again.
        await fault(emulator, "rings/expire", {})
        await agent.line("ring 1 expired")
        await agent.send("/state away", "/rings", "/state online")
        await agent.line("no rings waiting")
        ring = await agent.line(f"conversation {conversation.conversation_id[:8]} on skill 12")
        assert ring.startswith("ring 2:")
        await agent.send("/accept 2")
        await agent.line("ring 2 accepted")
        await agent.line("[1] new conversation")
        # What the consumer said before the agent joined is shown when it joins.
        await agent.line("[1] consumer » before the agent")
        await agent.send("/bogus", "/switch 7", "/help")
        await agent.line("unknown command /bogus")
        await agent.line("usage: /switch N")
        await agent.line("/transfer skill ID")

        # The emulator drops the agent's socket: the console says so and reconnects.
        await fault(emulator, "sockets/close", {"code": 1011, "reason": "test", "user_id": "agent"})
        await agent.line("connection lost (code 1011)")
        await agent.line("reconnected")
        await conversation.send_message("after the reconnect")
        await agent.line("[1] consumer » after the reconnect")
        await agent.send("still here")
        await wait_body(conversation, "still here")

        # A transfer to an agent (the bot, user 2001): this agent leaves the conversation.
        me = conversation.assigned_agent
        assert me is not None
        await agent.send("/transfer agent 2001")
        await agent.line("[1] transferred to agent 2001; no current conversation")
        await until(
            lambda: conversation.main_dialog.get_participant(me.user_id) is None,
            "the agent leaving the consumer's conversation",
        )
        await agent.send("more text")
        await agent.line("error: no current conversation")

        # End of input ends the session like /quit.
        code, _, err = await agent.finish()
        assert code == 0, err
        assert "Traceback" not in err


async def test_wrong_password_exits_with_the_authentication_code(emulator: Emulator) -> None:
    wrong = "not-the-Pa55word"
    async with lpm_agent(emulator, "--password", wrong, password="") as agent:
        code, out, err = await agent.finish()
    assert code == exit_code_for(AuthenticationError("x")) == 4, err
    assert "AuthenticationError" in err
    assert wrong not in out and wrong not in err
    assert "Traceback" not in err


async def test_embedded_emulator() -> None:
    async with spawn_agent("--embedded", password="") as agent:
        embedded = await agent.event("embedded")
        assert embedded["account_id"] == ACCOUNT
        assert embedded["join"].startswith(
            f"lpm chat --csds-domain {embedded['csds_domain']} --account {ACCOUNT}"
        )
        assert embedded["join"].endswith("--skill 12")  # support: the agent's skill
        await agent.event("login", username="agent")
        await agent.event("state", state="ONLINE")
        # A consumer joins the console's own emulator.
        async with consumer(embedded["csds_domain"]) as conn:
            conversation = await conn.create_conversation(skill_id="12")
            await agent.event("ring", conversation_id=conversation.conversation_id)
            await agent.send("/accept")
            await agent.event("conversation", conversation_id=conversation.conversation_id)
            await agent.send("hello from the embedded agent")
            await wait_body(conversation, "hello from the embedded agent")
        await agent.send("/quit")
        code, _, err = await agent.finish()
        assert code == 0, err


@asynccontextmanager
async def survey_consumer(emu: Emulator) -> AsyncIterator[lpm.ConsumerWebsocketConnection]:
    """A consumer that takes part in post-conversation surveys (MULTI_DIALOG)."""
    conn = lpm.create_connection(
        account_id=ACCOUNT,
        user_type=lpm.UserType.CONSUMER,
        csds_domain=emu.csds_domain,
        client_properties={"features": [lpm.Features.MULTI_DIALOG]},
    )
    assert isinstance(conn, lpm.ConsumerWebsocketConnection)
    async with conn:
        yield conn


@asynccontextmanager
async def survey_bot(emu: Emulator) -> AsyncIterator[lpm.BrandWebsocketConnection]:
    """The survey bot of skill 12 in the emulator's world, logged in."""
    account = emu.spec.accounts[0]
    skill = next(s for s in account.skills if s.skill_id == "12")
    user = next(u for u in account.users if u.user_id == skill.survey_bot_user_id)
    conn = lpm.create_connection(
        account_id=ACCOUNT,
        user_type=lpm.UserType.BRAND,
        csds_domain=emu.csds_domain,
        auth_data={"username": user.login_name, "password": user.password},
    )
    assert isinstance(conn, lpm.BrandWebsocketConnection)
    async with conn:
        yield conn


async def test_a_conversation_closed_into_its_survey_leaves_the_console(emulator: Emulator) -> None:
    """Issue 12.6: closing a conversation whose skill has a survey keeps it OPEN on the platform
    (the agent becomes a READER of the survey).  For the console it is over: it never becomes
    current again, lines and /close do not go to it, and a restart does not bring it back."""
    question = "How would you rate us, from 1 to 5?"
    async with (
        lpm_agent(emulator) as agent,
        survey_consumer(emulator) as first,
        consumer(emulator) as second,
        survey_bot(emulator) as bot,
    ):
        await agent.event("ready")
        one = await first.create_conversation(skill_id="12")
        await agent.event("ring", conversation_id=one.conversation_id)
        await agent.send("/accept")
        c1 = await agent.event("conversation", conversation_id=one.conversation_id)
        assert c1["current"] is True
        await one.send_message("hi")
        await agent.event("message", conversation=c1["conversation"], body="hi")

        survey_opened = asyncio.ensure_future(one.wait_for("dialog", timeout=TIMEOUT))
        await agent.send("/close")
        await agent.event("closed", conversation=c1["conversation"])
        survey = await survey_opened
        assert survey.dialog_type == lpm.DialogType.POST_SURVEY
        assert one.stage == lpm.ConversationState.OPEN  # the survey keeps it open
        await until(
            lambda: (
                (c := bot.get_conversation_by_id(one.conversation_id)) is not None and bool(c.open_dialog)
            ),
            "the survey bot seeing the survey",
        )
        bot_view = bot.get_conversation_by_id(one.conversation_id)
        assert bot_view is not None
        await bot_view.send_message(question)
        await wait_body(one, question)

        # A ring on the same socket after the survey's notifications: once it shows, the console
        # has handled them.
        two = await second.create_conversation(skill_id="12")
        await agent.event("ring", conversation_id=two.conversation_id)
        await agent.send("typed after the close", "/close", "/list")
        not_sent = await agent.event("error")
        assert "no current conversation" in not_sent["message"], not_sent
        not_closed = await agent.event("error")
        assert "no current conversation" in not_closed["message"], not_closed
        listed = await agent.event("list")
        assert listed["conversations"] == [] and listed["current"] is None
        assert "typed after the close" not in bodies(one)
        # Taking the second conversation: the first one is not current again.
        await agent.send("/accept")
        c2 = await agent.event("conversation", conversation_id=two.conversation_id)
        assert c2["current"] is True
        await agent.send("/quit")
        await agent.event("quit")
        code, _, err = await agent.finish()
        assert code == 0, err
        shown = [e for e in agent.seen if e.get("conversation_id") == one.conversation_id]
        assert [e["event"] for e in shown] == ["ring", "ring-accepted", "conversation", "message", "closed"]
        assert not any(e.get("body") == question for e in agent.seen)

        # A restart shows the conversation the agent is in, not the one in its survey.
        async with lpm_agent(emulator, "--state", "none") as again:
            await again.event("conversation", conversation_id=two.conversation_id)
            await again.send("/list")
            listed = await again.event("list")
            assert [c["conversation_id"] for c in listed["conversations"]] == [two.conversation_id]
            assert all(c["consumer_id"] for c in listed["conversations"])
            await again.send("/quit")
            await again.event("quit")
            code, _, err = await again.finish()
            assert code == 0, err
            assert not any(e.get("conversation_id") == one.conversation_id for e in again.seen)


async def test_a_state_set_by_another_session_is_shown(emulator: Emulator) -> None:
    """Issue 12.6: the agent's state is the platform's; a change made elsewhere is shown."""
    async with lpm_agent(emulator) as agent:
        await agent.event("state", state="ONLINE")
        await agent.event("ready")
        other = lpm.create_connection(
            account_id=ACCOUNT,
            user_type=lpm.UserType.BRAND,
            csds_domain=emulator.csds_domain,
            auth_data={"username": "agent", "password": PASSWORD},
        )
        assert isinstance(other, lpm.BrandWebsocketConnection)
        async with other:
            await other.set_agent_state(lpm.AgentState.AWAY)
            away = await agent.event("state", state="AWAY")
            assert away["elsewhere"] is True
        await agent.send("/state online")
        back = await agent.event("state", state="ONLINE")
        assert "elsewhere" not in back
        await agent.send("/quit")
        code, _, err = await agent.finish()
        assert code == 0, err
        assert [e["state"] for e in agent.seen if e["event"] == "state"] == ["ONLINE", "AWAY", "ONLINE"]
