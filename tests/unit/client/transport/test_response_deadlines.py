"""The response deadlines of written requests share one timer (request_pipeline._Deadlines): a
request still unanswered at its deadline times out as with a timer of its own (the ``timeout``
event, RequestTimeoutError), one answered before never does, the timer is armed again for the
earliest deadline left, and closing the pipeline drops it."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import pytest

from lpm.client.options import ConnectionOptions
from lpm.client.transport.request_pipeline import Call, RequestPipeline, _Deadlines
from lpm.errors import RequestTimeoutError
from lpm.protocol import frames
from lpm.protocol.session import Answered, ClientSession


class FakeSocket:
    generation = 1
    can_batch = True

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def send_soon(self, data: bytes, on_unwritten: Any, on_failed: Any) -> None:
        self.frames.append(data)


def pipeline(response_timeout: float, events: list[tuple[str, Any]]) -> RequestPipeline:
    options = SimpleNamespace(response_timeout=response_timeout, request_queue_timeout=60.0)

    def emit(name: str, *args: Any) -> bool:
        events.append((name, args))
        return True

    return RequestPipeline(
        ClientSession(),
        cast(ConnectionOptions, options),
        cast(Any, None),  # no publish here: the conversations are never looked at
        emit=emit,
        has_listeners=lambda _name: False,
        on_write_failed=lambda _sock: None,
    )


def answer(p: RequestPipeline, call: Call, body: Any) -> None:
    text = frames.encode({"kind": "resp", "reqId": call.req_id, "code": 200, "type": "R", "body": body})
    event = p.session.receive_text(text)
    assert isinstance(event, Answered)
    p.answered(event)


async def test_unanswered_request_times_out_and_answered_one_does_not() -> None:
    events: list[tuple[str, Any]] = []
    p = pipeline(0.0, events)
    sock = cast(Any, FakeSocket())
    late, early = p.new_call("GetClock", {}), p.new_call("GetClock", {})
    await p.write(late, sock)
    await p.write(early, sock)
    answer(p, early, {"time": 1})
    assert await cast("asyncio.Future[Any]", early.future) == {"time": 1}
    with pytest.raises(RequestTimeoutError):
        await asyncio.wait_for(p.wait(late), 5)
    assert [name for name, _ in events] == ["timeout"]
    assert late.deadlines is None and early.deadlines is None
    assert p.session.in_flight() == []
    await p.close()


async def test_the_timer_serves_the_earliest_deadline_left() -> None:
    expired: list[Call] = []
    deadlines = _Deadlines(expired.append)
    first, answered, later = Call("a"), Call("b"), Call("c")
    deadlines.add(first, 0.0)
    deadlines.add(answered, 0.0)
    deadlines.add(later, 1000.0)
    answered.cancel_timer()  # answered in time: its entry is gone at once
    assert answered.deadlines is None
    deadlines._fire()
    assert expired == [first]
    assert first.deadlines is None and later.deadlines is deadlines
    # armed again, for the one left
    loop = asyncio.get_running_loop()
    assert deadlines._timer is not None and deadlines._when > loop.time() + 900
    # a shorter deadline than the armed one re-arms the timer earlier
    sooner = Call("d")
    deadlines.add(sooner, 10.0)
    assert deadlines._when < loop.time() + 11
    deadlines.close()
    assert deadlines._timer is None and later.deadlines is None and sooner.deadlines is None
    deadlines._fire()  # nothing left: nothing expires
    assert expired == [first]


async def test_a_failing_expiry_does_not_stop_the_others() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        expired: list[str] = []

        def on_expired(call: Call) -> None:
            expired.append(call.type)
            if call.type == "bad":
                raise RuntimeError("boom")

        deadlines = _Deadlines(on_expired)
        deadlines.add(Call("bad"), 0.0)
        deadlines.add(Call("good"), 0.0)
        deadlines._fire()
        assert expired == ["bad", "good"]
        assert len(reported) == 1 and isinstance(reported[0]["exception"], RuntimeError)
        deadlines.close()
    finally:
        loop.set_exception_handler(None)


async def test_the_policy_of_a_type_is_remembered_but_a_publish_is_asked_each_time() -> None:
    p = pipeline(60.0, [])

    class NoConversations:
        def get(self, _cid: str) -> None:
            return None

        def find_by_dialog(self, _did: str) -> None:
            return None

    p.conversations = cast(Any, NoConversations())
    publish = ".ams.ms.PublishEvent"
    content = {"dialogId": "d", "conversationId": "c", "event": {"type": "ContentEvent", "message": "x"}}
    typing = {"dialogId": "d", "conversationId": "c", "event": {"type": "ChatStateEvent"}}
    policies = [p.new_call(publish, body).policy for body in (content, typing, content, typing)]
    assert [policy.value for policy in policies] == ["reconcile", "replay", "reconcile", "replay"]
    assert [p.new_call("GetClock", {}).policy.value for _ in range(2)] == ["replay", "replay"]
    assert [p.new_call(".ams.cm.UpdateConversationField", {}).policy.value for _ in range(2)] == [
        "fail",
        "fail",
    ]
    await p.close()
