"""SqliteStore: the emulator's world survives a restart through a real SQLite file."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from lpm.emulator import entities as m
from lpm.emulator.config import DEFAULT_ACCOUNT, default_world
from lpm.emulator.config import populate as populate_world
from lpm.emulator.entities import Actor, AppInstall
from lpm.emulator.persistence import SCHEMA_VERSION, SqliteStore, StoreError
from lpm.emulator.world import World
from lpm.emulator.world_errors import BadRequest
from lpm.protocol import requests as pm
from lpm.protocol.requests import parse_body

ACC = DEFAULT_ACCOUNT
AGENT = Actor(ACC, "agent", "1001")
BOT = Actor(ACC, "agent", "2001")
SURVEY_BOT = Actor(ACC, "agent", "2002")  # the survey bot of skill 12
PEM = "-----BEGIN PRIVATE KEY-----\nnot-a-real-key\n-----END PRIVATE KEY-----\n"


class Clock:
    """A settable clock, so session expiry is deterministic."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def build_world(clock: Clock | None = None, spec_accounts: list[str] | None = None) -> World:
    """A world with the default config, as the emulator builds it before loading the store."""
    world = World(clock=clock or Clock())
    spec = default_world()
    if spec_accounts:
        spec.accounts[0].account_id = spec_accounts[0]
    populate_world(world, spec)
    return world


@contextlib.contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    """A second, independent connection to the store file (what another process would see)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def count(path: Path, table: str) -> int:
    with raw(path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def consumer(cid: str) -> Actor:
    return Actor(ACC, "consumer", cid)


def text(dialog_id: str, message: str) -> pm.PublishEventBody:
    return parse_body(
        pm.PublishEventBody, {"dialogId": dialog_id, "event": {"type": "ContentEvent", "message": message}}
    )


def request(world: World, cid: str, skill: str = "11", features: tuple[str, ...] = ()) -> m.Conversation:
    body = parse_body(pm.ConsumerRequestConversationBody, {"skillId": skill})
    return world.request_conversation(consumer(cid), body, features=features)


def enc(obj: Any) -> bytes:
    return msgspec.json.encode(obj)


def populate(world: World, store: SqliteStore) -> dict[str, Any]:
    """Drive real world operations through the store; return the ids the assertions need."""
    c1 = world.add_consumer(ACC, "anonymous").consumer_id
    world.set_user_profile(consumer(c1), parse_body(pm.SetUserProfileBody, {"firstName": "Ada"}))
    conv1 = request(world, c1)
    world.update_fields(AGENT, conv1.conv_id, [pm.ParticipantsChangeField(type="ADD", role="ASSIGNED_AGENT")])
    for i in range(3):
        world.publish(consumer(c1), text(conv1.conv_id, f"hello {i}"))
    world.publish(AGENT, text(conv1.conv_id, "hi, how can I help?"))
    accept = {"type": "AcceptStatusEvent", "status": "READ", "sequenceList": [0, 1, 2]}
    world.publish(AGENT, parse_body(pm.PublishEventBody, {"dialogId": conv1.conv_id, "event": accept}))
    typing = {"type": "ChatStateEvent", "chatState": "COMPOSING"}
    world.publish(consumer(c1), parse_body(pm.PublishEventBody, {"dialogId": conv1.conv_id, "event": typing}))
    world.update_fields(AGENT, conv1.conv_id, [pm.NoteField(note="VIP")])

    c2 = world.add_consumer(ACC, "anonymous").consumer_id
    conv2 = request(world, c2)
    world.publish(consumer(c2), text(conv2.conv_id, "bye"))
    world.update_fields(consumer(c2), conv2.conv_id, [pm.ConversationStateField(conversationState=m.CLOSE)])

    # Skill 12 has a post-conversation survey: closing MAIN opens a second dialog (its survey bot,
    # 2002, as AGENT).
    c3 = world.add_consumer(ACC, "anonymous").consumer_id
    conv3 = request(world, c3, skill="12", features=("MULTI_DIALOG",))
    world.publish(consumer(c3), text(conv3.conv_id, "support please"))
    world.update_fields(consumer(c3), conv3.conv_id, [pm.ConversationStateField(conversationState=m.CLOSE)])
    survey = conv3.dialogs[1]
    assert survey.dialog_type == m.POST_SURVEY and survey.state == m.OPEN
    world.publish(SURVEY_BOT, text(survey.dialog_id, "How did we do?"))
    world.publish(consumer(c3), text(survey.dialog_id, "great"))

    world.set_agent_state(AGENT, parse_body(pm.SetAgentStateBody, {"availability": "ONLINE"}))
    acc = world.account(ACC)
    session = world.login(ACC, acc.users["1001"], ttl=3600)
    gone = world.login(ACC, acc.users["2001"], ttl=3600)
    world.logout(gone)
    store.app_install_changed(ACC, AppInstall(client_id="lpm-emulator-app", client_secret="rotated"))
    store.app_install_changed(ACC, AppInstall(client_id="extra-app", client_secret="extra-secret"))
    store.set_meta("idp-signing-key", PEM)
    return {
        "c1": c1,
        "c2": c2,
        "c3": c3,
        "conv1": conv1.conv_id,
        "conv2": conv2.conv_id,
        "conv3": conv3.conv_id,
        "survey": survey.dialog_id,
        "bearer": session.bearer,
        "gone": gone.bearer,
    }


def reopen(path: Path, clock: Clock | None = None) -> tuple[World, SqliteStore]:
    world = build_world(clock)
    store = SqliteStore(path)
    store.load_into(world)
    world.store = store
    return world, store


# ---------------------------------------------------------------- round trip


def test_world_survives_a_restart(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="lpm.emulator.persistence")
    path = tmp_path / "w.sqlite"
    clock = Clock()
    before = build_world(clock)
    store = SqliteStore(path)
    before.store = store
    ids = populate(before, store)
    store.close()

    after, store2 = reopen(path, clock)
    try:
        old, new = before.account(ACC), after.account(ACC)
        # Every field of every conversation, dialog and participant came back.
        assert set(new.conversations) == {ids["conv1"], ids["conv2"], ids["conv3"]}
        for conv_id, conv in old.conversations.items():
            assert enc(new.conversations[conv_id]) == enc(conv), conv_id
        conv1 = new.conversations[ids["conv1"]]
        assert conv1.note == "VIP"
        assert conv1.stage == m.OPEN
        assert [(p.id, p.role) for p in conv1.main.participants] == [
            (ids["c1"], m.CONSUMER),
            ("1001", m.ASSIGNED_AGENT),
        ]
        conv2 = new.conversations[ids["conv2"]]
        assert conv2.stage == m.CLOSE and conv2.main.state == m.CLOSE and conv2.close_reason == "CONSUMER"
        conv3 = new.conversations[ids["conv3"]]
        assert [d.state for d in conv3.dialogs] == [m.CLOSE, m.OPEN]

        # Every stored event, in sequence order; the chat-state event was never stored.
        assert set(new.events) == set(old.events)
        for dialog_id, records in old.events.items():
            assert [enc(r) for r in new.events[dialog_id]] == [enc(r) for r in records], dialog_id
        assert [r.sequence for r in new.events[ids["conv1"]]] == [0, 1, 2, 3, 4]
        assert new.events[ids["conv1"]][4].event["type"] == "AcceptStatusEvent"
        assert [r.sequence for r in new.events[ids["survey"]]] == [0, 1]
        assert conv1.main.next_seq == 5
        assert conv1.last_content_event is new.events[ids["conv1"]][3]

        assert new.dialog_index == old.dialog_index
        assert new.dialog_index[ids["survey"]] == ids["conv3"]
        assert new.open_conversation == old.open_conversation
        assert new.open_conversation == {ids["c1"]: ids["conv1"], ids["c3"]: ids["conv3"]}

        assert {k: enc(v) for k, v in new.consumers.items()} == {k: enc(v) for k, v in old.consumers.items()}
        assert new.consumers[ids["c1"]].profile["firstName"] == "Ada"
        assert new.agent_states["1001"].availability == "ONLINE"
        assert new.app_installs["lpm-emulator-app"].client_secret == "rotated"
        assert new.app_installs["extra-app"].client_secret == "extra-secret"

        assert set(after.sessions) == {ids["bearer"]}
        # Struct equality: a ttl given as int comes back as the float the field declares.
        assert after.sessions[ids["bearer"]] == before.sessions[ids["bearer"]]
        assert after.session(ids["bearer"]) is not None
        assert store2.get_meta("idp-signing-key") == PEM
        assert store2.get_meta("missing") is None

        # Sequences continue where they stopped, in MAIN and in the survey dialog.
        assert after.publish(consumer(ids["c1"]), text(ids["conv1"], "still there?")) == 5
        assert after.publish(SURVEY_BOT, text(ids["survey"], "Thanks!")) == 2
        # The open-conversation index is back: one open conversation per consumer...
        with pytest.raises(BadRequest):
            request(after, ids["c1"])
        # ...and a consumer whose conversation closed may open a new one.
        assert request(after, ids["c2"]).stage == m.OPEN
    finally:
        store2.close()

    # What was written after the restart is persisted too.
    third, store3 = reopen(path, clock)
    with store3:
        assert [r.sequence for r in third.account(ACC).events[ids["conv1"]]] == [0, 1, 2, 3, 4, 5]
        assert third.account(ACC).conversations[ids["conv1"]].main.next_seq == 6
        assert ids["c2"] in third.account(ACC).open_conversation

    # Credentials never reach the log.
    for secret in (ids["bearer"], ids["gone"], PEM.splitlines()[1], "rotated", "agent-password"):
        assert secret not in caplog.text


def test_accept_status_event_advances_next_seq_on_disk(tmp_path: Path) -> None:
    """publish() announces the conversation only for content events; the store still saves next_seq."""
    path = tmp_path / "w.sqlite"
    world = build_world()
    world.store = store = SqliteStore(path)
    cid = world.add_consumer(ACC, "anonymous").consumer_id
    conv = request(world, cid)
    world.publish(consumer(cid), text(conv.conv_id, "one"))
    accept = {"type": "AcceptStatusEvent", "status": "ACCEPT", "sequenceList": [0]}
    world.publish(consumer(cid), parse_body(pm.PublishEventBody, {"dialogId": conv.conv_id, "event": accept}))
    store.close()
    with raw(path) as conn:
        stored = conn.execute(
            "SELECT json_extract(json, '$.dialogs[0].next_seq') FROM conversations WHERE conv_id = ?",
            (conv.conv_id,),
        ).fetchone()[0]
    assert stored == 2


def test_next_seq_is_repaired_from_stored_events(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite"
    world = build_world()
    world.store = store = SqliteStore(path)
    cid = world.add_consumer(ACC, "anonymous").consumer_id
    conv = request(world, cid)
    for i in range(3):
        world.publish(consumer(cid), text(conv.conv_id, str(i)))
    store.close()
    # As if a crash had left the conversation row behind its events.
    with raw(path) as conn:
        conn.execute("UPDATE conversations SET json = json_set(json, '$.dialogs[0].next_seq', 1)")

    after, store2 = reopen(path)
    with store2:
        assert after.account(ACC).conversations[conv.conv_id].main.next_seq == 3
        assert after.publish(consumer(cid), text(conv.conv_id, "next")) == 3


def test_expired_and_logged_out_sessions_are_not_restored(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite"
    clock = Clock()
    world = build_world(clock)
    world.store = store = SqliteStore(path)
    user = world.account(ACC).users["1001"]
    short = world.login(ACC, user, ttl=10)
    long = world.login(ACC, user, ttl=1000)
    out = world.login(ACC, user, ttl=1000)
    world.logout(out)
    store.close()
    assert count(path, "sessions") == 2

    clock.now += 60
    after, store2 = reopen(path, clock)
    with store2:
        assert set(after.sessions) == {long.bearer}
        assert short.bearer not in after.sessions
    # The expired row was dropped from the file as well.
    assert count(path, "sessions") == 1


def test_rows_of_unconfigured_accounts_are_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "w.sqlite"
    world = build_world()
    world.store = store = SqliteStore(path)
    populate(world, store)
    store.close()

    other = build_world(spec_accounts=["999"])
    with caplog.at_level(logging.WARNING, logger="lpm.emulator.persistence"), SqliteStore(path) as store2:
        store2.load_into(other)
    acc = other.account("999")
    assert not acc.conversations and not acc.events and not acc.consumers and not other.sessions
    assert "ignoring 3 stored conversations of account 12345678" in caplog.text


# ---------------------------------------------------------------- batching and flushing


def test_writes_are_batched_until_flush(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite"
    world = build_world()
    world.store = store = SqliteStore(path)
    try:
        cid = world.add_consumer(ACC, "anonymous").consumer_id
        conv = request(world, cid)
        for i in range(5):
            world.publish(consumer(cid), text(conv.conv_id, str(i)))
        assert store.pending > 0
        assert count(path, "events") == 0 and count(path, "conversations") == 0

        assert store.flush() is True
        assert store.pending == 0
        assert count(path, "events") == 5
        assert count(path, "conversations") == 1
        assert count(path, "consumers") == 1
        assert store.flush() is True  # nothing pending: a no-op
    finally:
        store.close()


def test_a_full_batch_is_committed_without_flush(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite"
    world = build_world()
    world.store = store = SqliteStore(path, batch_size=3)
    with store:
        for _ in range(3):
            world.add_consumer(ACC, "anonymous")
        assert store.pending == 0
        assert count(path, "consumers") == 3
        world.add_consumer(ACC, "anonymous")
        assert count(path, "consumers") == 3


def test_default_batch_size_commits_every_500_writes(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite"
    world = build_world()
    world.store = store = SqliteStore(path)
    with store:
        cid = world.add_consumer(ACC, "anonymous").consumer_id
        conv = request(world, cid)  # consumer + conversation: 2 writes
        for i in range(600):  # content events: 2 writes each (event + conversation)
            world.publish(consumer(cid), text(conv.conv_id, str(i)))
        assert 0 < store.pending < 500
        assert 0 < count(path, "events") < 600
    assert count(path, "events") == 600


def test_a_failed_flush_keeps_the_writes_for_retry(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "w.sqlite"
    world = build_world()
    world.store = store = SqliteStore(path)
    with store:
        world.add_consumer(ACC, "anonymous")
        with raw(path) as conn:
            conn.execute("ALTER TABLE consumers RENAME TO consumers_away")
        with caplog.at_level(logging.ERROR, logger="lpm.emulator.persistence"):
            assert store.flush() is False
        assert "store flush failed, 1 writes kept for retry" in caplog.text
        assert store.pending == 1
        with raw(path) as conn:
            conn.execute("ALTER TABLE consumers_away RENAME TO consumers")
        assert store.flush() is True
        assert count(path, "consumers") == 1


def test_close_flushes_and_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite"
    world = build_world()
    world.store = store = SqliteStore(path)
    world.add_consumer(ACC, "anonymous")
    store.close()
    store.close()
    assert count(path, "consumers") == 1
    with pytest.raises(StoreError, match="closed"):
        store.get_meta("idp-signing-key")


def test_file_uses_wal_journal(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite"
    with SqliteStore(path):
        pass
    with raw(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(
            SCHEMA_VERSION
        )


# ---------------------------------------------------------------- refusing bad files


def test_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite"
    SqliteStore(path).close()
    with raw(path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="schema version '99'"):
        SqliteStore(path)


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite"
    path.write_bytes(b"this is not a database\n" * 200)
    with pytest.raises(StoreError, match="not a usable emulator store"):
        SqliteStore(path)


def test_another_applications_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    with raw(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    with pytest.raises(StoreError, match="not an emulator store"):
        SqliteStore(path)
    with raw(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"invoices"}


def test_a_corrupt_row_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite"
    world = build_world()
    world.store = store = SqliteStore(path)
    cid = world.add_consumer(ACC, "anonymous").consumer_id
    conv = request(world, cid)
    store.close()
    with raw(path) as conn:
        conn.execute("UPDATE conversations SET json = '{broken'")
    with (
        SqliteStore(path) as store2,
        pytest.raises(StoreError, match=f"corrupt row in conversations \\({conv.conv_id}"),
    ):
        store2.load_into(build_world())


def test_schema_version_key_is_reserved(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "w.sqlite") as store, pytest.raises(ValueError, match="reserved"):
        store.set_meta("schema_version", "2")


def test_meta_values_are_committed_at_once(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite"
    with SqliteStore(path) as store:
        store.set_meta("idp-signing-key", PEM)
        store.set_meta("idp-signing-key", PEM + "x")
        with raw(path) as conn:
            assert (
                conn.execute("SELECT value FROM meta WHERE key = 'idp-signing-key'").fetchone()[0]
                == PEM + "x"
            )
