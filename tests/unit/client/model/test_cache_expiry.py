"""Cache expiry waits while the session is lost: what the next session's catch-up replays must
still find its conversation (a consumer lost a closed conversation's last messages in the long
chaos run when its conversation left the cache before the replay arrived)."""

from __future__ import annotations

import asyncio

from lpm.client.model.conversation import Conversation
from tests.unit.model_harness import FakeConnection


def _released(conn: FakeConnection, conversation_id: str) -> Conversation:
    conversation = conn.conversations.create_local(conversation_id)
    conn.conversations.adopt(conversation)
    conn.conversations.release(conversation)
    return conversation


async def test_an_expiry_due_while_the_session_is_lost_waits_until_it_is_restored() -> None:
    conn = FakeConnection(brand=False, user_id="consumer-1", cache_duration=0.01)
    cache = conn.conversations
    cache.session_lost()
    conversation = _released(conn, "c1")
    await asyncio.sleep(0.05)
    assert cache.get("c1") is conversation  # due, but the catch-up may still bring its messages
    cache.session_restored()
    assert cache.get("c1") is None


async def test_a_conversation_taken_again_meanwhile_is_not_expired() -> None:
    conn = FakeConnection(brand=False, user_id="consumer-1", cache_duration=0.01)
    cache = conn.conversations
    cache.session_lost()
    conversation = _released(conn, "c1")
    await asyncio.sleep(0.05)
    cache.adopt(conversation)  # the restored feed holds it again
    cache.session_restored()
    assert cache.get("c1") is conversation


async def test_without_a_lost_session_expiry_is_unchanged() -> None:
    conn = FakeConnection(brand=False, user_id="consumer-1", cache_duration=0.01)
    _released(conn, "c1")
    await asyncio.sleep(0.05)
    assert conn.conversations.get("c1") is None
