"""Group commit: nothing is acknowledged or shown to anyone before it is in the SQLite file.

The store-level tests drive :class:`SqliteStore` on a running event loop; the face-level tests
check from a second SQLite connection (what a restarted emulator would read) that a publish is
on disk the moment its acknowledgement -- or its notification to another party -- arrives, on
both WebSocket APIs and over HTTP.  (``tests/resilience/test_crash_durability.py`` proves the
same with ``kill -9`` of a real process.)
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from lpm.emulator.app import Emulator
from lpm.emulator.persistence import SqliteStore, StoreError
from tests.helpers import RawSocket, login, signup
from tests.security.faces import app_jwt, consumer_jws, send_api
from tests.unit.emulator.test_persistence import ACC, build_world, consumer, count, raw, request, text


def _commits(store: SqliteStore) -> list[str]:
    """Record the COMMIT statements the store's connection runs."""
    seen: list[str] = []
    store._connection().set_trace_callback(lambda sql: seen.append(sql) if sql == "COMMIT" else None)
    return seen


async def test_a_write_is_committed_on_the_next_turn_of_the_loop_without_flush(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite"
    world = build_world()
    world.store = store = SqliteStore(path)
    with store:
        commits = _commits(store)
        cid = world.add_consumer(ACC, "anonymous").consumer_id
        conv = request(world, cid)
        for i in range(20):
            world.publish(consumer(cid), text(conv.conv_id, str(i)))
        # Everything written in this turn of the loop is one batch, not yet committed.
        assert store.pending > 0 and count(path, "events") == 0
        await store.durable()
        assert store.pending == 0 and count(path, "events") == 20
        assert commits == ["COMMIT"], "one transaction for the whole turn"
        # Nobody waiting: the next write is committed all the same, a turn later.
        world.publish(consumer(cid), text(conv.conv_id, "later"))
        await asyncio.sleep(0)
        assert count(path, "events") == 21


async def test_durable_returns_at_once_when_nothing_is_pending(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "w.sqlite") as store:
        commits = _commits(store)
        await asyncio.wait_for(store.durable(), 1)
        assert commits == []


async def test_waiters_of_a_failed_commit_wait_for_the_retry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "w.sqlite"
    world = build_world()
    world.store = store = SqliteStore(path, retry_delay=0.01)
    with store, caplog.at_level(logging.ERROR, logger="lpm.emulator.persistence"):
        with raw(path) as conn:
            conn.execute("ALTER TABLE consumers RENAME TO consumers_away")
        world.add_consumer(ACC, "anonymous")
        waiter = asyncio.ensure_future(store.durable())
        cancelled = asyncio.ensure_future(store.durable())
        await asyncio.sleep(0.05)
        assert not waiter.done(), "not acknowledged: the write is not on disk"
        assert "store flush failed" in caplog.text
        cancelled.cancel()  # a caller that gives up disturbs nobody else
        with raw(path) as conn:
            conn.execute("ALTER TABLE consumers_away RENAME TO consumers")
        await asyncio.wait_for(waiter, 5)
        assert count(path, "consumers") == 1


async def test_closing_with_unwritable_writes_fails_their_waiters(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite"
    world = build_world()
    world.store = store = SqliteStore(path, retry_delay=10)
    with raw(path) as conn:
        conn.execute("ALTER TABLE consumers RENAME TO consumers_away")
    world.add_consumer(ACC, "anonymous")
    waiter = asyncio.ensure_future(store.durable())
    await asyncio.sleep(0.01)
    store.close()
    with pytest.raises(StoreError, match="unwritten"):
        await waiter
    with pytest.raises(StoreError, match="closed"):
        await store.durable()


def test_without_an_event_loop_writes_wait_for_flush(tmp_path: Path) -> None:
    """Scripts and synchronous tests keep the explicit flush()/close() behaviour."""
    path = tmp_path / "w.sqlite"
    world = build_world()
    world.store = store = SqliteStore(path)
    with store:
        world.add_consumer(ACC, "anonymous")
        assert store.pending == 1 and count(path, "consumers") == 0
    assert count(path, "consumers") == 1


def test_synchronous_full_is_accepted_and_other_values_refused(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "w.sqlite", synchronous="FULL") as store:
        assert store._connection().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with pytest.raises(ValueError, match="synchronous"):
        SqliteStore(tmp_path / "v.sqlite", synchronous="OFF")  # type: ignore[arg-type]


# ---------------------------------------------------------------- the faces


def stored(path: Path, dialog_id: str) -> dict[int, str]:
    """The events of a dialog as another process reads the file now: sequence -> message."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT sequence, json_extract(json, '$.event.message') FROM events WHERE dialog_id = ?",
            (dialog_id,),
        ).fetchall()
    return {int(seq): str(message) for seq, message in rows}


async def test_socket_acks_and_notifications_follow_the_commit(tmp_path: Path) -> None:
    db = tmp_path / "world.db"
    async with Emulator(db=db) as emu, aiohttp.ClientSession() as http:
        sock = await RawSocket.consumer(http, emu, await signup(http, emu))
        conv_id = (await sock.request("cm.ConsumerRequestConversation", {"skillId": "-1"}))["body"][
            "conversationId"
        ]
        await sock.request("ms.SubscribeMessagingEvents", {"dialogId": conv_id, "conversationId": conv_id})
        manager = await RawSocket.brand(http, emu, (await login(http, emu))["bearer"])
        await manager.request(".ams.aam.SubscribeExConversations", {"convState": ["OPEN"]})
        for i in range(10):
            # Pipelined: each acknowledgement must find its own message in the file.
            resp = await sock.request("ms.PublishEvent", {"dialogId": conv_id, "event": text_event(f"m{i}")})
            assert stored(db, conv_id).get(resp["body"]["sequence"]) == f"m{i}"
        # Another party's notification (the manager's feed) comes after the commit as well.
        while True:
            note = await manager.notification(".ams.aam.ExConversationChangeNotification")
            if not note["body"]["changes"]:
                continue  # the first snapshot
            last = note["body"]["changes"][0]["result"].get("lastContentEventNotification")
            if last and last["event"]["message"] == "m9":
                assert stored(db, conv_id)[last["sequence"]] == "m9"
                break
        await sock.close()
        await manager.close()


async def test_http_acks_follow_the_commit(tmp_path: Path) -> None:
    db = tmp_path / "world.db"
    async with Emulator(db=db) as emu, aiohttp.ClientSession() as http:
        app = await app_jwt(http, emu)
        jws = await consumer_jws(http, emu, app, "durable-consumer")
        status, body = await send_api(
            http,
            emu,
            app,
            jws,
            [{"kind": "req", "id": "1", "type": "cm.ConsumerRequestConversation", "body": {"skillId": "-1"}}],
            batch=True,
        )
        assert status == 200
        conv_id = body[0]["body"]["conversationId"]
        for i in range(5):
            frame = {"kind": "req", "id": "p", "type": "ms.PublishEvent"}
            frame["body"] = {"dialogId": conv_id, "event": text_event(f"h{i}")}
            status, answer = await send_api(http, emu, app, jws, frame)
            assert status == 200
            assert stored(db, conv_id).get(answer["body"]["sequence"]) == f"h{i}"


def text_event(message: str) -> dict[str, str]:
    return {"type": "ContentEvent", "contentType": "text/plain", "message": message}
