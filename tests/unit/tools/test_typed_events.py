"""src/lpm/client/typed_events.py is what tools/gen_typed_events.py generates from the event enums,
every event name of every class is typed, and nothing of it exists at run time."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import lpm
from lpm.client import typed_events
from lpm.client.events import EventEmitter

ROOT = Path(__file__).resolve().parents[3]


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_typed_events", ROOT / "tools" / "gen_typed_events.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_typed_events", module)
    spec.loader.exec_module(module)
    return module


def test_typed_events_is_up_to_date() -> None:
    fresh = load_tool().generate()
    committed = (ROOT / "src" / "lpm" / "client" / "typed_events.py").read_text(encoding="utf-8")
    assert fresh == committed, "src/lpm/client/typed_events.py is stale: run python tools/gen_typed_events.py"


def test_every_member_of_every_event_enum_has_a_signature() -> None:
    tool = load_tool()
    tool.check_signatures()  # raises SystemExit naming what is missing
    names = {emitter.name: {event.name for event in emitter.events} for emitter in tool.emitters()}
    assert set(lpm.ConnectionEvent) <= names["ConnectionEmitter"]
    # Bubbled names: the dialog's on its conversation, both on the connection with the prefix.
    assert {"message", "participant-added", "dialog:close", "close"} <= names["ConversationEmitter"]
    assert {"conversation:message", "conversation:close", "conversation:dialog:close"} <= names[
        "ConnectionEmitter"
    ]
    assert {"ring", "limit-break", "token-invalid", "ms.PublishEvent#response"} <= names["ConnectionEmitter"]
    assert "notification-out-of-order" not in {
        n.removeprefix("conversation:") for n in names["ConnectionEmitter"]
    }


def test_emitter_classes_are_the_plain_emitter_at_run_time() -> None:
    for name in typed_events.__all__:
        assert getattr(typed_events, name) is EventEmitter
    for cls in (lpm.Connection, lpm.Conversation, lpm.Dialog, lpm.Participant, lpm.Ring):
        assert EventEmitter in cls.__mro__
        assert "on" not in vars(cls) and "wait_for" not in vars(cls)
