"""A socket's notifications go through SocketDispatcher: the same decoding and routing as
dispatch_notification with a SocketSink (the golden frames of both, compared), the raw events
emitted after decoding and before routing only when asked, a body that is not the documented
shape raises before anything is routed, and types this SDK does not route are ignored (and
remembered as such, boundedly)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lpm.client.dispatch import (
    MAX_NOTIFICATION_TYPES,
    SocketDispatcher,
    SocketSink,
    SubscriptionRouter,
    dispatch_notification,
)
from lpm.protocol import frames
from lpm.protocol.notifications import NotificationError
from lpm.protocol.types import Notif

FRAMES = Path(__file__).resolve().parents[2] / "fixtures" / "frames"
GOLDEN = [
    "brand_ex_conversation_upsert.json",
    "brand_online_event.json",
    "brand_routing_task.json",
    "brand_agent_state.json",
    "consumer_ex_conversation_upsert.json",
    "consumer_messaging_events.json",
]


class Sub:
    def __init__(self, subscription_id: str | None, log: list[tuple[str, Any]]) -> None:
        self.subscription_id = subscription_id
        self.log = log

    def handle_notification(self, payload: Any) -> None:
        self.log.append(("routed", payload))


def inbound(text: str) -> frames.InboundNotification:
    frame = frames.decode_inbound(text)
    assert isinstance(frame, frames.InboundNotification)
    return frame


def setup(body: Any, brand: bool) -> tuple[list[tuple[str, Any]], SubscriptionRouter, dict[str, Any]]:
    log: list[tuple[str, Any]] = []
    router = SubscriptionRouter(call_later=lambda *_a: None, report_error=lambda e: log.append(("error", e)))
    sub_id = body.get("subscriptionId") if isinstance(body, dict) else None
    sub = Sub(sub_id, log)
    router.register_conversation_subscription(sub)  # type: ignore[arg-type]
    router.register_routing_subscription(sub)  # type: ignore[arg-type]
    callbacks = {
        "on_messaging_events": lambda events: log.append(("events", events)),
        "on_agent_state": lambda state: log.append(("agent-state", state)),
    }
    return log, router, callbacks


def plain(entries: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The log with lazily decoded changes read out (comparable)."""
    out = []
    for kind, payload in entries:
        if kind == "routed" and not isinstance(payload, list):
            payload = list(payload)
        if isinstance(payload, list):
            payload = [getattr(p, "materialize", lambda p=p: p)() for p in payload]
        out.append((kind, payload))
    return out


@pytest.mark.parametrize("name", GOLDEN)
def test_routes_as_dispatch_notification(name: str) -> None:
    text = (FRAMES / name).read_text()
    brand = name.startswith("brand")
    body = json.loads(text)["body"]

    log_a, router_a, callbacks_a = setup(body, brand)
    raw: list[tuple[Notif, Any]] = []

    def emit_raw(kind: Notif, frame: frames.InboundNotification) -> None:
        raw.append((kind, frame.body))
        log_a.append(("raw", kind))

    dispatcher = SocketDispatcher(
        router_a, brand=brand, emit_raw=emit_raw, on_invalid_event=lambda e: None, **callbacks_a
    )
    dispatcher.dispatch(inbound(text), True)

    log_b, router_b, callbacks_b = setup(body, brand)
    sink = SocketSink(router_b, **callbacks_b)
    frame = inbound(text)
    dispatch_notification(
        frame.type,
        frame.raw,
        brand=brand,
        sink=sink,
        before_route=lambda kind, _b: log_b.append(("raw", kind)),
    )
    assert plain(log_a) == plain(log_b)
    assert log_a[0][0] == "raw"  # before anything is routed
    assert all(b == body for _, b in raw)

    # without raw listeners: the same routing, no raw event
    log_c, router_c, callbacks_c = setup(body, brand)
    quiet = SocketDispatcher(
        router_c,
        brand=brand,
        emit_raw=lambda *_a: log_c.append(("raw", None)),
        on_invalid_event=lambda e: None,
        **callbacks_c,
    )
    quiet.dispatch(inbound(text), False)
    assert plain(log_c) == [entry for entry in plain(log_b) if entry[0] != "raw"]


def test_a_body_of_the_wrong_shape_raises_before_routing() -> None:
    log, router, callbacks = setup({"subscriptionId": "s"}, True)
    dispatcher = SocketDispatcher(
        router,
        brand=True,
        emit_raw=lambda *_a: log.append(("raw", None)),
        on_invalid_event=lambda e: None,
        **callbacks,
    )
    text = json.dumps(
        {"kind": "notification", "type": ".ams.aam.ExConversationChangeNotification", "body": {"changes": 5}}
    )
    with pytest.raises(NotificationError):
        dispatcher.dispatch(inbound(text), True)
    assert log == []


def test_types_not_routed_are_ignored_and_remembered_boundedly() -> None:
    log, router, callbacks = setup({}, True)
    dispatcher = SocketDispatcher(
        router,
        brand=True,
        emit_raw=lambda *_a: log.append(("raw", None)),
        on_invalid_event=lambda e: None,
        **callbacks,
    )
    for i in range(MAX_NOTIFICATION_TYPES * 3):
        text = json.dumps({"kind": "notification", "type": f"unknown.{i}", "body": {}})
        dispatcher.dispatch(inbound(text), True)
    assert log == []
    assert len(dispatcher._by_type) <= MAX_NOTIFICATION_TYPES
