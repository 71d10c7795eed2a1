"""``lpm.cli.console``: readable messages, the ``/command`` parser and the stdin line reader."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from lpm.cli.console import (
    Command,
    LineReader,
    chat_state_text,
    describe_content,
    describe_quick_replies,
    describe_structured,
    parse_line,
    read_lines,
    read_receipt_moot,
    render_message,
    role_name,
    sender_name,
)

QUICK_REPLIES = {
    "type": "quickReplies",
    "itemsPerRow": 8,
    "replies": [
        {"type": "button", "title": "Yes", "click": {"actions": [{"type": "publishText", "text": "yes"}]}},
        {
            "type": "button",
            "tooltip": "No thanks",
            "click": {"actions": [{"type": "publishText", "text": "no"}]},
        },
    ],
}

CARD = {
    "type": "vertical",
    "elements": [
        {"type": "image", "url": "https://example.com/shoe.png", "caption": "Red shoe"},
        {"type": "text", "text": "Red   shoe,\nsize 42"},
        {
            "type": "horizontal",
            "elements": [
                {
                    "type": "button",
                    "title": "Buy",
                    "click": {"actions": [{"type": "link", "uri": "https://example.com/buy"}]},
                },
                {
                    "type": "button",
                    "title": "Ask",
                    "click": {"actions": [{"type": "publishText", "text": "?"}]},
                },
            ],
        },
        {"type": "map", "lat": 48.85, "lo": 2.35},
        {"type": "gauge", "title": "unknown kind"},
    ],
}


def test_text_and_quick_replies_as_numbered_choices() -> None:
    assert describe_content("hello\nworld") == ["hello", "world"]
    assert describe_quick_replies(QUICK_REPLIES) == ["1) Yes", "2) No thanks"]
    assert describe_content("Shall we?", "text/plain", QUICK_REPLIES) == [
        "Shall we?",
        "1) Yes",
        "2) No thanks",
    ]
    assert describe_quick_replies(None) == [] and describe_quick_replies({"replies": "bad"}) == []


def test_structured_content_flattened_in_order() -> None:
    assert describe_structured(CARD) == [
        "[image] Red shoe (https://example.com/shoe.png)",
        "Red shoe, size 42",
        "[button] Buy -> link https://example.com/buy",
        '[button] Ask -> sends "?"',
        "[map] 48.85,2.35",
        "[gauge] unknown kind",
    ]
    assert describe_content(CARD, "RichContentEvent")[0].startswith("[image]")
    assert describe_structured({}) == ["[structured content]"]
    assert describe_structured({"type": "carousel", "elements": [CARD, CARD]}).count("[map] 48.85,2.35") == 2


def test_files_and_unknown_content_types() -> None:
    body = {"relativePath": "/v1/AUTH_async-images/12345678/abc.png", "fileType": "PNG", "caption": "receipt"}
    assert describe_content(body, "hosted/file") == [
        "[file] PNG receipt (/v1/AUTH_async-images/12345678/abc.png)"
    ]
    no_caption = {"relativePath": "/a/b/c.gif", "fileType": "GIF"}
    assert describe_content(no_caption, "hosted/file") == ["[file] GIF c.gif (/a/b/c.gif)"]
    assert describe_content({"x": 1}, "forms/secure-invitation") == ['[forms/secure-invitation] {"x":1}']
    assert describe_content(None) == [""]


def test_render_message_names_the_sender_and_indents() -> None:
    message: Any = SimpleNamespace(
        body="Pick one",
        content_type="text/plain",
        quick_replies=QUICK_REPLIES,
        originator_role="ASSIGNED_AGENT",
    )
    assert render_message(message) == "agent » Pick one\n  1) Yes\n  2) No thanks"
    assert render_message(message, "Ann").startswith("Ann » Pick one")
    bot: Any = SimpleNamespace(
        body="hi", content_type="text/plain", quick_replies=None, originator_role="BRAND_BOT"
    )
    assert render_message(bot) == "bot » hi"


def test_role_names() -> None:
    assert [role_name(r) for r in ("ASSIGNED_AGENT", "AGENT", "BRAND_BOT", "CONSUMER", "CONTROLLER")] == [
        "agent",
        "agent",
        "bot",
        "consumer",
        "system",
    ]
    assert role_name("NEW_ROLE") == "new_role" and role_name(None) == "someone"


def test_chat_state_lines() -> None:
    assert chat_state_text("agent", "COMPOSING") == "agent is typing…"
    assert chat_state_text("agent", "PAUSE") == "agent stopped typing"
    assert chat_state_text("agent", "ACTIVE") is None


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("hello there", "hello there"),
        ("  padded  ", "padded"),
        ("", ""),
        ("/", "/"),
        ("//not a command", "/not a command"),
        ("/quit", Command("quit", [], "")),
        ("/CSAT 5", Command("csat", ["5"], "5")),
        (
            '/file "my photo.png" caption',
            Command("file", ["my photo.png", "caption"], '"my photo.png" caption'),
        ),
        ("/file it's.png", Command("file", ["it's.png"], "it's.png")),  # unbalanced quote: plain split
    ],
)
def test_parse_line(line: str, expected: Command | str) -> None:
    assert parse_line(line) == expected


async def test_line_reader_on_a_pipe_keeps_the_loop_free() -> None:
    read_fd, write_fd = os.pipe()
    reader = LineReader(read_fd)
    try:
        pending = asyncio.ensure_future(reader.readline())
        # The loop still runs while nothing has been written.
        await asyncio.sleep(0.05)
        assert not pending.done()
        os.write(write_fd, b"first\r\nsec")
        assert await asyncio.wait_for(pending, 5) == "first"
        os.write(write_fd, "ond\nh\xc3".encode("latin-1"))  # a UTF-8 character split across writes
        os.write(write_fd, b"\xa9\nno newline at the end")
        os.close(write_fd)
        lines = [line async for line in reader]
        assert lines == ["second", "hé", "no newline at the end"]
        assert await reader.readline() is None
    finally:
        reader.close()
        os.close(read_fd)


async def test_line_reader_on_a_regular_file_uses_a_thread(tmp_path: Path) -> None:
    path = tmp_path / "input.txt"
    path.write_text("one\ntwo\n")
    with path.open("rb") as handle:
        assert [line async for line in read_lines(handle)] == ["one", "two"]


async def test_closing_the_reader_ends_a_pending_readline() -> None:
    read_fd, write_fd = os.pipe()
    reader = LineReader(read_fd)
    try:
        pending = asyncio.ensure_future(reader.readline())
        await asyncio.sleep(0.01)
        reader.close()
        assert await asyncio.wait_for(pending, 5) is None
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_the_survey_dialog_speaks_through_a_bot() -> None:
    """Issue 12.6: the brand's messages in a POST_SURVEY dialog are the survey bot's."""

    def message(role: str, dialog_type: str) -> Any:
        dialog = SimpleNamespace(
            dialog_type=dialog_type, is_open=True, conversation=SimpleNamespace(stage="OPEN")
        )
        return SimpleNamespace(originator_role=role, dialog=dialog)

    assert sender_name(message("AGENT", "POST_SURVEY")) == "bot"
    assert sender_name(message("ASSIGNED_AGENT", "POST_SURVEY")) == "bot"
    assert sender_name(message("CONSUMER", "POST_SURVEY")) == "consumer"
    assert sender_name(message("AGENT", "MAIN")) == "agent"
    assert sender_name(message("BRAND_BOT", "MAIN")) == "bot"


def test_no_read_receipt_once_the_dialog_or_conversation_closed() -> None:
    def message(dialog_open: bool, stage: str) -> Any:
        conversation = SimpleNamespace(stage=stage)
        return SimpleNamespace(dialog=SimpleNamespace(is_open=dialog_open, conversation=conversation))

    assert read_receipt_moot(message(True, "OPEN")) is False
    assert read_receipt_moot(message(False, "OPEN")) is True
    assert read_receipt_moot(message(True, "CLOSING")) is True
    assert read_receipt_moot(message(True, "CLOSE")) is True
    assert read_receipt_moot(SimpleNamespace()) is True  # detached: nothing to send it to
