"""The transports' base (lpm.client.transport.base): "unsupported" is said once, each transport
overrides only what it supports, and the connection owns its webhooks intake."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import lpm
from lpm.client.actions import ConnectionActions
from lpm.client.connection import Connection
from lpm.client.options import ConnectionOptions, validate_options
from lpm.client.subscriptions.webhook_intake import WebhooksIntake, webhooks_intake
from lpm.client.transport.base import TransportConnection, sequence_of
from lpm.client.transport.null import NullConnection
from lpm.errors import InvalidStateError, UnsupportedActionError

ACTIONS = sorted(
    name
    for name, value in vars(ConnectionActions).items()
    if not name.startswith("_") and (inspect.isfunction(value) or isinstance(value, property))
)
#: Arguments that reach each action's refusal (the refusal comes before any I/O).
CALLS: dict[str, tuple[Any, ...]] = {
    "publish_event": ("c", "d", {"type": "ContentEvent"}),
    "update_conversation_field": ("c", [{"field": "ConversationStateField"}, {"field": "TTRField"}]),
    "query_messages": ("c", "d"),
    "subscribe_messaging_events": ("c", "d", 0),
    "subscribe_conversations": ({},),
    "unsubscribe_conversations": ("s",),
    "subscribe_routing_tasks": ({},),
    "unsubscribe_routing_tasks": ("s",),
    "register_conversation_subscription": (object(),),
    "unregister_conversation_subscription": ("s",),
    "register_routing_subscription": (object(),),
    "update_ring_state": ("r", "ACCEPTED"),
    "get_user_profile": (None,),
    "generate_upload_url": (10, "PNG"),
    "generate_download_url": ("/p",),
    "put_file": ("/p", {}, b""),
    "get_file": ("/p", {}),
}
IDENTITY = {"account_id", "is_brand", "agent_id", "user_id", "emit", "has_listeners", "report_error"}


def options(user_type: str = "brand", **extra: Any) -> ConnectionOptions:
    return validate_options(
        ConnectionOptions(account_id="123", user_type=user_type, connection_type="null", **extra)
    )


class Bare(TransportConnection):
    """A transport that supports nothing."""

    transport_name = "a bare connection"
    unsupported_hint = "nothing to send it with"


async def refusal(call: Callable[..., Any], *args: Any) -> UnsupportedActionError:
    with pytest.raises(UnsupportedActionError) as info:
        result = call(*args)
        if inspect.isawaitable(result):
            await result
    return info.value


def test_the_interface_is_the_one_the_table_lists() -> None:
    assert set(ACTIONS) == set(CALLS) | (IDENTITY - {"account_id"})


#: The actions whose arguments the interface packs into one value, and the hook a transport overrides.
PACKED = {"publish_event": "_publish", "query_messages": "_query_messages"}


def test_every_action_is_implemented_once() -> None:
    """The interface's own default refuses (the packed actions through their hook, which refuses);
    the base implements none of them."""
    for name in CALLS:
        assert name not in vars(TransportConnection), name
        assert not inspect.getsource(getattr(ConnectionActions, name)).rstrip().endswith("..."), name
    for hook in PACKED.values():
        assert hook in vars(ConnectionActions) and hook not in vars(TransportConnection), hook


@pytest.mark.parametrize("name", sorted(CALLS))
async def test_every_action_of_the_base_raises_one_typed_error(name: str) -> None:
    conn = Bare(options())
    error = await refusal(getattr(conn, name), *CALLS[name])
    assert isinstance(error, InvalidStateError)
    assert error.transport == "a bare connection"
    assert str(error) == f"cannot {error.action} on a bare connection: nothing to send it with"


async def test_the_refusals_name_what_was_attempted() -> None:
    conn = Bare(options())
    published = await refusal(conn.publish_event, "c", "d", {"type": "RichContentEvent"})
    assert published.action == "publish a RichContentEvent"
    fields = await refusal(conn.update_conversation_field, *CALLS["update_conversation_field"])
    assert fields.action == "update conversation fields (ConversationStateField, TTRField)"
    assert (await refusal(conn.update_ring_state, "r", "ACCEPTED")).action == "answer a ring"


def test_identity_defaults_follow_the_options() -> None:
    assert Bare(options("brand")).is_brand and not Bare(options("consumer")).is_brand
    conn = Bare(options())
    assert conn.agent_id is None and conn.user_id is None


def test_the_base_is_a_connection_that_implements_the_interface() -> None:
    conn: ConnectionActions = Bare(options())  # checked by mypy as well
    assert isinstance(conn, Connection)
    assert issubclass(lpm.WebsocketConnection, Connection)
    for cls in (
        lpm.NullConnection,
        lpm.BrandRestConnection,
        lpm.ConsumerSendApiConnection,
        lpm.ConsumerWebsocketConnection,
    ):
        assert issubclass(cls, TransportConnection), cls


# ---------------------------------------------------------------- what each transport overrides


def overridden(cls: type) -> set[str]:
    """The actions a transport class (or a class between it and the base) implements itself."""
    return {
        name
        for name in CALLS
        for klass in cls.__mro__[: cls.__mro__.index(TransportConnection)]
        if name in vars(klass) or PACKED.get(name) in vars(klass)
    }


def test_null_overrides_nothing() -> None:
    assert overridden(NullConnection) == set()


def test_rest_and_send_api_override_only_what_they_support() -> None:
    files = {"generate_upload_url", "generate_download_url", "put_file", "get_file"}
    assert overridden(lpm.BrandRestConnection) == {
        "publish_event",
        "update_conversation_field",
        "query_messages",
        "subscribe_messaging_events",
        *files,
    }
    assert overridden(lpm.ConsumerSendApiConnection) == {
        "publish_event",
        "update_conversation_field",
        "subscribe_messaging_events",
        "get_user_profile",
        *files,
    }


async def test_null_refusals_keep_their_wording() -> None:
    conn = NullConnection(options())
    error = await refusal(conn.query_messages, "c", "d")
    assert "NULL connection" in str(error) and "webhooks" in str(error)
    assert "lpm.publish_message" in str(error)
    await conn.close()


async def test_consumer_websocket_refuses_brand_only_actions() -> None:
    conn = lpm.create_connection(
        account_id="123", user_type=lpm.UserType.CONSUMER, csds_domain="http://127.0.0.1:1"
    )
    assert isinstance(conn, lpm.ConsumerWebsocketConnection)
    actions: list[Callable[[], Awaitable[Any]]] = [
        lambda: conn.query_messages("c", "d"),
        lambda: conn.subscribe_routing_tasks({}),
        lambda: conn.unsubscribe_routing_tasks("s"),
        lambda: conn.update_ring_state("r", "ACCEPTED"),
    ]
    for action in actions:
        error = await refusal(action)
        assert str(error).endswith("on a consumer connection: only brand connections can")
    await conn.close()


async def test_rest_and_send_api_refusals_name_their_transport() -> None:
    rest = lpm.create_connection(
        account_id="123",
        user_type=lpm.UserType.BRAND,
        connection_type=lpm.ConnectionType.REST,
        token="t",
        csds_domain="http://127.0.0.1:1",
    )
    assert isinstance(rest, lpm.BrandRestConnection)
    error = await refusal(rest.subscribe_conversations, {})
    assert "REST" in str(error) and "webhooks" in str(error)
    send_api = lpm.create_connection(
        account_id="123",
        user_type=lpm.UserType.CONSUMER,
        connection_type=lpm.ConnectionType.SEND_API,
        auth_data={"client_id": "i", "client_secret": "s", "ext_consumer_id": "e"},
        csds_domain="http://127.0.0.1:1",
    )
    assert isinstance(send_api, lpm.ConsumerSendApiConnection)
    error = await refusal(send_api.update_ring_state, "r", "ACCEPTED")
    assert "Send API" in str(error)
    await rest.close()
    await send_api.close()


# ---------------------------------------------------------------- the webhooks intake


async def test_the_connection_owns_its_intake() -> None:
    conn = NullConnection(options(get_all_messages=True))
    assert conn._webhooks_intake is None  # created on first use
    intake = conn.webhooks_intake
    assert isinstance(intake, WebhooksIntake) and conn.webhooks_intake is intake
    assert webhooks_intake(conn) is intake
    # A NULL connection has nothing to load a history with.
    assert conn.conversations.get_all_messages is False
    await conn.close()


async def test_send_api_intake_and_cache_keep_only_its_consumer() -> None:
    conn = lpm.create_connection(
        account_id="123",
        user_type=lpm.UserType.CONSUMER,
        connection_type=lpm.ConnectionType.SEND_API,
        auth_data={"client_id": "i", "client_secret": "s", "ext_consumer_id": "e"},
        csds_domain="http://127.0.0.1:1",
    )
    assert type(conn.webhooks_intake).__name__ == "_OwnConversationsIntake"
    assert type(conn.conversations).__name__ == "_OwnConversationsCache"
    await conn.close()


def test_sequence_of() -> None:
    assert sequence_of({"sequence": 3}) == 3
    assert sequence_of({"sequence": True}) is None
    assert sequence_of({"sequence": "3"}) is None
    assert sequence_of(None) is None


# ---------------------------------------------------------------- layering

CLIENT = Path(lpm.__file__).parent / "client"


def runtime_imports(path: Path) -> tuple[set[str], set[str]]:
    """``(module level, inside functions)`` lpm modules a file imports at run time (imports
    under ``if TYPE_CHECKING:`` are for the type checker only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top: set[str] = set()
    nested: set[str] = set()

    def visit(node: ast.AST, inside: bool) -> None:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lpm"):
            (nested if inside else top).add(node.module)
        elif isinstance(node, ast.Import):
            names = {a.name for a in node.names if a.name.startswith("lpm")}
            (nested if inside else top).update(names)
        inner = inside or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, False)
    return top, nested


def test_layers_import_downwards_only() -> None:
    """The object model imports neither subscriptions, transports nor the connection;
    subscriptions import neither the connection nor transports; the connection no transport."""
    rules = {
        "model": ("lpm.client.subscriptions", "lpm.client.transport", "lpm.client.connection"),
        "subscriptions": ("lpm.client.transport", "lpm.client.connection"),
    }
    for folder, banned in rules.items():
        for path in sorted((CLIENT / folder).glob("*.py")):
            top, nested = runtime_imports(path)
            assert not {m for m in top | nested if m.startswith(banned)}, path.name
    top, nested = runtime_imports(CLIENT / "connection.py")
    assert not {m for m in top | nested if m.startswith("lpm.client.transport")}


@pytest.mark.parametrize(
    "path",
    [
        "connection.py",
        "actions.py",
        "factory.py",
        "transport/base.py",
        "transport/null.py",
        "transport/rest.py",
        "transport/send_api.py",
        "transport/brand.py",
        "transport/consumer.py",
        "subscriptions/webhook_intake.py",
    ],
)
def test_no_import_dodges_a_cycle(path: str) -> None:
    """No lpm import hides inside a function (the way a cycle used to be dodged)."""
    assert runtime_imports(CLIENT / path)[1] == set()
