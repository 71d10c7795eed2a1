"""Conformance: LivePerson's own Node agent SDK (``node-agent-sdk``, unmodified) against the emulator.

The peer runs in a Node subprocess (``node/driver.js``, wrapped by :mod:`tests.conformance.peer`)
and reaches the emulator exactly as it reaches LivePerson: CSDS -> agentVep login -> brand
WebSocket v2.1, all over TLS (the peer hard-codes https/wss and trusts the emulator's CA through
``NODE_EXTRA_CA_CERTS``).  The consumer side is driven with raw v3 frames from Python.  What is
asserted is what the peer *hands its application* (after its Transformer), so a shape the peer
cannot digest shows up as a missing event or an ``error`` event.

Run with ``make conformance`` (installs the peer with ``npm ci``) or
``.venv/bin/pytest -q tests/conformance``.  Without Node or the installed peer the tests fail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from lpm.emulator.app import Emulator
from tests.conformance.peer import Event, NodePeer
from tests.helpers import RawSocket, login, signup

pytestmark = pytest.mark.timeout(60)

AGENT = {"username": "agent", "password": "agent-password"}
BOT_KEYS = {
    "username": "bot",
    "appKey": "bot-app-key",
    "secret": "bot-app-secret",
    "accessToken": "bot-access-token",
    "accessTokenSecret": "bot-access-token-secret",
}
SALES, SUPPORT = "11", "12"

PeerFactory = Callable[[], Awaitable[NodePeer]]


# ---------------------------------------------------------------- fixtures


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """A TLS emulator (the peer cannot speak plain HTTP) with the fault API."""
    async with Emulator(tls=True, faults=True) as emulator:
        yield emulator


@pytest.fixture
async def http(emu: Emulator) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP session trusting the emulator's CA (overrides the plain one from conftest)."""
    connector = aiohttp.TCPConnector(ssl=emu.client_ssl_context())
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


@pytest.fixture
async def peers(emu: Emulator) -> AsyncIterator[PeerFactory]:
    """Starts node peers on demand; every one is stopped (killed if need be) at teardown."""
    started: list[NodePeer] = []

    async def start() -> NodePeer:
        peer = await NodePeer.start(emu)
        started.append(peer)
        return peer

    yield start
    for peer in started:
        await peer.close()


@pytest.fixture
async def peer(peers: PeerFactory) -> NodePeer:
    return await peers()


@pytest.fixture
async def sockets(emu: Emulator, http: aiohttp.ClientSession) -> AsyncIterator[list[RawSocket]]:
    """Raw sockets a test opens; closed before the emulator and the HTTP session go away."""
    opened: list[RawSocket] = []
    yield opened
    for sock in opened:
        await sock.close()


# ---------------------------------------------------------------- helpers


def agent_conf(emu: Emulator, **credentials: str) -> dict[str, Any]:
    """``new Agent(conf)`` options pointing the peer at the emulator's CSDS."""
    # A short request timeout turns a missing response into a quick callback error instead of
    # a 10 s stall.
    return {
        "accountId": emu.account_id,
        "csdsDomain": emu.csds_domain,
        "requestTimeout": 5000,
        "errorCheckInterval": 250,
        **credentials,
    }


async def connect(peer: NodePeer, emu: Emulator, **credentials: str) -> dict[str, Any]:
    """Create the agent, wait for ``connected`` and return its identity (``info``)."""
    await peer.connect(agent_conf(emu, **credentials))
    await peer.wait_event("connected")
    return await peer.info()


def user_pid(emu: Emulator, login_name: str) -> str:
    """The PID the emulator's world gives ``login_name`` (what agentVep login answers as userPid)."""
    users = {u["username"]: u for u in emu.describe()["users"]}
    pid: str = users[login_name]["user_pid"]
    return pid


async def close_sockets(http: aiohttp.ClientSession, emu: Emulator, code: int, dialect: str) -> None:
    """Fault API: the emulator closes every ``dialect`` socket of the account with ``code``."""
    async with http.post(
        f"{emu.base_url}/_emulator/sockets/close",
        json={"code": code, "account_id": emu.account_id, "dialect": dialect},
    ) as resp:
        assert resp.status == 200, f"fault API: {resp.status} {await resp.text()}"
        assert (await resp.json())["closed"] >= 1, "the fault API closed no socket"


async def next_notification(
    sock: RawSocket, type_: str, predicate: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The next raw notification of ``type_`` whose frame satisfies ``predicate`` (others skipped)."""
    while True:
        frame = await sock.notification(type_)
        if predicate(frame):
            return frame


def text_event(message: str) -> dict[str, Any]:
    """A plain-text ContentEvent."""
    return {"type": "ContentEvent", "contentType": "text/plain", "message": message}


def changes(event: Event) -> list[dict[str, Any]]:
    """``changes`` of a subscription notification event (empty when absent)."""
    data = event.get("data") or {}
    found: list[dict[str, Any]] = data.get("changes") or []
    return found


def conversation_change(event: Event, conv_id: str) -> dict[str, Any] | None:
    """The change about ``conv_id`` in a peer ``cqm.ExConversationChangeNotification`` event."""
    return next((c for c in changes(event) if (c.get("result") or {}).get("convId") == conv_id), None)


def waiting_ring(event: Event, conv_id: str) -> dict[str, Any] | None:
    """The WAITING ring for ``conv_id`` in a peer ``routing.RoutingTaskNotification`` event."""
    for change in changes(event):
        result = change.get("result") or {}
        if result.get("conversationId") != conv_id:
            continue
        for ring in result.get("ringsDetails") or []:
            if ring.get("ringState") == "WAITING":
                ring_found: dict[str, Any] = ring
                return ring_found
    return None


def is_assigned(event: Event, conv_id: str, pid: str) -> bool:
    """True when the peer event shows ``pid`` as ASSIGNED_AGENT of ``conv_id`` (transformed shape)."""
    change = conversation_change(event, conv_id)
    if change is None or change["type"] != "UPSERT":
        return False
    participants = change["result"]["conversationDetails"]["participants"]
    return {"id": pid, "role": "ASSIGNED_AGENT"} in participants


def messages(event: Event) -> list[Any]:
    """Texts of the ContentEvents in a peer ``ms.MessagingEventNotification`` event."""
    return [c["event"].get("message") for c in changes(event) if c["event"].get("type") == "ContentEvent"]


def no_errors(peer: NodePeer) -> None:
    """The peer emitted no ``error`` (TransformErrors included) and the driver did not fail."""
    assert peer.errors() == [], f"the peer reported errors: {peer.errors()}"


# ---------------------------------------------------------------- scenario 1: issue acceptance


async def test_agent_accepts_ring_chats_and_closes(
    emu: Emulator, http: aiohttp.ClientSession, peer: NodePeer, sockets: list[RawSocket]
) -> None:
    me = await connect(peer, emu, **AGENT)
    # agent.agentId is config.userPid from the login response; userId/oldAgentId from config.userId.
    assert me["agentId"] == user_pid(emu, "agent")
    assert (me["userId"], me["oldAgentId"]) == ("1001", f"{emu.account_id}.1001")
    pid = me["agentId"]

    assert isinstance(await peer.call("setAgentState", {"availability": "ONLINE"}), str)
    assert "subscriptionId" in await peer.call("subscribeRoutingTasks", {})
    # The peer maps its own PID in agentIds to the old "{account}.{userId}" form before sending.
    ex_sub = await peer.call("subscribeExConversations", {"convState": ["OPEN"], "agentIds": [pid]})
    assert "subscriptionId" in ex_sub

    # A consumer (raw v3 frames) with a profile, watching its own conversations.
    consumer = await RawSocket.consumer(http, emu, await signup(http, emu))
    sockets.append(consumer)
    await consumer.request(
        "userprofile.SetUserProfile",
        {
            "firstName": "Carla",
            "lastName": "Consumer",
            "privateData": {"mobileNum": "+15550100", "mail": "carla@example.com"},
        },
    )
    await consumer.request("cqm.SubscribeExConversations", {"convState": ["OPEN", "CLOSE"]})
    resp = await consumer.request(
        "cm.ConsumerRequestConversation",
        # Support: the agent's skill (no survey: this consumer does not declare MULTI_DIALOG).
        {"brandId": emu.account_id, "skillId": SUPPORT, "channelType": "MESSAGING"},
    )
    conv_id = resp["body"]["conversationId"]
    opened = await next_notification(
        consumer,
        "cqm.ExConversationChangeNotification",
        lambda f: any(c["result"]["convId"] == conv_id for c in f["body"]["changes"]),
    )
    details = opened["body"]["changes"][0]["result"]["conversationDetails"]
    consumer_id = next(p["id"] for p in details["participants"] if p["role"] == "CONSUMER")

    # The peer is rung and accepts.
    ring_event = await peer.wait_event(
        "routing.RoutingTaskNotification", lambda e: waiting_ring(e, conv_id) is not None
    )
    ring = waiting_ring(ring_event, conv_id)
    assert ring is not None
    assert ring["ringExpiration"] > 0
    assert isinstance(
        await peer.call("updateRingState", {"ringId": ring["ringId"], "ringState": "ACCEPTED"}), str
    )

    # The conversation shows up with the peer as ASSIGNED_AGENT, by PID, after the Transformer
    # rebuilt `participants` from `participantsPId`.
    conv_event = await peer.wait_event(
        "cqm.ExConversationChangeNotification", lambda e: is_assigned(e, conv_id, pid)
    )
    change = conversation_change(conv_event, conv_id)
    assert change is not None
    conv_details = change["result"]["conversationDetails"]
    assert {"id": consumer_id, "role": "CONSUMER"} in conv_details["participants"]
    # __myRole comes from finding "{account}.{userId}" in the raw (old-id) participants map.
    assert conv_details["__myRole"] == "ASSIGNED_AGENT"
    assert conv_details["state"] == "OPEN"
    main = conv_details["dialogs"][0]
    assert main["dialogId"] == conv_id
    assert {"id": pid, "role": "ASSIGNED_AGENT", "state": "ACTIVE"} in main["participantsDetails"]

    # Consumer -> agent: live events reach the peer without any subscription.
    await consumer.request("ms.SubscribeMessagingEvents", {"dialogId": conv_id, "fromSeq": 0})
    hello = "Hello, I need help with my order"
    await consumer.request(
        "ms.PublishEvent",
        {"dialogId": conv_id, "event": text_event(hello)},
    )
    live = await peer.wait_event("ms.MessagingEventNotification", lambda e: hello in messages(e))
    assert live["data"]["dialogId"] == conv_id
    event = live["data"]["changes"][0]
    assert event["sequence"] == 0
    assert event["originatorId"] == consumer_id
    assert event["__isMe"] is False

    # History: the peer rewrites subscribeMessagingEvents into QueryMessages, re-emits the
    # response array as a synthetic ms.MessagingEventNotification and deletes the body.
    mark = peer.mark()
    assert await peer.call("subscribeMessagingEvents", {"dialogId": conv_id, "fromSeq": 0}) is None
    history = await peer.wait_event("ms.MessagingEventNotification", after=mark)
    assert history["data"]["dialogId"] == conv_id
    assert messages(history) == [hello]

    # Agent -> consumer.
    answer = "Hi Carla, let me check that for you"
    mark = peer.mark()
    sent = await peer.call(
        "publishEvent",
        {"dialogId": conv_id, "event": text_event(answer)},
    )
    assert sent == {"sequence": 1}
    echo = await peer.wait_event("ms.MessagingEventNotification", lambda e: answer in messages(e), after=mark)
    assert echo["data"]["changes"][0]["__isMe"] is True
    assert echo["data"]["changes"][0]["originatorId"] == pid
    received = await next_notification(
        consumer,
        "ms.MessagingEventNotification",
        lambda f: any(c["event"].get("message") == answer for c in f["body"]["changes"]),
    )
    agent_event = received["body"]["changes"][0]
    assert agent_event["sequence"] == 1
    assert agent_event["originatorMetadata"] == {"id": pid, "role": "ASSIGNED_AGENT"}

    # The consumer's profile, as the SDE array the peer builds from the raw profile.
    sdes = await peer.call("getUserProfile", consumer_id)
    assert isinstance(sdes, list)
    personal = next(s for s in sdes if s["type"] == "personal")["personal"]
    assert (personal["firstname"], personal["lastname"]) == ("Carla", "Consumer")
    assert personal["contacts"] == [{"email": "carla@example.com", "phone": "+15550100"}]

    # The agent closes; both sides see it.
    mark = peer.mark()
    closed = await peer.call(
        "updateConversationField",
        {
            "conversationId": conv_id,
            "conversationField": [{"field": "ConversationStateField", "conversationState": "CLOSE"}],
        },
    )
    assert isinstance(closed, str)

    def peer_sees_close(e: Event) -> bool:
        c = conversation_change(e, conv_id)
        if c is None:
            return False
        # With convState ["OPEN"] the closed conversation leaves the subscription (DELETE);
        # an UPSERT in state CLOSE is accepted as well.
        return bool(c["type"] == "DELETE" or c["result"]["conversationDetails"]["state"] == "CLOSE")

    consumer_closed = await next_notification(
        consumer,
        "cqm.ExConversationChangeNotification",
        lambda f: any(
            c["result"]["convId"] == conv_id and c["result"]["conversationDetails"]["state"] == "CLOSE"
            for c in f["body"]["changes"]
        ),
    )
    assert consumer_closed["body"]["changes"][0]["type"] == "UPSERT"
    await peer.wait_event("cqm.ExConversationChangeNotification", peer_sees_close, after=mark)
    no_errors(peer)


# ---------------------------------------------------------------- scenario 2: 4401 and reconnect


async def test_server_close_4401_then_reconnect(
    emu: Emulator, http: aiohttp.ClientSession, peer: NodePeer
) -> None:
    await connect(peer, emu, **AGENT)
    logins_before = len(emu.world.sessions)

    mark = peer.mark()
    await close_sockets(http, emu, 4401, "brand")
    closed = await peer.wait_event("closed", after=mark)
    # The peer reports the close code only (the reason is dropped).
    assert closed["data"] == 4401

    # reconnect() without an argument: CSDS (cached) -> a fresh login -> a new socket.
    await peer.reconnect()
    await peer.wait_event("connected", after=mark)
    assert len(emu.world.sessions) == logins_before + 1, "reconnect() should have logged in again"
    clock = await peer.call("getClock", {})
    assert isinstance(clock["currentTime"], int)
    # Exactly one close: the stale-listener defect of the peer (spec §5.2) must not be provoked
    # by the emulator (e.g. by a second close frame or a late error on the old socket).
    assert len(peer.find("closed", after=mark)) == 1
    no_errors(peer)


# ---------------------------------------------------------------- scenario 3: logins


async def test_app_key_login(emu: Emulator, peer: NodePeer) -> None:
    me = await connect(peer, emu, **BOT_KEYS)
    assert (me["userId"], me["agentId"]) == ("2001", user_pid(emu, "bot"))
    assert isinstance((await peer.call("getClock", {}))["currentTime"], int)
    no_errors(peer)


async def test_bad_password_is_a_login_error(
    emu: Emulator, http: aiohttp.ClientSession, peer: NodePeer
) -> None:
    await peer.connect(agent_conf(emu, username="agent", password="not-the-password"))
    error = await peer.wait_event("error")
    # 1.2.0's ExternalServices.login builds SDKError(body.error, body.internalCode): with
    # agentVep's documented body ({"error": {..., "internalCode": 10}}) the code is undefined
    # and the message is the stringified object.  Later versions (compileError) use the HTTP
    # status, 401.
    assert error["data"]["code"] == (None if peer.sdk_version == "1.2.0" else 401)
    # What the peer got on the wire: 401 with the agentVep error body.
    async with http.post(
        f"{emu.base_url}/api/account/{emu.account_id}/login?v=1.3",
        json={"username": "agent", "password": "not-the-password"},
    ) as resp:
        assert resp.status == 401
        assert "internalCode" in (await resp.json())["error"]
    # The login failed, so no socket was opened: the agent is not connected.
    info = await peer.info()
    assert info["connected"] is False
    assert peer.find("connected") == []


# ---------------------------------------------------------------- scenario 4: transfer to skill


async def test_transfer_to_skill_rings_another_agent(
    emu: Emulator, http: aiohttp.ClientSession, peer: NodePeer, sockets: list[RawSocket]
) -> None:
    me = await connect(peer, emu, **AGENT)
    pid = me["agentId"]
    await peer.call("setAgentState", {"availability": "ONLINE"})
    await peer.call("subscribeRoutingTasks", {})
    await peer.call("subscribeExConversations", {"convState": ["OPEN"], "agentIds": [pid]})

    # The bot: a raw brand socket, ONLINE and listening for rings (it has skill sales only).
    bot_login = await login(http, emu, "bot")
    bot = await RawSocket.brand(http, emu, bot_login["bearer"])
    sockets.append(bot)
    bot_old_id = f"{emu.account_id}.{bot_login['config']['userId']}"
    # SetAgentState and UpdateRingState are answered 202 (protocol 2.x).
    await bot.request(
        ".ams.routing.SetAgentState",
        {"availability": "ONLINE", "channels": ["MESSAGING"], "agentUserId": bot_old_id},
        expect=202,
    )
    await bot.request(
        ".ams.routing.SubscribeRoutingTasks",
        {"channelType": "MESSAGING", "agentId": bot_old_id, "brandId": emu.account_id},
    )

    # The conversation starts in support, which only the peer's agent has: the peer is rung.
    consumer = await RawSocket.consumer(http, emu, await signup(http, emu))
    sockets.append(consumer)
    resp = await consumer.request("cm.ConsumerRequestConversation", {"skillId": SUPPORT})
    conv_id = resp["body"]["conversationId"]
    ring_event = await peer.wait_event(
        "routing.RoutingTaskNotification", lambda e: waiting_ring(e, conv_id) is not None
    )
    ring = waiting_ring(ring_event, conv_id)
    assert ring is not None
    await peer.call("updateRingState", {"ringId": ring["ringId"], "ringState": "ACCEPTED"})
    await peer.wait_event("cqm.ExConversationChangeNotification", lambda e: is_assigned(e, conv_id, pid))

    # The agent steps away and transfers to sales: REMOVE itself (the peer fills in userId)
    # and change the skill, atomically.
    await peer.call("setAgentState", {"availability": "AWAY"})
    mark = peer.mark()
    moved = await peer.call(
        "updateConversationField",
        {
            "conversationId": conv_id,
            "conversationField": [
                {"field": "ParticipantsChange", "type": "REMOVE", "role": "ASSIGNED_AGENT"},
                {"field": "Skill", "type": "UPDATE", "skill": SALES},
            ],
        },
    )
    assert isinstance(moved, str)

    # The bot is rung for the transferred conversation, on the new skill, and accepts.
    bot_ring = await next_notification(
        bot,
        ".ams.routing.RoutingTaskNotification",
        lambda f: any(
            c["result"]["conversationId"] == conv_id
            and any(r["ringState"] == "WAITING" for r in c["result"]["ringsDetails"])
            for c in f["body"]["changes"]
        ),
    )
    task = bot_ring["body"]["changes"][0]["result"]
    assert task["skillId"] == SALES
    bot_ring_id = next(r["ringId"] for r in task["ringsDetails"] if r["ringState"] == "WAITING")
    await bot.request(
        ".ams.routing.UpdateRingState", {"ringId": bot_ring_id, "ringState": "ACCEPTED"}, expect=202
    )

    # The peer left the conversation: its agent-filtered subscription drops it.
    def peer_left(e: Event) -> bool:
        c = conversation_change(e, conv_id)
        return c is not None and (c["type"] == "DELETE" or not is_assigned(e, conv_id, pid))

    await peer.wait_event("cqm.ExConversationChangeNotification", peer_left, after=mark)
    no_errors(peer)
