"""The sans-I/O client session, driven with frames: one test per replay-policy row and per loss case.

No socket, no event loop: requests are prepared into frames, responses are fed back as text, and
the loss of a socket is a method call -- the way websockets tests its protocol with bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest

from lpm.protocol import frames
from lpm.protocol import requests as pm
from lpm.protocol.session import (
    MAX_CLAIMS,
    Answered,
    ClientSession,
    InvalidFrame,
    LateResponse,
    LossVerdict,
    OutboundRequest,
    Refused,
    ReplayPolicy,
    UnexpectedRequest,
    UnreadableRefusal,
    WaitVerdict,
    body_field,
    landed_sequence,
    published_event,
    replay_policy,
)
from lpm.protocol.types import Dialect, Req, request_wire_name

# ------------------------------------------------------------------------------ helpers


def ids() -> Any:
    counter = iter(range(1, 1_000_000))
    return lambda: f"r{next(counter)}"


def new_session(**kwargs: Any) -> ClientSession:
    return ClientSession(request_ids=ids(), **kwargs)


def publish(
    text: str = "hi", *, event_type: str = "ContentEvent", dialog: str = "d1", **extra: Any
) -> dict[str, Any]:
    event: dict[str, Any] = {"type": event_type}
    if event_type == "ContentEvent":
        event |= {"contentType": "text/plain", "message": text}
    elif event_type == "RichContentEvent":
        event["content"] = {"type": "vertical", "elements": [{"type": "text", "text": text}]}
    elif event_type == "ChatStateEvent":
        event["chatState"] = "COMPOSING"
    elif event_type == "AcceptStatusEvent":
        event |= {"status": "READ", "sequenceList": [1]}
    return {"conversationId": "c1", "dialogId": dialog, "event": event, **extra}


def struct_publish(text: str = "hi", *, event_type: str = "ContentEvent", **extra: Any) -> Any:
    """:func:`publish` as the SDK sends it: a protocol struct around the event dict."""
    body = publish(text, event_type=event_type, **extra)
    audience = body.get("messageAudience", "ALL")
    return pm.publish_event_request(body["conversationId"], body["dialogId"], body["event"], audience)


def request(type_: str | Req, body: Any = None, **kwargs: Any) -> OutboundRequest:
    type_ = str(type_)
    body = {} if body is None else body
    req = OutboundRequest(type_, body, policy=replay_policy(type_, body), **kwargs)
    if req.policy is ReplayPolicy.RECONCILE:
        req.conversation_id = body_field(body, "conversationId")
        req.dialog_id = body_field(body, "dialogId")
    return req


def written(session: ClientSession, req: OutboundRequest) -> dict[str, Any]:
    """Prepare ``req`` on the current socket and return its frame as JSON."""
    frame: dict[str, Any] = json.loads(session.prepare(req, session.generation, 1.0))
    return frame


def response(req_id: str | None, code: int = 200, body: Any = None, type_: str = "GenericResponse") -> str:
    return json.dumps({"kind": "resp", "reqId": req_id, "code": code, "type": type_, "body": body})


@dataclass
class Msg:
    """A dialog message as reconciliation reads it."""

    sequence: int | None
    body: Any = "hi"
    content_type: Any = "text/plain"
    audience: Any = "ALL"
    mine: bool = True

    def sent_by_current_user(self) -> bool:
        return self.mine


# ------------------------------------------------------------------------------ replay policy rows

REPLAYABLE = [
    Req.GET_CLOCK,
    Req.KEEP_ALIVE,
    Req.GET_USER_PROFILE,
    Req.GET_BRAND_PROFILE,
    Req.SET_USER_PROFILE,
    Req.SET_AGENT_STATE,
    Req.SUBSCRIBE_EX_CONVERSATIONS,
    Req.SUBSCRIBE_ROUTING_TASKS,
    Req.SUBSCRIBE_AGENTS_STATE,
    Req.SUBSCRIBE_MESSAGING_EVENTS,
    Req.QUERY_MESSAGES,
    Req.GENERATE_UPLOAD_URL,
    Req.GENERATE_DOWNLOAD_URL,
    Req.GENERATE_DOWNLOAD_TOKEN,
]
UNSAFE = [r for r in Req if r not in REPLAYABLE and r is not Req.PUBLISH_EVENT]


@pytest.mark.parametrize("dialect", list(Dialect))
@pytest.mark.parametrize("req", REPLAYABLE)
def test_reads_subscriptions_and_states_are_replayed(req: Req, dialect: Dialect) -> None:
    assert replay_policy(request_wire_name(req, dialect), {}) is ReplayPolicy.REPLAY


@pytest.mark.parametrize("dialect", list(Dialect))
@pytest.mark.parametrize("req", UNSAFE)
def test_requests_with_effects_fail(req: Req, dialect: Dialect) -> None:
    assert replay_policy(request_wire_name(req, dialect), {}) is ReplayPolicy.FAIL


@pytest.mark.parametrize("dialect", list(Dialect))
@pytest.mark.parametrize("event_type", ["ContentEvent", "RichContentEvent"])
def test_published_content_is_reconciled(event_type: str, dialect: Dialect) -> None:
    wire = request_wire_name(Req.PUBLISH_EVENT, dialect)
    assert replay_policy(wire, publish(event_type=event_type)) is ReplayPolicy.RECONCILE


@pytest.mark.parametrize("event_type", ["ChatStateEvent", "AcceptStatusEvent"])
def test_typing_and_receipts_are_replayed(event_type: str) -> None:
    assert replay_policy("ms.PublishEvent", publish(event_type=event_type)) is ReplayPolicy.REPLAY


@pytest.mark.parametrize("body", [{}, None, "text", {"event": "x"}, {"event": {"type": "SomethingNew"}}])
def test_other_publishes_and_malformed_bodies_fail(body: Any) -> None:
    assert replay_policy("ms.PublishEvent", body) is ReplayPolicy.FAIL


@pytest.mark.parametrize(
    ("event_type", "policy"),
    [
        ("ContentEvent", ReplayPolicy.RECONCILE),
        ("RichContentEvent", ReplayPolicy.RECONCILE),
        ("ChatStateEvent", ReplayPolicy.REPLAY),
        ("AcceptStatusEvent", ReplayPolicy.REPLAY),
        ("SomethingNew", ReplayPolicy.FAIL),
    ],
)
def test_struct_publish_bodies_follow_the_same_rows(event_type: str, policy: ReplayPolicy) -> None:
    assert replay_policy("ms.PublishEvent", struct_publish(event_type=event_type)) is policy


def test_a_struct_event_is_read_as_its_dict() -> None:
    decoded = pm.PublishEventBody(dialogId="d1", event=pm.ChatStateEvent(chatState="COMPOSING"))
    assert published_event(decoded) == {"type": "ChatStateEvent", "chatState": "COMPOSING"}
    assert replay_policy("ms.PublishEvent", decoded) is ReplayPolicy.REPLAY
    assert replay_policy("ms.PublishEvent", pm.GetUserProfileBody()) is ReplayPolicy.FAIL
    assert body_field(pm.GetUserProfileBody(), "dialogId") is None and body_field("text", "dialogId") is None


def test_a_struct_body_is_written_as_the_dict_it_replaces() -> None:
    session = new_session()
    session.socket_opened()
    frame = written(session, request(Req.PUBLISH_EVENT, struct_publish("hello")))
    assert frame["body"] == publish("hello")


def test_unknown_request_types_fail() -> None:
    assert replay_policy("xyz.Whatever", {}) is ReplayPolicy.FAIL


# ------------------------------------------------------------------------------ writing and matching


def test_prepare_gives_an_id_and_registers_it_in_flight() -> None:
    session = new_session()
    generation = session.socket_opened()
    req = request(Req.GET_CLOCK)
    frame = written(session, req)
    assert frame == {"kind": "req", "id": "r1", "type": "GetClock", "body": {}}
    assert (req.req_id, req.generation, req.start) == ("r1", generation, 1.0)
    assert session.in_flight() == [req]


def test_a_body_that_cannot_be_encoded_registers_nothing() -> None:
    session = new_session()
    session.socket_opened()
    req = OutboundRequest("GetClock", {"x": object()})
    with pytest.raises((TypeError, Exception)):
        written(session, req)
    assert session.in_flight() == []


def test_a_success_response_answers_its_request() -> None:
    session = new_session()
    session.socket_opened()
    req = request(Req.GET_CLOCK)
    written(session, req)
    event = session.receive_text(response("r1", body={"currentTime": 5}), now=42.0)
    assert isinstance(event, Answered) and event.request is req and event.response.body == {"currentTime": 5}
    assert session.in_flight() == [] and session.last_received == 42.0


def test_a_raw_answer_request_gets_its_body_as_json_and_its_errors_as_objects() -> None:
    session = new_session()
    session.socket_opened()
    req = request(Req.QUERY_MESSAGES, raw_answer=True)
    written(session, req)
    event = session.receive_text(response("r1", body=[{"sequence": 1}]))
    assert isinstance(event, Answered) and isinstance(event.response.body, msgspec.Raw)
    assert msgspec.json.decode(event.response.body) == [{"sequence": 1}]
    failing = request(Req.QUERY_MESSAGES, raw_answer=True)
    written(session, failing)
    event = session.receive_text(response("r2", code=400, body="no such dialog"))
    assert isinstance(event, Refused) and event.response.body == "no such dialog"


def test_an_error_response_refuses_its_request() -> None:
    session = new_session()
    session.socket_opened()
    req = request(Req.UPDATE_CONVERSATION_FIELD)
    written(session, req)
    event = session.receive_text(response("r1", code=400, body="bad field"))
    assert isinstance(event, Refused) and event.request is req and event.response.code == 400


def test_numeric_request_ids_in_responses_match() -> None:
    session = ClientSession(request_ids=lambda: "7")
    session.socket_opened()
    req = request(Req.GET_CLOCK)
    written(session, req)
    event = session.receive_text('{"kind":"resp","reqId":7,"code":200,"type":"x","body":{}}')
    assert isinstance(event, Answered) and event.request is req


def test_a_response_after_the_deadline_is_late() -> None:
    session = new_session()
    session.socket_opened()
    req = request(Req.GET_CLOCK)
    written(session, req)
    assert session.expire(req) is True
    assert session.expire(req) is False
    assert session.receive_text(response("r1")) == LateResponse("r1")


def test_a_response_to_a_request_given_up_is_late() -> None:
    session = new_session()
    session.socket_opened()
    req = request(Req.GET_CLOCK)
    written(session, req)
    req.settled = True
    assert isinstance(session.receive_text(response("r1")), LateResponse)


def test_a_response_to_an_unknown_id_is_late() -> None:
    assert new_session().receive_text(response("nobody")) == LateResponse("nobody")


def test_a_refusal_without_request_id_is_reported_as_unreadable() -> None:
    event = new_session().receive_text(response(None, code=400, body="malformed"))
    assert isinstance(event, UnreadableRefusal) and event.response.body == "malformed"


def test_notifications_come_out_as_frames() -> None:
    session = new_session()
    event = session.receive_text(
        '{"kind":"notification","type":"ms.MessagingEventNotification","body":{"changes":[]}}'
    )
    # The body stays JSON until read (the typed decoders read the JSON itself).
    assert isinstance(event, frames.InboundNotification) and event.type == "ms.MessagingEventNotification"
    assert bytes(event.raw) == b'{"changes":[]}'
    assert event.body == {"changes": []} and event.body is event.body


@pytest.mark.parametrize(
    "data",
    [
        '{"kind":"resp","reqId":"r1","code":200,"type":"t","body":{"a":[1,{"b":null}]}}',
        '{"kind":"resp","reqId":"r1","code":"OK","type":"t"}',
        '{"kind":"resp","reqId":7,"code":201,"body":"x"}',
        '{"kind":"resp","reqId":null,"code":400,"type":"t","body":"bad"}',
        '{"kind":"resp","reqId":"r1","code":true}',
        '{"kind":"notification","type":"x","body":[1,"two",{"3":4.5}]}',
        '{"kind":"notification","body":{}}',
        '{"kind":"notification","type":7}',
        '{"id":"1","type":"GetClock"}',
        '{"kind":"req","id":"1","type":"GetClock"}',
        '{"kind":"?"}',
        "[]",
        "not json",
        '{"kind":"resp","body":' + "[" * 5000 + "]" * 5000 + "}",
    ],
)
def test_the_client_decoder_reads_every_frame_as_the_reference_decoder(data: str) -> None:
    """decode_inbound only defers a notification's body: every frame means what decode_frame says."""
    try:
        expected: object = frames.decode_frame(data)
    except frames.FrameError as exc:
        expected = ("error", str(exc), exc.req_id)
    try:
        got: object = frames.decode_inbound(data)
    except frames.FrameError as exc:
        got = ("error", str(exc), exc.req_id)
    if isinstance(got, frames.InboundNotification):
        assert isinstance(expected, frames.Notification)
        got = frames.Notification(type=got.type, body=got.body)
    assert got == expected


@pytest.mark.parametrize("data", ["not json", "[]", '{"kind":"resp","code":"x","reqId":"1"}', '{"kind":"?"}'])
def test_invalid_frames_are_reported_not_raised(data: str) -> None:
    event = new_session().receive_text(data)
    assert isinstance(event, InvalidFrame) and event.data == data and event.error


def test_a_request_frame_from_the_server_is_unexpected() -> None:
    event = new_session().receive_text('{"kind":"req","id":"1","type":"GetClock"}')
    assert isinstance(event, UnexpectedRequest)


# ------------------------------------------------------------------------------ loss: one case each


def lose(
    session: ClientSession, *reqs: OutboundRequest, recover: bool = True
) -> list[tuple[OutboundRequest, LossVerdict]]:
    generation = session.generation
    return session.connection_lost(generation, recover=recover)


def test_loss_keeps_a_replayable_request_in_doubt_and_requeues_it_first() -> None:
    session = new_session()
    session.socket_opened()
    lost = request(Req.SUBSCRIBE_EX_CONVERSATIONS)
    written(session, lost)
    assert lose(session) == [(lost, LossVerdict.IN_DOUBT)]
    later = request(Req.GET_CLOCK)
    session.enqueue(later)  # made while disconnected
    session.socket_opened()
    landed, requeued = session.restored(lambda r: None)
    assert landed == [] and requeued == [lost]
    assert [session.dequeue(), session.dequeue(), session.dequeue()] == [lost, later, None]


def test_loss_fails_a_request_whose_repetition_is_unsafe() -> None:
    session = new_session()
    session.socket_opened()
    close = request(Req.UPDATE_CONVERSATION_FIELD, {"conversationId": "c1", "conversationField": []})
    written(session, close)
    assert lose(session) == [(close, LossVerdict.FAIL)]
    assert session.in_doubt() == []


def test_loss_keeps_an_unsafe_request_that_never_left() -> None:
    session = new_session()
    session.socket_opened()
    close = request(Req.UPDATE_CONVERSATION_FIELD, {})
    written(session, close)
    close.unwritten = True  # the write failed: the server never saw it
    assert lose(session) == [(close, LossVerdict.IN_DOUBT)]


def test_loss_fails_a_request_bound_to_the_lost_socket() -> None:
    session = new_session()
    session.socket_opened()
    verify = request(Req.GET_USER_PROFILE, bound=True)
    written(session, verify)
    assert lose(session) == [(verify, LossVerdict.FAIL)]


def test_loss_without_recovery_fails_everything() -> None:
    session = new_session()
    session.socket_opened()
    reqs = [request(Req.GET_CLOCK), request(Req.PUBLISH_EVENT, publish())]
    for req in reqs:
        written(session, req)
    assert lose(session, recover=False) == [(r, LossVerdict.FAIL) for r in reqs]


def test_loss_leaves_requests_of_other_sockets_alone() -> None:
    session = new_session()
    old = session.socket_opened()
    req = request(Req.GET_CLOCK)
    written(session, req)
    session.socket_opened()
    current = request(Req.GET_CLOCK)
    written(session, current)
    assert session.connection_lost(old, recover=True) == [(req, LossVerdict.IN_DOUBT)]
    assert session.in_flight() == [current]


def test_loss_skips_requests_already_settled() -> None:
    session = new_session()
    session.socket_opened()
    req = request(Req.GET_CLOCK)
    written(session, req)
    req.settled = True
    assert lose(session) == []


def test_a_response_on_a_lost_socket_is_late() -> None:
    session = new_session()
    session.socket_opened()
    req = request(Req.GET_CLOCK)
    written(session, req)
    lose(session)
    assert isinstance(session.receive_text(response(req.req_id)), LateResponse)


def test_a_lost_publish_that_landed_is_completed_with_its_sequence_and_not_sent_again() -> None:
    session = new_session()
    session.socket_opened()
    pub = request(Req.PUBLISH_EVENT, publish("hello"), floor=3)
    written(session, pub)
    assert lose(session) == [(pub, LossVerdict.IN_DOUBT)]
    session.socket_opened()
    dialog = [Msg(3, "hello"), Msg(4, "hello")]  # 3 is older than the publish: not it
    landed, requeued = session.restored(lambda r: landed_sequence(r, dialog, session.claimed("d1")))
    assert landed == [(pub, 4)] and requeued == []
    assert session.claimed("d1") == {4}
    assert session.dequeue() is None


def test_a_lost_publish_that_did_not_land_is_sent_again() -> None:
    session = new_session()
    session.socket_opened()
    pub = request(Req.PUBLISH_EVENT, publish("hello"))
    written(session, pub)
    lose(session)
    session.socket_opened()
    landed, requeued = session.restored(lambda r: None)
    assert landed == [] and requeued == [pub]
    assert session.dequeue() is pub


def test_two_identical_lost_publishes_get_two_different_messages() -> None:
    session = new_session()
    session.socket_opened()
    first, second = request(Req.PUBLISH_EVENT, publish("ok")), request(Req.PUBLISH_EVENT, publish("ok"))
    written(session, first)
    written(session, second)
    lose(session)
    session.socket_opened()
    dialog = [Msg(1, "ok"), Msg(2, "ok")]
    landed, _ = session.restored(lambda r: landed_sequence(r, dialog, session.claimed("d1")))
    assert landed == [(first, 1), (second, 2)]


def test_in_doubt_requests_keep_their_order_ahead_of_the_queue() -> None:
    session = new_session()
    session.socket_opened()
    a, b = request(Req.GET_CLOCK), request(Req.QUERY_MESSAGES)
    written(session, a)
    written(session, b)
    queued = request(Req.SET_AGENT_STATE)
    lose(session)
    session.enqueue(queued)
    session.socket_opened()
    session.restored(lambda r: None)
    assert [session.dequeue() for _ in range(3)] == [a, b, queued]


def test_an_in_doubt_request_given_up_is_not_requeued() -> None:
    session = new_session()
    session.socket_opened()
    req = request(Req.GET_CLOCK)
    written(session, req)
    lose(session)
    req.settled = True
    session.socket_opened()
    assert session.restored(lambda r: None) == ([], [])


def test_a_successful_publish_claims_its_sequence() -> None:
    session = new_session()
    session.socket_opened()
    pub = request(Req.PUBLISH_EVENT, publish())
    written(session, pub)
    event = session.receive_text(response(pub.req_id, body={"sequence": 9}))
    assert isinstance(event, Answered)
    assert session.claimed("d1") == {9}


# ------------------------------------------------------------------------------ waiting requests


def test_drain_waiting_tells_never_processed_from_unknown() -> None:
    session = new_session()
    session.socket_opened()
    replayable, pub = request(Req.GET_CLOCK), request(Req.PUBLISH_EVENT, publish())
    written(session, replayable)
    written(session, pub)
    lose(session)
    queued = request(Req.UPDATE_CONVERSATION_FIELD)
    session.enqueue(queued)
    assert session.drain_waiting() == [
        (queued, WaitVerdict.NOT_CONNECTED),
        (replayable, WaitVerdict.NOT_CONNECTED),
        (pub, WaitVerdict.OUTCOME_UNKNOWN),
    ]
    assert session.queued == 0 and session.in_doubt() == []


def test_forget_removes_a_request_wherever_it_is() -> None:
    session = new_session()
    session.socket_opened()
    flying, doubtful, queued = request(Req.GET_CLOCK), request(Req.QUERY_MESSAGES), request(Req.GET_CLOCK)
    written(session, doubtful)
    lose(session)
    session.socket_opened()
    written(session, flying)
    session.enqueue(queued)
    for req in (flying, doubtful, queued):
        session.forget(req)
    assert session.in_flight() == [] and session.in_doubt() == [] and session.queued == 0


def test_dequeue_skips_settled_requests() -> None:
    session = new_session()
    a, b = request(Req.GET_CLOCK), request(Req.GET_CLOCK)
    session.enqueue(a)
    session.enqueue(b)
    a.settled = True
    assert session.dequeue() is b


def test_drain_in_flight_empties_the_table() -> None:
    session = new_session()
    session.socket_opened()
    req = request(Req.GET_CLOCK)
    written(session, req)
    assert session.drain_in_flight() == [req] and session.in_flight() == []


# ------------------------------------------------------------------------------ reconciliation rules


def test_landed_sequence_matches_only_this_users_newer_identical_unclaimed_message() -> None:
    pub = request(Req.PUBLISH_EVENT, publish("hello"), floor=5)
    assert landed_sequence(pub, [Msg(5, "hello")], frozenset()) is None  # not newer
    assert landed_sequence(pub, [Msg(6, "hello", mine=False)], frozenset()) is None  # someone else's
    assert landed_sequence(pub, [Msg(6, "other")], frozenset()) is None  # other text
    assert landed_sequence(pub, [Msg(6, "hello", content_type="text/html")], frozenset()) is None
    assert landed_sequence(pub, [Msg(6, "hello", audience="AGENTS_AND_MANAGERS")], frozenset()) is None
    assert landed_sequence(pub, [Msg(6, "hello")], frozenset({6})) is None  # another request's
    assert landed_sequence(pub, [Msg(None, "hello"), Msg(7, "hello")], frozenset()) == 7


def test_landed_sequence_of_a_struct_publish() -> None:
    pub = request(Req.PUBLISH_EVENT, struct_publish("hello"), floor=5)
    assert (pub.conversation_id, pub.dialog_id) == ("c1", "d1")
    assert landed_sequence(pub, [Msg(5, "hello")], frozenset()) is None  # not newer
    assert landed_sequence(pub, [Msg(6, "hello", audience="AGENTS_AND_MANAGERS")], frozenset()) is None
    assert landed_sequence(pub, [Msg(6, "hello")], frozenset({6})) is None  # another request's
    assert landed_sequence(pub, [Msg(6, "other"), Msg(7, "hello")], frozenset()) == 7
    private = request(Req.PUBLISH_EVENT, struct_publish("psst", messageAudience="AGENTS_AND_MANAGERS"))
    assert landed_sequence(private, [Msg(1, "psst")], frozenset()) is None
    assert landed_sequence(private, [Msg(1, "psst", audience="AGENTS_AND_MANAGERS")], frozenset()) == 1
    rich = request(Req.PUBLISH_EVENT, struct_publish("card", event_type="RichContentEvent"))
    content = rich.body.event["content"]
    assert landed_sequence(rich, [Msg(1, content, content_type="RichContentEvent")], frozenset()) == 1


def test_landed_sequence_reads_audience_and_rich_content() -> None:
    private = request(Req.PUBLISH_EVENT, publish("psst", messageAudience="AGENTS_AND_MANAGERS"))
    assert landed_sequence(private, [Msg(1, "psst", audience="AGENTS_AND_MANAGERS")], frozenset()) == 1
    rich = request(Req.PUBLISH_EVENT, publish("card", event_type="RichContentEvent"))
    content = rich.body["event"]["content"]
    assert landed_sequence(rich, [Msg(1, content, content_type="RichContentEvent")], frozenset()) == 1
    assert landed_sequence(rich, [Msg(1, content)], frozenset()) is None


def test_claims_are_bounded() -> None:
    session = new_session(max_claims=3)
    pub = request(Req.PUBLISH_EVENT, publish())
    for sequence in range(5):
        session.claim(pub, {"sequence": sequence})
    assert session.claimed("d1") == {2, 3, 4}
    assert len(new_session().claimed("d1")) == 0 and MAX_CLAIMS >= 1024


def test_socket_generations_increase_and_reset_the_receive_clock() -> None:
    session = new_session()
    assert session.socket_opened() == 1
    session.receive_text(response("x"), now=3.0)
    assert session.last_received == 3.0
    assert session.socket_opened() == 2
    assert session.last_received is None
