"""The conversation record, the memory store and store URLs, and the structured log formats."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest

from lpm.bot.coordination import Claim, LocalCoordinator
from lpm.bot.logs import BotLogger, JsonFormatter, TextFormatter
from lpm.bot.records import Record
from lpm.errors import ConfigurationError
from lpm.stores import (
    FileConversationStore,
    MemoryConversationStore,
    RedisConversationStore,
    store_from_url,
)


def test_records_round_trip_and_unreadable_text_is_a_new_record() -> None:
    record = Record(state={"a": [1, 2]}, started=True, done={"d": 3}, surveys=["s"], handled=4, by="r1")
    again = Record.loads(record.dumps())
    assert again == Record(
        state={"a": [1, 2]}, started=True, done={"d": 3}, surveys=["s"], handled=4, by="r1", stored=True
    )
    for text in (None, "", "not json", "[]", json.dumps({"v": 99})):
        assert Record.loads(text) == Record()


def test_state_must_be_json() -> None:
    with pytest.raises(ConfigurationError, match="JSON"):
        Record(state={"x": object()}).dumps()
    with pytest.raises(ConfigurationError, match="JSON"):
        Record(state={"x": math.nan}).dumps()


async def test_memory_store() -> None:
    store = MemoryConversationStore()
    assert await store.get("c") is None
    await store.put("c", "v")
    assert await store.get("c") == "v" and len(store) == 1
    await store.delete("c")
    await store.delete("c")
    assert await store.get("c") is None
    with pytest.raises(ConfigurationError):
        await store.put("c", 1)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        await store.get("")
    await store.close()


def test_store_urls(tmp_path: Path) -> None:
    assert isinstance(store_from_url("memory://"), MemoryConversationStore)
    assert isinstance(store_from_url(f"file://{tmp_path}", prefix="ignored"), FileConversationStore)
    redis = store_from_url("redis://127.0.0.1:6379/0", prefix="p:", ttl=5)
    assert isinstance(redis, RedisConversationStore) and redis.prefix == "p:" and redis.ttl == 5
    with pytest.raises(ConfigurationError, match="memory://"):
        store_from_url("ftp://x")


async def test_the_local_coordinator_owns_everything() -> None:
    local = LocalCoordinator("me")
    assert await local.claim("c") is Claim.ACQUIRED
    assert await local.claim("c") is Claim.MINE
    assert local.owns("other") and await local.claim_ring("r")
    assert await local.orphans(["c"]) == [] and await local.others_alive() == 0
    await local.release("c")
    assert local.owned() == set()


def record(logger: BotLogger, **extra: object) -> logging.LogRecord:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, r: logging.LogRecord) -> None:
            records.append(r)

    handler = Keep()
    logger.logger.addHandler(handler)
    logger.logger.setLevel(logging.INFO)
    try:
        logger.info("hello %s", "world", extra=extra)
    finally:
        logger.logger.removeHandler(handler)
    return records[0]


def test_json_and_text_logs_carry_the_fields() -> None:
    logger = BotLogger(logging.getLogger("lpm.bot.test"), {"bot": "b", "replica": "r1"})
    rec = record(logger.bind(conversation_id="c1"), kind="message")
    out = json.loads(JsonFormatter().format(rec))
    assert out["message"] == "hello world" and out["level"] == "info" and out["logger"] == "lpm.bot.test"
    assert out["bot"] == "b" and out["replica"] == "r1" and out["conversation_id"] == "c1"
    assert out["kind"] == "message" and out["ts"].endswith("Z")
    text = TextFormatter().format(rec)
    assert "hello world [replica=r1 conversation_id=c1 kind=message]" in text
