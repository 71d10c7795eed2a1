"""Deterministic regressions for bugs the chaos suite found (each named after the bug)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any, cast

import aiohttp

import lpm
from lpm.client import dispatch
from lpm.client.model import cache as cache_module
from lpm.client.retry import Backoff
from lpm.client.subscriptions.conversations import ConversationSubscription
from lpm.client.transport.request_pipeline import RequestPipeline
from lpm.client.transport.websocket import MAX_RETIRED, WebsocketConnection
from lpm.emulator.app import Emulator
from lpm.errors import ConnectFailedError, RequestError, RequestTimeoutError
from tests.helpers import RawSocket, signup
from tests.integration.test_sdk_resilience import WAIT, brand, consumer, fault, later, start_chat, until
from tests.unit import model_harness as harness


async def control(http: aiohttp.ClientSession, emu: Emulator, path: str, body: dict[str, object]) -> None:
    async with http.post(f"{emu.base_url}/_emulator/{path}", json=body) as resp:
        assert resp.status == 200, await resp.text()


async def test_a_held_request_is_not_processed_once_the_server_closed_the_session(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """A request held by a delay fault used to be processed after the session had been closed
    with 4407 (token expiry): the consumer's reconnect had already re-sent it, so the message
    was stored twice -- and the emulator acted for an identity it had just shut out."""
    consumer = await RawSocket.consumer(http, emulator, await signup(http, emulator))
    conv_id = (await consumer.request("cm.ConsumerRequestConversation", {"skillId": "11"}))["body"][
        "conversationId"
    ]
    await control(http, emulator, "requests", {"count": 1, "action": "delay", "delay": 0.3})
    await consumer.ws.send_json(
        {
            "kind": "req",
            "id": "held",
            "type": "ms.PublishEvent",
            "body": {"dialogId": conv_id, "event": {"type": "ContentEvent", "message": "late"}},
        }
    )
    await asyncio.sleep(0.05)  # the request is being held
    await control(http, emulator, "sockets/close", {"code": 4407, "dialect": "consumer"})
    await asyncio.wait_for(consumer.closed.wait(), 5)
    assert consumer.close_code == 4407
    await asyncio.sleep(0.5)  # well past the delay
    assert emulator.world.accounts[emulator.account_id].events[conv_id] == []
    await consumer.close()


async def _offline(emu: Emulator, dialect: str, conn: Any) -> None:
    """Drop ``dialect``'s socket and keep it from reconnecting (upgrades stalled)."""
    await fault(emu, "upgrades/stall", {"count": 1000})
    disconnected = later(conn.wait_for("disconnect", timeout=WAIT))
    await fault(emu, "sockets/drop", {"dialect": dialect})
    await disconnected


async def _online(emu: Emulator, conn: Any) -> None:
    reconnected = later(conn.wait_for("reconnect", timeout=WAIT))
    await fault(emu, "upgrades/release", {})
    await reconnected


async def test_a_close_the_brand_socket_missed_reaches_the_bots_view(emulator: Emulator) -> None:
    """A conversation that closed while the bot was offline used to stay OPEN in its view for
    good: it only left the bot's OPEN-only feed at the resubscribe snapshot."""
    chat = await start_chat(emulator, {"connect_timeout": 0.2})
    try:
        deleted = later(
            chat.bot.default_subscription.wait_for("conversation-deleted", timeout=WAIT)  # type: ignore[union-attr]
        )
        closed = later(chat.bot_view.wait_for("close", timeout=WAIT))
        await _offline(emulator, "brand", chat.bot)
        await chat.cons_view.close()
        await _online(emulator, chat.bot)
        assert await deleted is chat.bot_view
        await closed
        await until(lambda: chat.bot_view.stage == lpm.ConversationState.CLOSE)
        assert chat.bot_view.state == lpm.ConversationState.CLOSE
        assert chat.bot_events.errors == [] or all(
            isinstance(e, ConnectFailedError) for e in chat.bot_events.errors
        )
    finally:
        await chat.cons.close()
        await chat.bot.close()


async def test_messages_sent_before_a_close_the_consumer_missed_are_delivered(emulator: Emulator) -> None:
    """The consumer's reconnect used to resubscribe open dialogs only: when the conversation had
    closed meanwhile, the messages sent between the disconnect and the close never arrived."""
    chat = await start_chat(emulator, connect_timeout=0.2)
    try:
        await _offline(emulator, "consumer", chat.cons)
        await chat.bot_view.send_message("b one")
        await chat.bot_view.send_message("b two")
        await chat.bot_view.close()
        await _online(emulator, chat.cons)
        await until(lambda: chat.received["consumer"] == ["b one", "b two"])
        await until(lambda: chat.cons_view.stage == lpm.ConversationState.CLOSE)
        assert [m.body for m in chat.cons_view.main_dialog.messages] == ["b one", "b two"]
    finally:
        await chat.cons.close()
        await chat.bot.close()


async def test_history_of_a_new_conversation_survives_a_refused_query(monkeypatch: Any) -> None:
    """A brand connection with ``get_all_messages`` used to announce a conversation without its
    history when the history query failed transiently (a 503, a timeout): the messages sent
    before the bot joined were missing from its view.  The load is now retried."""
    monkeypatch.setattr(cache_module, "PREPARE_RETRY", Backoff((0.01, 0.01)))
    world, _ = harness.make_world()
    fake = harness.FakeConnection(
        brand=True, user_id=harness.pid(world, harness.AGENT), agent_id=harness.AGENT_OLD
    )
    fake.conversations.get_all_messages = True
    link = harness.Link(world, fake)
    link.serve()
    harness.wire_to_world(fake, world, harness.agent())
    real_query = fake.scripts["query_messages"]
    refusals = [RequestError(503, "QueryMessages", "refused"), RequestTimeoutError("QueryMessages", 5.0)]

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if refusals:
            raise refusals.pop(0)
        return real_query(*args, **kwargs)

    fake.scripts["query_messages"] = flaky
    sub = ConversationSubscription(fake, {"stage": "OPEN"})
    await sub.init()
    announced: list[Any] = []
    fake.on("conversation", announced.append)
    alice = harness.new_consumer(world)
    conv = harness.open_conv(world, alice)
    harness.text(world, alice, conv.conv_id, "before the bot")
    await link.flush()
    await harness.settle()
    await until(lambda: bool(announced))
    assert [m.body for m in announced[0].main_dialog.messages] == ["before the bot"]
    assert refusals == [] and fake.errors == []


async def test_history_is_loaded_when_the_bot_joins_a_conversation_it_already_knew(
    emulator: Emulator,
) -> None:
    """A brand connection with ``get_all_messages`` that saw a conversation before taking part
    in it (its feed shows the account's open conversations) could not read its history then
    (refused: not a participant) and did not try again when it joined: the messages sent before
    turned up only at a later reconnect's catch-up, out of order (only the last one was known,
    from the conversation's last content event)."""
    bot = brand(emulator, get_all_messages=True)
    errors: list[BaseException] = []
    bot.on("error", errors.append)
    cons = consumer(emulator)
    try:
        await bot.open()
        await bot.set_agent_state(lpm.AgentState.ONLINE)
        routing = await bot.create_routing_task_subscription()
        await cons.open()
        rung = later(routing.wait_for("ring", timeout=WAIT))
        announced = later(bot.wait_for("conversation", timeout=WAIT))
        conversation = await cons.create_conversation(skill_id="11")
        await conversation.send_message("c one")
        await conversation.send_message("c two")
        view = await announced  # after the history load was tried (and refused: 403)
        assert view.conversation_id == conversation.conversation_id
        assert errors == []  # a history the bot may not read yet is no error (issue 12.6)
        assert [m.body for m in view.main_dialog.messages] in ([], ["c two"])  # no history yet
        ring = await rung
        await ring.accept()
        await until(lambda: [m.body for m in view.main_dialog.messages] == ["c one", "c two"])
        assert errors == []
    finally:
        await cons.close()
        await bot.close()


async def test_message_events_stay_in_order_when_the_bot_joins_and_reconnects(emulator: Emulator) -> None:
    """The bot's ``message`` events once came out as sequences 2, 0, 1.  A brand connection
    with ``get_all_messages`` that accepts a ring for a conversation it had announced already
    loads the history when it joins; a live message arriving before that load was over was
    emitted at once, and when a reconnect's catch-up brought the earlier messages first, they
    were emitted after it.  Live messages are now held while the load is pending, and the
    messages the load (or the catch-up) brings come out ahead of them, each once, in order."""
    bot = brand(emulator, get_all_messages=True)
    cons = consumer(emulator)
    events: list[tuple[int, str]] = []
    bot.on("conversation:message", lambda _c, m: events.append((m.sequence, m.body)))
    real_query = bot.query_messages
    gate = asyncio.Event()
    history_loads = 0

    async def query_messages(conversation_id: str, *args: Any, **kwargs: Any) -> Any:
        # Hold the join's history load (the first query once the bot takes part) until the
        # live message and the reconnect's catch-up are through.
        nonlocal history_loads
        known = bot.get_conversation_by_id(conversation_id)
        if known is not None and known.main_dialog.get_self_participant() is not None and not history_loads:
            history_loads += 1
            await gate.wait()
        return await real_query(conversation_id, *args, **kwargs)

    bot.query_messages = query_messages  # type: ignore[method-assign]
    try:
        await bot.open()
        await bot.set_agent_state(lpm.AgentState.ONLINE)
        routing = await bot.create_routing_task_subscription()
        await cons.open()
        rung = later(routing.wait_for("ring", timeout=WAIT))
        announced = later(bot.wait_for("conversation", timeout=WAIT))
        conversation = await cons.create_conversation(skill_id="11")
        await conversation.send_message("c one")
        # A status takes a sequence and is not a content event: "c two" is not the sequence
        # after the last the bot saw (from the feed's last content event), so the bot's view
        # has a gap before it.
        await conversation.main_dialog.send_read_status([0])
        await conversation.send_message("c two")
        view = await announced  # before the bot takes part: no history (refused)
        # "c one" is announced with the conversation or as a message event, depending on timing
        announced_with = [m.body for m in view.main_dialog.messages]
        await (await rung).accept()
        await until(lambda: view.main_dialog.get_self_participant() is not None)
        await until(lambda: history_loads == 1)  # the join's load is pending
        await conversation.send_message("c three")
        await until(lambda: any(m.body == "c three" for m in view.main_dialog.messages))
        # the reconnect's catch-up fetches "c one" and "c two" while the load still waits
        reconnected = later(bot.wait_for("reconnect", timeout=WAIT))
        await fault(emulator, "sockets/drop", {"dialect": "brand"})
        await reconnected
        await until(lambda: [m.body for m in view.main_dialog.messages] == ["c one", "c two", "c three"])
        gate.set()
        expected = [b for b in ["c one", "c two", "c three"] if b not in announced_with]
        await until(lambda: len(events) == len(expected))
        await asyncio.sleep(0.3)  # a duplicate would arrive now
        assert [body for _, body in events] == expected
        assert [seq for seq, _ in events] == sorted(seq for seq, _ in events)
    finally:
        gate.set()
        await cons.close()
        await bot.close()


async def test_a_catch_up_reaching_before_the_join_does_not_emit_out_of_order(emulator: Emulator) -> None:
    """Without ``get_all_messages`` a bot that joins sees the messages from the join on; a
    reconnect's catch-up (from the first sequence not seen) then brings the ones from before the
    join too.  They used to be emitted after the newer live message: they now join the dialog
    as history, without a ``message`` event."""
    bot = brand(emulator)
    cons = consumer(emulator)
    events: list[str] = []
    bot.on("conversation:message", lambda _c, m: events.append(m.body))
    try:
        await bot.open()
        await bot.set_agent_state(lpm.AgentState.ONLINE)
        routing = await bot.create_routing_task_subscription()
        await cons.open()
        rung = later(routing.wait_for("ring", timeout=WAIT))
        announced = later(bot.wait_for("conversation", timeout=WAIT))
        conversation = await cons.create_conversation(skill_id="11")
        await conversation.send_message("c one")  # the bot sees it as the last content event
        await conversation.main_dialog.send_read_status([0])  # a sequence, not content
        await conversation.send_message("c two")  # not the next sequence: a gap before it
        view = await announced
        announced_with = [m.body for m in view.main_dialog.messages]  # "c one", or not yet
        await (await rung).accept()
        await until(lambda: view.main_dialog.get_self_participant() is not None)
        await conversation.send_message("c three")
        await until(lambda: events[-1:] == ["c three"])
        reconnected = later(bot.wait_for("reconnect", timeout=WAIT))
        await fault(emulator, "sockets/drop", {"dialect": "brand"})
        await reconnected
        await until(lambda: [m.body for m in view.main_dialog.messages] == ["c one", "c two", "c three"])
        await conversation.send_message("c four")
        await until(lambda: events[-1:] == ["c four"])
        # "c one" is emitted before the join when the feed showed it as the last content event
        # (the emulator may fold that notification into the next one); "c two" never is
        assert events in (["c one", "c three", "c four"], ["c three", "c four"])
        assert "c one" not in announced_with or events == ["c three", "c four"]
    finally:
        await cons.close()
        await bot.close()


def test_dead_subscription_ids_are_remembered_within_a_bound() -> None:
    """Every reconnect retires the ids of the subscriptions it replaces (their late notifications
    are no errors); the record of them grew for the connection's whole life."""
    conn = lpm.create_connection(
        account_id="12345678",
        user_type=lpm.UserType.CONSUMER,
        csds_domain="127.0.0.1:1",
        unauth_connector_id="1",
    )
    assert isinstance(conn, WebsocketConnection)
    for i in range(MAX_RETIRED + 500):
        conn.unregister_conversation_subscription(f"sub-{i}")
    router = conn.router
    assert sum(router.is_retired(f"sub-{i}") for i in range(MAX_RETIRED + 500)) == MAX_RETIRED
    assert router.is_retired(f"sub-{MAX_RETIRED + 499}") and not router.is_retired("sub-0")


async def test_a_stalled_closed_conversation_lookup_does_not_hold_up_announcements() -> None:
    """The lookup of conversations that closed while the connection was offline used to run in
    the feed's ordered queue: when its requests went unanswered (dropped, a socket dying again)
    it was retried for many seconds, and every announcement queued behind it waited as long --
    a bot's ``ring.accept()`` timed out on a live socket (long chaos runs: announced 47 s after
    the accept)."""
    world, sched = harness.make_world()
    fake = harness.FakeConnection(brand=True, user_id=harness.pid(world, harness.AGENT))
    link = harness.Link(world, fake)
    link.serve()
    served = fake.scripts["subscribe_conversations"]
    stalled: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def subscribe_conversations(query: dict[str, Any]) -> Any:
        return stalled if query.get("stage") == ["CLOSE"] else served(query)

    fake.scripts["subscribe_conversations"] = subscribe_conversations
    sub = ConversationSubscription(fake, {"stage": ["OPEN"]})
    await sub.init()
    harness.online(world, harness.AGENT)
    alice = harness.new_consumer(world)
    gone = harness.open_conv(world, alice)
    await link.flush()
    view = fake.conversations.get(gone.conv_id)
    assert view is not None

    fake.drop_socket()
    sched.now += 10
    harness.field_update(world, alice, gone, harness.CLOSE)
    link.pending.clear()  # what happened offline never reached the old socket
    # Loaded once its snapshot is applied and announced, without waiting for the lookup.
    await asyncio.wait_for(sub.resubscribe(wait_for_first_notification=True), 5)
    await until(
        lambda: any(c.args[0].get("stage") == ["CLOSE"] for c in fake.called("subscribe_conversations"))
    )

    announced: list[Any] = []
    fake.on("conversation", announced.append)
    newcomer = harness.open_conv(world, harness.new_consumer(world))
    await link.flush()
    assert [c.conversation_id for c in announced] == [newcomer.conv_id]  # not behind the lookup

    stalled.set_result("sub-lookup")  # the lookup's answer comes at last; its snapshot settles it
    await until(lambda: "sub-lookup" in fake.subscriptions)
    fake.deliver_conversations(harness.conversation_body(world, "sub-lookup", [("UPSERT", gone)], brand=True))
    await until(lambda: view.stage == lpm.ConversationState.CLOSE)
    await sub.close()
    assert fake.errors == []


async def test_a_subscription_answered_just_before_its_socket_was_lost_is_made_again(
    emulator: Emulator, monkeypatch: Any
) -> None:
    """A subscribe answer whose socket's loss was read before the subscriber resumed used to be
    taken as made: the subscription counted as live though the server had forgotten it with the
    socket, escaped the loss (only registered subscriptions are marked disconnected) and was never
    renewed.  A consumer's feed so taken missed every change of its next conversation (long chaos
    runs: a conversation with no state notification at all, its close never seen)."""
    cons = consumer(emulator)
    answered = RequestPipeline.answered
    lost: list[str] = []

    def answered_then_lost(self: RequestPipeline, event: Any) -> None:
        answered(self, event)
        if not lost and "SubscribeExConversations" in event.request.type:
            # What the reader does when it reads the answer, the snapshot that follows it and
            # the end of the socket together: the snapshot waits as an orphan (its subscription
            # is not registered yet), then the socket is lost.
            lost.append(event.request.type)
            cons.router.route_conversation_changes(event.response.body["subscriptionId"], [])
            cons._lose_socket(cast(Any, cons._socket), 1006, "lost right after the answer")

    monkeypatch.setattr(RequestPipeline, "answered", answered_then_lost)
    errors: list[BaseException] = []
    cons.on("error", lambda e: errors.append(e) if not isinstance(e, ConnectFailedError) else None)
    await cons.open()  # the first attempt fails with its socket; the next one subscribes again
    assert lost
    feed = cons.default_subscription
    assert feed is not None and feed.state == lpm.SubscriptionState.SUBSCRIBED
    live = [s for s in emulator.ctx.hub.sessions if not s.brand and s.actor and s.actor.id == cons.user_id]
    assert [feed.subscription_id in s.conv_subs for s in live] == [True]
    conversation = await cons.create_conversation(skill_id="11")
    await until(lambda: conversation.notification_count > 0)
    await asyncio.sleep(dispatch.ORPHAN_GRACE + 0.5)  # the refused answer's snapshot is no orphan
    assert errors == []
    await cons.close()


async def test_an_error_reported_after_open_is_not_kept(emulator: Emulator) -> None:
    """A connection used to keep the last error it reported, for good (for open() to name the
    cause it gives up on).  An error's traceback holds the frames it went through, and so the
    dialogs and conversations they worked on: the long chaos run found a conversation held 60 s
    after the faults stopped, through a history load's error that was its connection's last."""

    class Held:
        """Stands for a dialog in a frame the error went through."""

    def fail(_held: Held) -> None:
        raise RuntimeError("reported once the connection is open")

    cons = consumer(emulator)
    await cons.open()
    cons.on("error", lambda _e: None)
    held = Held()
    kept = weakref.ref(held)
    try:
        fail(held)
    except RuntimeError as exc:
        cons.report_error(exc)
    del held
    gc.collect()
    assert kept() is None
    await cons.close()
