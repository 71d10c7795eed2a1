"""The fault-injection control API (``/_emulator/...``) over real HTTP and WebSockets."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import jwt as pyjwt
import pytest

from lpm.emulator import control
from lpm.emulator.app import Emulator
from lpm.emulator.world_errors import Unauthorized
from tests.helpers import TIMEOUT, RawSocket, login, signup, until

ACC = "12345678"
#: How long a test waits to be sure something does NOT happen.
QUIET = 0.3


async def control_call(
    http: aiohttp.ClientSession, emu: Emulator, path: str, body: Any = None, *, expect: int = 200
) -> dict[str, Any]:
    """POST (GET for ``state``) a control route and return its JSON answer."""
    method = "GET" if path == "state" else "POST"
    async with http.request(method, f"{emu.base_url}/_emulator/{path}", json=body) as resp:
        assert resp.status == expect, await resp.text()
        if expect == 404:
            return {}
        answer: dict[str, Any] = await resp.json()
        return answer


async def wait_closed(sock: RawSocket) -> int | None:
    await asyncio.wait_for(sock.closed.wait(), TIMEOUT)
    return sock.close_code


async def agent_socket(http: aiohttp.ClientSession, emu: Emulator) -> tuple[RawSocket, dict[str, Any]]:
    info = await login(http, emu)
    return await RawSocket.brand(http, emu, info["bearer"]), info


async def consumer_socket(http: aiohttp.ClientSession, emu: Emulator) -> tuple[RawSocket, str, str]:
    """A connected anonymous consumer: its socket, JWT and consumer id."""
    token = await signup(http, emu)
    sub = pyjwt.decode(token, options={"verify_signature": False})["sub"]
    return await RawSocket.consumer(http, emu, token), token, sub


def consumer_url(emu: Emulator) -> str:
    return f"{emu.ws_base_url}/ws_api/account/{emu.account_id}/messaging/consumer?v=3"


def brand_url(emu: Emulator, bearer: str) -> str:
    return f"{emu.ws_base_url}/ws_api/account/{emu.account_id}/messaging/brand/{bearer}?v=2.1"


# ---------------------------------------------------------------- sockets


async def test_close_agent_socket_with_4401(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    agent, _ = await agent_socket(http, emulator)
    consumer, _, _ = await consumer_socket(http, emulator)
    answer = await control_call(
        http, emulator, "sockets/close", {"code": 4401, "reason": "go away", "user_id": "agent"}
    )
    assert answer == {"closed": 1}
    assert await wait_closed(agent) == 4401
    # Other sockets are untouched.
    await consumer.request("GetClock")
    await consumer.close()


async def test_close_consumer_sockets_by_dialect(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    agent, _ = await agent_socket(http, emulator)
    first, _, _ = await consumer_socket(http, emulator)
    second, _, second_id = await consumer_socket(http, emulator)
    answer = await control_call(
        http, emulator, "sockets/close", {"code": 4407, "consumer_id": second_id, "account_id": ACC}
    )
    assert answer == {"closed": 1}
    assert await wait_closed(second) == 4407
    answer = await control_call(http, emulator, "sockets/close", {"code": 1011, "dialect": "consumer"})
    assert answer == {"closed": 1}
    assert await wait_closed(first) == 1011
    await agent.request(".GetClock")
    await agent.close()


async def test_drop_ends_sockets_without_close_frame(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    agent, _ = await agent_socket(http, emulator)
    consumer, _, _ = await consumer_socket(http, emulator)
    assert await control_call(http, emulator, "sockets/drop", {}) == {"dropped": 2}
    # No close frame: the client reports an abnormal closure.
    assert await wait_closed(agent) == aiohttp.WSCloseCode.ABNORMAL_CLOSURE
    assert await wait_closed(consumer) == aiohttp.WSCloseCode.ABNORMAL_CLOSURE


# ---------------------------------------------------------------- WebSocket requests


async def test_refused_request(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    agent, _ = await agent_socket(http, emulator)
    answer = await control_call(http, emulator, "requests", {"count": 1, "action": "refuse", "status": 503})
    assert answer["pending"] == 1
    refused = await agent.request(".GetClock", expect=503)
    assert refused["type"] == ".ReqBody$StringResp"
    await agent.request(".GetClock")  # only one was armed
    await agent.close()


async def test_delayed_request(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    consumer, _, _ = await consumer_socket(http, emulator)
    await control_call(http, emulator, "requests", {"count": 1, "action": "delay", "delay": QUIET})
    started = time.monotonic()
    await consumer.request("GetClock")
    assert time.monotonic() - started >= QUIET
    # Only one was armed (no timing assertion: a loaded machine may be slow anyway).
    assert (await control_call(http, emulator, "state"))["faults"]["ws"] == []
    await consumer.request("GetClock")
    await consumer.close()


async def test_requests_held_by_a_delay_are_handled_when_their_socket_is_dropped(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """A request the server has read is settled when its socket is lost, not when an injected
    delay ends: handled after the client reconnected, a publish the client did not find and
    wrote again would be stored twice (a long chaos run's duplicate message)."""
    consumer, _, _ = await consumer_socket(http, emulator)
    conv_id = (await consumer.request("cm.ConsumerRequestConversation"))["body"]["conversationId"]
    # Far longer than the test may wait: only the drop can end these delays in time.
    long = 10 * TIMEOUT
    await control_call(http, emulator, "requests", {"count": 2, "action": "delay", "delay": long})
    for i in range(2):  # the second is read behind the first, which holds the socket's reader
        await consumer.ws.send_json(
            {
                "kind": "req",
                "id": f"held-{i}",
                "type": "ms.PublishEvent",
                "body": {"dialogId": conv_id, "event": {"type": "ContentEvent", "message": f"held {i}"}},
            }
        )

    faults = emulator.ctx.faults if emulator.ctx is not None else None
    assert faults is not None
    await until(lambda: sum(f.count for f in faults.ws) == 1, "the first publish held")
    assert await control_call(http, emulator, "sockets/drop", {"dialect": "consumer"}) == {"dropped": 1}
    assert await wait_closed(consumer) == aiohttp.WSCloseCode.ABNORMAL_CLOSURE

    def stored() -> list[Any]:
        return [r.event.get("message") for r in emulator.world.accounts[ACC].events.get(conv_id, [])]

    await until(lambda: len(stored()) >= 2, "both held publishes handled")
    assert stored() == ["held 0", "held 1"]


async def test_dropped_request_is_never_answered(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    agent, _ = await agent_socket(http, emulator)
    await control_call(http, emulator, "requests", {"action": "drop"})
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(agent.request(".GetClock"), QUIET)
    await agent.request(".GetClock")
    await agent.close()


# ---------------------------------------------------------------- HTTP


async def test_429_on_login_then_success(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    answer = await control_call(
        http, emulator, "http", {"target": "login", "action": "refuse", "status": 429, "count": 1}
    )
    assert answer["target"] == "login" and answer["pending"] == 1
    url = f"{emulator.base_url}/api/account/{ACC}/login?v=1.3"
    async with http.post(url, json={"username": "agent", "password": "agent-password"}) as resp:
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "1"
        assert (await resp.json())["error"]["internalCode"] == 429
    assert (await login(http, emulator))["bearer"]


async def test_5xx_on_refresh(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    url = f"{emulator.base_url}/api/account/{ACC}/login?v=1.3"
    async with http.post(url, json={"username": "agent", "password": "agent-password"}) as resp:
        info = await resp.json()
        cookie = resp.cookies["Session_id"].value
    await control_call(http, emulator, "http", {"target": "refresh", "action": "refuse", "status": 500})
    refresh = f"{emulator.base_url}/api/account/{ACC}/refresh?v=1.3"
    headers = {"Cookie": f"Session_id={cookie}"}
    async with http.post(refresh, json={"csrf": info["csrf"]}, headers=headers) as resp:
        assert resp.status == 500
    async with http.post(refresh, json={"csrf": info["csrf"]}, headers=headers) as resp:
        assert resp.status == 200


async def test_dropped_http_call(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    # Two: aiohttp silently retries an idempotent request once after a disconnection.
    await control_call(http, emulator, "http", {"target": "csds", "action": "drop", "count": 2})
    url = f"{emulator.base_url}/api/account/{ACC}/service/baseURI.json?version=1.0"
    with pytest.raises(aiohttp.ClientError):
        async with http.get(url) as resp:
            await resp.read()
    async with http.get(url) as resp:
        assert resp.status == 200


# ---------------------------------------------------------------- tokens


async def test_expire_agent_session(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    agent, info = await agent_socket(http, emulator)
    other, _ = await agent_socket(http, emulator)  # same agent, second login
    bot_info = await login(http, emulator, "bot")
    bot = await RawSocket.brand(http, emulator, bot_info["bearer"])
    answer = await control_call(http, emulator, "tokens/expire", {"user_id": "1001"})
    assert answer == {"expired_sessions": 2, "closed_sockets": 2}
    assert await wait_closed(agent) == 4401
    assert await wait_closed(other) == 4401
    # The bearer is dead: refused at the upgrade.
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(brand_url(emulator, info["bearer"]))
    assert refused.value.status == 401
    # The bot was not named; a new login works.
    await bot.request(".GetClock")
    fresh = await RawSocket.brand(http, emulator, (await login(http, emulator))["bearer"])
    await fresh.request(".GetClock")
    await bot.close()
    await fresh.close()


async def test_expire_consumer_closes_with_auth_code(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    agent, _ = await agent_socket(http, emulator)
    consumer, _, consumer_id = await consumer_socket(http, emulator)
    other, _, _ = await consumer_socket(http, emulator)
    answer = await control_call(http, emulator, "tokens/expire", {"consumer_id": consumer_id})
    assert answer == {"expired_sessions": 0, "closed_sockets": 1}
    # Anonymous identities close with 4407, as on expiry.
    assert await wait_closed(consumer) == 4407
    await other.request("GetClock")
    await agent.request(".GetClock")
    # A new identity works.
    again, _, _ = await consumer_socket(http, emulator)
    await again.request("GetClock")
    for sock in (other, agent, again):
        await sock.close()


async def test_expire_everyone(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    agent, _ = await agent_socket(http, emulator)
    consumer, _, _ = await consumer_socket(http, emulator)
    answer = await control_call(http, emulator, "tokens/expire", {"account_id": ACC})
    assert answer == {"expired_sessions": 1, "closed_sockets": 2}
    assert await wait_closed(agent) == 4401
    assert await wait_closed(consumer) == 4407


async def test_expired_consumer_token_is_refused_at_reconnect(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    consumer, token, consumer_id = await consumer_socket(http, emulator)
    await control_call(http, emulator, "tokens/expire", {"consumer_id": consumer_id})
    await wait_closed(consumer)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(consumer_url(emulator), headers={"Authorization": f"jwt {token}"})
    assert refused.value.status == 401


async def test_check_consumer_token_rules(emulator: Emulator) -> None:
    """Tokens issued before the expiry are refused, tokens issued after it work."""
    ctx = emulator.ctx
    assert ctx is not None
    consumer = emulator.world.add_consumer(ACC, "anonymous")
    used = ctx.tokens.issue_consumer(ACC, consumer.consumer_id, 3600)
    claims = ctx.tokens.verify_consumer(used, ACC)
    control.check_consumer_token(ctx, ACC, claims)  # accepted, and remembered
    older = {**claims, "iat": claims["iat"] - 10, "jti": "never-seen"}
    control.check_consumer_token(ctx, ACC, older)
    async with aiohttp.ClientSession() as http:
        await control_call(http, emulator, "tokens/expire", {"consumer_id": consumer.consumer_id})
    # Used before the expiry (even in the same second): revoked by its jti.
    with pytest.raises(Unauthorized):
        ctx.tokens.verify_consumer(used, ACC)
    # Issued in an earlier second: refused by its iat.
    with pytest.raises(Unauthorized, match="expired"):
        control.check_consumer_token(ctx, ACC, older)
    # A token issued now is fine.
    fresh = ctx.tokens.issue_consumer(ACC, consumer.consumer_id, 3600)
    control.check_consumer_token(ctx, ACC, ctx.tokens.verify_consumer(fresh, ACC))
    # Other consumers are not affected.
    other = {**older, "sub": "someone-else"}
    control.check_consumer_token(ctx, ACC, other)


# ---------------------------------------------------------------- upgrades


async def test_stalled_upgrade(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    info = await login(http, emulator)
    assert await control_call(http, emulator, "upgrades/stall", {"count": 1}) == {"stall_upgrades": 1}
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(http.ws_connect(brand_url(emulator, info["bearer"])), QUIET)
    assert await control_call(http, emulator, "upgrades/release") == {"stall_upgrades": 0}
    sock = await RawSocket.brand(http, emulator, info["bearer"])
    await sock.request(".GetClock")
    await sock.close()


async def test_release_disarms_unused_stalls(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    await control_call(http, emulator, "upgrades/stall", {"count": 3})
    await control_call(http, emulator, "upgrades/release")
    consumer, _, _ = await consumer_socket(http, emulator)
    await consumer.request("GetClock")
    await consumer.close()


# ---------------------------------------------------------------- routing


async def ring_states(sock: RawSocket, conv_id: str) -> list[str]:
    note = await sock.notification(".ams.routing.RoutingTaskNotification")
    return [
        ring["ringState"]
        for change in note["body"]["changes"]
        if change["result"]["conversationId"] == conv_id
        for ring in change["result"]["ringsDetails"]
    ]


async def test_rings_expire(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    agent, _ = await agent_socket(http, emulator)
    await agent.request(".ams.routing.SetAgentState", {"availability": "ONLINE"}, expect=202)
    await agent.request(".ams.routing.SubscribeRoutingTasks", {"brandId": ACC})
    await agent.notification(".ams.routing.RoutingTaskNotification")  # empty snapshot
    consumer, _, _ = await consumer_socket(http, emulator)
    resp = await consumer.request("cm.ConsumerRequestConversation", {"brandId": ACC})
    conv_id = resp["body"]["conversationId"]
    assert await ring_states(agent, conv_id) == ["WAITING"]
    assert await control_call(http, emulator, "rings/expire", {"account_id": ACC}) == {"expired": 1}
    assert await ring_states(agent, conv_id) == ["EXPIRED"]
    state = await control_call(http, emulator, "state")
    assert state["accounts"][ACC]["waiting_rings"] == 0
    assert state["accounts"][ACC]["conversations"] == {"open": 1, "closed": 0}
    await agent.close()
    await consumer.close()


# ---------------------------------------------------------------- housekeeping


async def test_state_and_reset(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    agent, _ = await agent_socket(http, emulator)
    await control_call(http, emulator, "requests", {"count": 2, "action": "refuse"})
    await control_call(http, emulator, "http", {"target": "idp", "action": "delay", "delay": 0.5})
    await control_call(http, emulator, "upgrades/stall", {"count": 2})
    state = await control_call(http, emulator, "state")
    assert state["faults_enabled"] is True
    assert state["sessions"] == {"brand": 1, "consumer": 0}
    assert state["accounts"][ACC]["agent_sessions"] == 1
    assert state["faults"] == {
        "ws": [{"count": 2, "action": "refuse", "delay": 0.0, "status": 503}],
        "http": {"idp": [{"count": 1, "action": "delay", "delay": 0.5, "status": 503}]},
        "stall_upgrades": 2,
    }
    assert await control_call(http, emulator, "reset") == {"reset": True}
    state = await control_call(http, emulator, "state")
    assert state["faults"] == {"ws": [], "http": {}, "stall_upgrades": 0}
    await agent.request(".GetClock")
    await agent.close()


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("sockets/close", {"reason": "x"}, "code is required"),
        ("sockets/close", {"code": 1006}, "sockets/drop"),
        ("sockets/close", {"code": 1005}, "reserved"),
        ("sockets/close", {"code": "4401"}, "integer"),
        ("sockets/close", {"code": 4401, "acount_id": ACC}, "unknown key"),
        ("sockets/close", {"code": 4401, "reason": "x" * 124}, "123 bytes"),
        ("sockets/drop", {"account_id": "999"}, "unknown account"),
        ("sockets/drop", {"user_id": "nobody"}, "unknown agent"),
        ("sockets/drop", {"dialect": "smoke-signals"}, "dialect"),
        ("sockets/drop", {"user_id": "1001", "consumer_id": "c"}, "not both"),
        ("requests", {"action": "explode"}, "action"),
        ("requests", {"action": "refuse", "status": 200}, "status"),
        ("requests", {"action": "delay", "delay": -1}, "delay"),
        ("requests", {"action": "drop", "count": 0}, "count"),
        ("http", {"action": "refuse"}, "target is required"),
        ("http", {"target": "moon", "action": "refuse"}, "target"),
        ("tokens/expire", {"consumer_id": "nobody"}, "unknown consumer"),
        ("upgrades/stall", {"count": True}, "integer"),
        ("rings/expire", {"account_id": "999"}, "unknown account"),
        ("reset", [1, 2], "JSON object"),
    ],
)
async def test_bad_input_is_400(
    emulator: Emulator, http: aiohttp.ClientSession, path: str, body: Any, message: str
) -> None:
    answer = await control_call(http, emulator, path, body, expect=400)
    assert message in answer["error"]


async def test_malformed_json_is_400(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{emulator.base_url}/_emulator/requests", data=b"{nope") as resp:
        assert resp.status == 400
        assert "not JSON" in (await resp.json())["error"]


async def test_disabled_faults_answer_404(http: aiohttp.ClientSession) -> None:
    async with Emulator() as emu:
        for path in (
            "sockets/close",
            "sockets/drop",
            "requests",
            "http",
            "tokens/expire",
            "upgrades/stall",
            "upgrades/release",
            "rings/expire",
            "reset",
            "state",
        ):
            await control_call(http, emu, path, {}, expect=404)
