"""The Messaging Interactions API over loopback HTTP (authorization, paging, links, refusals) and
the SDK's ``BrandRestConnection.search_conversations`` reading it page by page."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

import lpm
from lpm.client.history_search import ConversationHistoryRecord, HistoryPage
from lpm.emulator.app import Emulator
from lpm.errors import ConfigurationError, RequestError
from tests.helpers import RawSocket, login, signup
from tests.integration.test_send_api import app_jwt

ACC = "12345678"
SEARCH = f"/messaging_history/api/account/{ACC}/conversations/search"
BY_ID = f"/messaging_history/api/account/{ACC}/conversations/conversation/search"


async def conversations(http: aiohttp.ClientSession, emu: Emulator, n: int) -> list[str]:
    """``n`` conversations of new consumers on sales (11), each with one message."""
    out = []
    for i in range(n):
        sock = await RawSocket.consumer(http, emu, await signup(http, emu))
        resp = await sock.request("cm.ConsumerRequestConversation", {"brandId": ACC, "skillId": "11"})
        conv_id = str(resp["body"]["conversationId"])
        event = {"type": "ContentEvent", "contentType": "text/plain", "message": f"message {i}"}
        await sock.request("ms.PublishEvent", {"dialogId": conv_id, "event": event})
        await sock.close()
        out.append(conv_id)
    return out


async def post(
    http: aiohttp.ClientSession, emu: Emulator, path: str, body: Any, token: str | None, **query: str
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.post(f"{emu.base_url}{path}", json=body, params=query, headers=headers) as resp:
        return resp.status, await resp.json()


def window() -> dict[str, Any]:
    return {"start": {"from": int(time.time() * 1000) - 3_600_000, "to": -1}}


async def test_paging_links_and_order(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    made = await conversations(http, emulator, 5)
    manager = (await login(http, emulator))["bearer"]
    status, first = await post(http, emulator, SEARCH, window(), manager, offset="0", limit="2")
    assert status == 200, first
    meta = first["_metadata"]
    assert meta["count"] == 5 and meta["shardsStatusResult"] == {"partialResult": False}
    assert meta["self"]["rel"] == "self" and "offset=0" in meta["self"]["href"]
    assert (
        meta["next"]["rel"] == "next"
        and "offset=2" in meta["next"]["href"]
        and "limit=2" in meta["next"]["href"]
    )
    assert "prev" not in meta
    ids = [r["info"]["conversationId"] for r in first["conversationHistoryRecords"]]
    assert ids == made[::-1][:2]  # newest first by default
    seen = list(ids)
    next_href: str | None = meta["next"]["href"]
    while next_href:
        async with http.post(
            next_href, json=window(), headers={"Authorization": f"Bearer {manager}"}
        ) as resp:
            page = await resp.json()
        seen += [r["info"]["conversationId"] for r in page["conversationHistoryRecords"]]
        assert page["_metadata"]["prev"]["rel"] == "prev"
        next_href = page["_metadata"].get("next", {}).get("href")
    assert seen == made[::-1]
    status, ascending = await post(http, emulator, SEARCH, window(), manager, sort="start:asc")
    assert [r["info"]["conversationId"] for r in ascending["conversationHistoryRecords"]] == made
    status, beyond = await post(http, emulator, SEARCH, window(), manager, offset="10")
    assert status == 200 and beyond["conversationHistoryRecords"] == [] and beyond["_metadata"]["count"] == 5


async def test_authorization(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    (conv_id,) = await conversations(http, emulator, 1)
    # No token, a bad one, a consumer's: 401.
    for token in (None, "nonsense", await signup(http, emulator)):
        status, body = await post(http, emulator, SEARCH, window(), token)
        assert status == 401 and body["code"] == 401, body
    # Another account: 404.
    status, _ = await post(
        http, emulator, SEARCH.replace(ACC, "99999999"), window(), (await login(http, emulator))["bearer"]
    )
    assert status == 404
    # An AppJWT (machine to machine) sees every conversation; a manager too.
    for token in (await app_jwt(http, emulator), (await login(http, emulator))["bearer"]):
        status, body = await post(http, emulator, BY_ID, {"conversationId": conv_id}, token)
        assert status == 200 and body["_metadata"]["count"] == 1
    # An agent who is no manager sees only the conversations it took part in.
    bot = (await login(http, emulator, "bot"))["bearer"]
    status, body = await post(http, emulator, BY_ID, {"conversationId": conv_id}, bot)
    assert status == 200 and body["_metadata"]["count"] == 0


@pytest.mark.parametrize(
    ("path", "body", "query"),
    [
        (SEARCH, {}, {}),
        (SEARCH, {"start": {"from": "yesterday"}}, {}),
        (SEARCH, {"start": {"from": 0, "to": -1}, "status": ["SOMETIMES"]}, {}),
        (BY_ID, {"start": {"from": 0, "to": -1}}, {}),
        (SEARCH, None, {"limit": "101"}),
        (SEARCH, None, {"limit": "0"}),
        (SEARCH, None, {"offset": "-1"}),
        (SEARCH, None, {"sort": "duration:desc"}),
        (SEARCH, None, {"v": "3"}),
    ],
)
async def test_refusals(
    emulator: Emulator, http: aiohttp.ClientSession, path: str, body: Any, query: dict[str, str]
) -> None:
    token = (await login(http, emulator))["bearer"]
    status, answer = await post(http, emulator, path, window() if body is None else body, token, **query)
    assert status == 400 and answer["code"] == 400, answer
    async with http.post(
        f"{emulator.base_url}{SEARCH}", data=b"{nope", headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        assert resp.status == 400


def rest(emu: Emulator, username: str = "agent") -> lpm.BrandRestConnection:
    conn = lpm.create_connection(
        account_id=ACC,
        user_type=lpm.UserType.BRAND,
        connection_type=lpm.ConnectionType.REST,
        auth_data={"username": username, "password": f"{username}-password"},
        csds_domain=emu.csds_domain,
    )
    assert isinstance(conn, lpm.BrandRestConnection)
    return conn


async def test_sdk_search_yields_typed_pages(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    made = await conversations(http, emulator, 5)
    query = lpm.HistoryQuery(start_from=time.time() - 3600, sort="start:asc")
    async with rest(emulator) as conn:
        pages: list[HistoryPage] = [page async for page in conn.search_conversations(query, page_size=2)]
        assert [len(p.records) for p in pages] == [2, 2, 1]
        assert [p.offset for p in pages] == [0, 2, 4] and [p.next_offset for p in pages] == [2, 4, None]
        assert all(p.count == 5 for p in pages)
        records: list[ConversationHistoryRecord] = [
            r async for r in conn.search_conversations(query, page_size=3).records()
        ]
        assert [r.conversation_id for r in records] == made
        first = records[0]
        assert (
            first.info.status == "OPEN" and first.info.end_time_l == -1 and first.info.latest_skill_id == 11
        )
        assert first.info.start_time_l is not None and first.info.duration is not None
        assert [m.text for m in first.message_records] == ["message 0"]
        assert first.message_records[0].sent_by == "Consumer" and first.message_records[0].seq == 0
        assert first.consumers and first.consumers[0].participant_id
        # Filters: keyword and status; an empty result is one empty page.
        keyword = lpm.HistoryQuery(start_from=time.time() - 3600, keyword="message 3")
        found = [r.conversation_id async for r in conn.search_conversations(keyword).records()]
        assert found == [made[3]]
        closed = lpm.HistoryQuery(start_from=time.time() - 3600, status=["CLOSE"])
        empty = [page async for page in conn.search_conversations(closed)]
        assert len(empty) == 1 and empty[0].records == [] and empty[0].count == 0
        by_id = lpm.HistoryQuery(
            start_from=time.time() - 3600, conversation_ids=[made[1]], content_to_retrieve=["sdes"]
        )
        (only,) = [r async for r in conn.search_conversations(by_id).records()]
        assert only.conversation_id == made[1] and only.message_records == [] and only.sdes is not None
        # Bad arguments fail before any request; refusals are RequestErrors.
        with pytest.raises(ConfigurationError):
            conn.search_conversations(query, page_size=101)
        with pytest.raises(ConfigurationError):
            conn.search_conversations(lpm.HistoryQuery(start_from="yesterday"))  # type: ignore[arg-type]
        too_wide = lpm.HistoryQuery(start_from=0)
        with pytest.raises(RequestError) as refused:
            [p async for p in conn.search_conversations(too_wide)]
        assert refused.value.code == 400


async def test_an_agent_keeps_seeing_what_it_transferred_away(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    bot = lpm.create_connection(
        account_id=ACC,
        user_type=lpm.UserType.BRAND,
        auth_data={"username": "bot", "password": "bot-password"},
        csds_domain=emulator.csds_domain,
    )
    assert isinstance(bot, lpm.BrandWebsocketConnection)
    async with bot:
        await bot.set_agent_state(lpm.AgentState.ONLINE)
        routing = await bot.create_routing_task_subscription()
        rung = asyncio.ensure_future(routing.wait_for("ring", timeout=10))
        (conv_id,) = await conversations(http, emulator, 1)
        conversation = await (await rung).accept()
        await conversation.transfer(skill_id="12")
    bearer = (await login(http, emulator, "bot"))["bearer"]
    status, body = await post(http, emulator, BY_ID, {"conversationId": conv_id}, bearer)
    assert status == 200 and body["_metadata"]["count"] == 1
    (record,) = body["conversationHistoryRecords"]
    assert [(t["reason"], t["sourceSkillId"], t["targetSkillId"]) for t in record["transfers"]] == [
        ("Skill", 11, 12)
    ]
    assert [p["agentLoginName"] for p in record["agentParticipantsLeave"]] == ["bot"]
    status, body = await post(http, emulator, SEARCH, {**window(), "latestSkillIds": ["11"]}, bearer)
    assert body["_metadata"]["count"] == 0
