"""Request ids: a counter and a random tail drawn once per session -- unique within a session
(the counter) and across sessions (the tail); and a publish's replay policy from its event."""

from __future__ import annotations

from lpm.protocol.requests import PublishEventRequest
from lpm.protocol.session import (
    ClientSession,
    OutboundRequest,
    ReplayPolicy,
    publish_policy,
    replay_policy,
)


def ids(session: ClientSession, n: int) -> list[str]:
    out = []
    for _ in range(n):
        request = OutboundRequest("GetClock", {})
        session.prepare(request, 1, 0.0)
        out.append(request.req_id)
    return out


def test_ids_are_unique_within_and_across_sessions() -> None:
    first, second = ids(ClientSession(), 1000), ids(ClientSession(), 1000)
    assert len(set(first)) == 1000 and not set(first) & set(second)
    assert first[:3] == [f"{i}{first[0][1:]}" for i in (1, 2, 3)]  # the counter, one tail
    assert all(1 <= len(i) <= 64 for i in first)


def test_publish_policy_is_the_publish_replay_policy() -> None:
    bodies = [
        PublishEventRequest(dialogId="d", conversationId="c", event={"type": "ContentEvent", "message": "x"}),
        PublishEventRequest(dialogId="d", conversationId="c", event={"type": "ChatStateEvent"}),
        PublishEventRequest(dialogId="d", conversationId="c", event={"type": "OtherEvent"}),
        {"dialogId": "d", "event": {"type": "RichContentEvent"}},
        {"dialogId": "d", "event": {"type": "AcceptStatusEvent"}},
        {"dialogId": "d"},
        None,
    ]
    expected = [
        ReplayPolicy.RECONCILE,
        ReplayPolicy.REPLAY,
        ReplayPolicy.FAIL,
        ReplayPolicy.RECONCILE,
        ReplayPolicy.REPLAY,
        ReplayPolicy.FAIL,
        ReplayPolicy.FAIL,
    ]
    for body, policy in zip(bodies, expected, strict=True):
        assert publish_policy(body) is policy
        assert replay_policy(".ams.ms.PublishEvent", body) is policy
        assert replay_policy("ms.PublishEvent", body) is policy
