"""Generate ``src/lpm/client/typed_events.py``: the typed ``on`` / ``once`` / ``off`` / ``wait_for`` /
``events`` of every event emitter class of the SDK.

::

    python tools/gen_typed_events.py           # (re)writes src/lpm/client/typed_events.py
    python tools/gen_typed_events.py --check   # exit 1 when the file is not current

Each class names its events once, in its event enum (``lpm.ConnectionEvent``, ``ConversationEvent``,
``DialogEvent``...).  This tool reads those enums and gives each member the arguments its handlers
receive (:data:`SIGNATURES`, the one place they are written); a member without arguments here, or
arguments for a name that is no member, stops the tool.  Bubbled names are derived the way the
object model bubbles them: a dialog's events on its conversation under the same name, the
conversation's on the connection as ``conversation:<name>`` with the conversation first.

The output declares, for each emitter class, ``typing.overload``\\ s with ``Literal`` event names
(the wire string and the enum member), grouped by handler signature, under ``if TYPE_CHECKING:``;
at run time every generated name is :class:`lpm.client.events.EventEmitter` itself, so nothing is
added to the hot path.  ``tests/unit/tools/test_typed_events.py`` fails when the file is stale.
"""

from __future__ import annotations

import argparse
import enum
import subprocess
import sys
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from lpm.client.auth.tokens import TokenEvent  # noqa: E402
from lpm.client.model.conversation import ConversationEvent  # noqa: E402
from lpm.client.model.dialog import DialogEvent  # noqa: E402
from lpm.client.model.participant import ParticipantEvent  # noqa: E402
from lpm.client.shift_status import ShiftStatusEvent  # noqa: E402
from lpm.client.subscriptions.conversations import SubscriptionEvent  # noqa: E402
from lpm.client.subscriptions.routing import RingEvent, RoutingEvent  # noqa: E402
from lpm.client.subscriptions.webhook_intake import IntakeEvent  # noqa: E402
from lpm.client.transport.brand import MAINTAINER_EVENTS  # noqa: E402
from lpm.enums import ConnectionEvent  # noqa: E402
from lpm.protocol.types import Req  # noqa: E402

OUT = ROOT / "src" / "lpm" / "client" / "typed_events.py"
LINE = 110

#: Where each name used in a signature (or an enum) is imported from, in the generated module.
IMPORTS: dict[str, str] = {
    "Any": "typing",
    "AgentStateInfo": "lpm.protocol.notifications",
    "ConversationChange": "lpm.protocol.notifications",
    "ConversationInfo": "lpm.protocol.notifications",
    "DialogInfo": "lpm.protocol.notifications",
    "MessagingEventInfo": "lpm.protocol.notifications",
    "RoutingTaskInfo": "lpm.protocol.notifications",
    "RequestTimeoutError": "lpm.errors",
    "AgentTokenInfo": "lpm.client.events",
    "CloseInfo": "lpm.client.events",
    "RequestEventInfo": "lpm.client.events",
    "ResponseEventInfo": "lpm.client.events",
    "StartInfo": "lpm.client.events",
    "TimingInfo": "lpm.client.events",
    "TokenInvalidInfo": "lpm.client.events",
    "WaitInfo": "lpm.client.events",
    "Conversation": "lpm.client.model.conversation",
    "ConversationEvent": "lpm.client.model.conversation",
    "Dialog": "lpm.client.model.dialog",
    "DialogEvent": "lpm.client.model.dialog",
    "Message": "lpm.client.model.message",
    "Participant": "lpm.client.model.participant",
    "ParticipantEvent": "lpm.client.model.participant",
    "LimitBreak": "lpm.client.subscriptions.conversations",
    "SubscriptionEvent": "lpm.client.subscriptions.conversations",
    "Ring": "lpm.client.subscriptions.routing",
    "RingEvent": "lpm.client.subscriptions.routing",
    "RoutingEvent": "lpm.client.subscriptions.routing",
    "IntakeEvent": "lpm.client.subscriptions.webhook_intake",
    "ShiftStatusEvent": "lpm.client.shift_status",
    "TokenEvent": "lpm.client.auth.tokens",
    "ConnectionEvent": "lpm.enums",
}

Args = tuple[str, ...]

#: The arguments each event's handlers receive, per enum member: the one place they are written
#: (the enums name the events; the docstrings of the classes describe them).  Pairs, not a dict:
#: members of two StrEnums with the same value are equal (``ConnectionEvent.CLOSE ==
#: ConversationEvent.CLOSE``).
SIGNATURES: tuple[tuple[enum.StrEnum, Args], ...] = (
    # lpm.ConnectionEvent
    (ConnectionEvent.ERROR, ("BaseException",)),
    (ConnectionEvent.STATE, ("str",)),
    (ConnectionEvent.CONNECT, ()),
    (ConnectionEvent.RECONNECT, ()),
    (ConnectionEvent.DISCONNECT, ("CloseInfo",)),
    (ConnectionEvent.CLOSE, ("CloseInfo",)),
    (ConnectionEvent.READY, ()),
    (ConnectionEvent.RECONNECT_WAIT, ("WaitInfo",)),
    (ConnectionEvent.CONNECT_REQUEST, ("StartInfo",)),
    (ConnectionEvent.CONNECT_RESPONSE, ("TimingInfo",)),
    (ConnectionEvent.TIMEOUT, ("RequestTimeoutError",)),
    # Raw notifications: every one's type and body exactly as received (any JSON), then the body
    # (a JSON object) of each kind the SDK routes, once decoded.
    (ConnectionEvent.NOTIFICATION, ("str", "Any")),
    (ConnectionEvent.CONVERSATION_NOTIFICATION, ("dict[str, Any]",)),
    (ConnectionEvent.MESSAGE_NOTIFICATION, ("dict[str, Any]",)),
    (ConnectionEvent.ROUTING_TASK_NOTIFICATION, ("dict[str, Any]",)),
    (ConnectionEvent.AGENT_STATE, ("AgentStateInfo",)),
    (ConnectionEvent.CONVERSATION, ("Conversation",)),
    # Conversation
    (ConversationEvent.GROUP_CHANGE, ("str | None", "str | None")),
    (ConversationEvent.SKILL_CHANGE, ("str", "str")),
    (ConversationEvent.CLOSE, ()),
    (ConversationEvent.DIALOG, ("Dialog",)),
    (ConversationEvent.TTR_CHANGE, ("str | None", "int | None", "int | None")),
    (ConversationEvent.MANUAL_ETTR_CHANGE, ("int | None", "int | None")),
    (ConversationEvent.DIALOG_CLOSE, ("Dialog",)),
    (ConversationEvent.NOTIFICATION, ("ConversationInfo",)),
    (ConversationEvent.NOTIFICATION_IGNORED, ("ConversationInfo",)),
    (ConversationEvent.NOTIFICATION_OUT_OF_ORDER, ("ConversationInfo",)),
    (ConversationEvent.MESSAGING_EVENT, ("MessagingEventInfo",)),
    # Dialog
    (DialogEvent.PARTICIPANT_ADDED, ("Participant", "bool")),
    (DialogEvent.PARTICIPANT_SUGGESTED, ("Participant",)),
    (DialogEvent.TRANSFER_AGENT, ("Participant",)),
    (DialogEvent.PARTICIPANT_REMOVED, ("Participant",)),
    (DialogEvent.PARTICIPANT_SUGGESTED_REMOVED, ("Participant",)),
    (DialogEvent.BACK_TO_QUEUE, ()),
    (DialogEvent.TRANSFER_SKILL, ("str | None",)),
    (DialogEvent.MESSAGE, ("Message",)),
    (DialogEvent.MESSAGE_DELIVERY_EVENT, ("list[Message]",)),
    (DialogEvent.CLOSE, ("Dialog",)),
    (DialogEvent.NOTIFICATION_OUT_OF_ORDER, ("DialogInfo",)),
    # Participant: the new role, state or chat state.
    (ParticipantEvent.ROLE_CHANGE, ("str",)),
    (ParticipantEvent.STATE_CHANGE, ("str",)),
    (ParticipantEvent.CHAT_STATE_CHANGE, ("str",)),
    # Ring: the ring itself.
    (RingEvent.ACCEPTED, ("Ring",)),
    (RingEvent.REJECTED, ("Ring",)),
    (RingEvent.CANCELLED, ("Ring",)),
    (RingEvent.EXPIRED, ("Ring",)),
    # RoutingTaskSubscription
    (RoutingEvent.RING, ("Ring",)),
    (RoutingEvent.UPSERT, ("RoutingTaskInfo",)),
    (RoutingEvent.NOTIFICATION, ("list[tuple[str, RoutingTaskInfo]]",)),
    # ConversationSubscription
    (SubscriptionEvent.CONVERSATION, ("Conversation",)),
    (SubscriptionEvent.UPSERT, ("Conversation",)),
    (SubscriptionEvent.DELETE, ("Conversation",)),
    (SubscriptionEvent.CONVERSATION_DELETED, ("Conversation",)),
    (SubscriptionEvent.NOTIFICATION, ("list[ConversationChange]",)),
    (SubscriptionEvent.LIMIT_BREAK, ("LimitBreak",)),
    # Token maintainers
    (TokenEvent.ERROR, ("BaseException",)),
    (TokenEvent.REFRESH_TOKEN, ("AgentTokenInfo",)),
    (TokenEvent.TOKEN_INVALID, ("TokenInvalidInfo",)),
    (TokenEvent.TOKEN_REGENERATED, ("AgentTokenInfo",)),
    (TokenEvent.GENERATE_TOKEN_WAIT, ("WaitInfo",)),
    (TokenEvent.GET_AGENT_TOKEN_REQUEST, ("StartInfo",)),
    (TokenEvent.GET_AGENT_TOKEN_RESPONSE, ("TimingInfo",)),
    # WebhooksIntake
    (IntakeEvent.CONVERSATION, ("Conversation",)),
    (IntakeEvent.UPSERT, ("Conversation",)),
    (IntakeEvent.DELETE, ("Conversation",)),
    (IntakeEvent.NOTIFICATION, ("list[ConversationChange]",)),
    # ShiftStatusPoller (``poll_shift_status=True``): times in epoch ms, items as received.
    (ShiftStatusEvent.REQUEST, ("dict[str, int]",)),
    (ShiftStatusEvent.RESPONSE, ("dict[str, int]",)),
    (ShiftStatusEvent.ERROR, ("BaseException",)),
    (ShiftStatusEvent.DATA, ("list[dict[str, Any]]",)),
    (ShiftStatusEvent.SKILL_ENTERED_WORK_HOURS, ("dict[str, Any]",)),
    (ShiftStatusEvent.SKILL_ENTERED_OFF_HOURS, ("dict[str, Any]",)),
)


def _key(member: enum.StrEnum) -> tuple[type[enum.StrEnum], str]:
    return type(member), member.name


_ARGS: dict[tuple[type[enum.StrEnum], str], Args] = {_key(m): args for m, args in SIGNATURES}

#: The dialog events that bubble (to the conversation, then the connection).
DIALOG_BUBBLED = tuple(
    e for e in DialogEvent if e not in (DialogEvent.CLOSE, DialogEvent.NOTIFICATION_OUT_OF_ORDER)
)
#: The conversation's own events that bubble to the connection.
CONVERSATION_BUBBLED = (
    ConversationEvent.GROUP_CHANGE,
    ConversationEvent.SKILL_CHANGE,
    ConversationEvent.CLOSE,
    ConversationEvent.DIALOG,
    ConversationEvent.TTR_CHANGE,
    ConversationEvent.MANUAL_ETTR_CHANGE,
    ConversationEvent.DIALOG_CLOSE,
)
#: The connection's prefix of bubbled conversation events.
PREFIX = "conversation:"
#: Events the consumer connections emit that no enum names (the IdP's token requests).
CONSUMER_TOKEN_EVENTS: tuple[tuple[str, Args], ...] = (
    ("getConsumerToken#request", ("StartInfo",)),
    ("getConsumerToken#response", ("TimingInfo",)),
)


@dataclass
class Event:
    """One event name of one class: its wire string, the enum members spelling it, its arguments."""

    name: str
    members: list[str]
    args: Args


@dataclass
class Emitter:
    """One generated class: its name, what it types, and its events."""

    name: str
    doc: str
    events: list[Event] = field(default_factory=list)

    def add(self, name: str, args: Args, members: Iterable[str] = ()) -> None:
        for event in self.events:
            if event.name == name:
                if event.args != args:
                    raise SystemExit(f"{self.name}: {name!r} has two signatures: {event.args} and {args}")
                event.members.extend(m for m in members if m not in event.members)
                return
        self.events.append(Event(name, list(members), args))

    def add_members(self, members: Iterable[enum.StrEnum], prefix: str = "", first: Args = ()) -> None:
        for member in members:
            refs = [] if prefix else [f"{type(member).__name__}.{member.name}"]
            self.add(prefix + member.value, first + _ARGS[_key(member)], refs)


def check_signatures() -> None:
    """Every member of every event enum has a signature, and every signature a member."""
    enums: tuple[type[enum.StrEnum], ...] = (
        ConnectionEvent,
        ConversationEvent,
        DialogEvent,
        ParticipantEvent,
        RingEvent,
        RoutingEvent,
        SubscriptionEvent,
        TokenEvent,
        IntakeEvent,
        ShiftStatusEvent,
    )
    members = {_key(m) for e in enums for m in e}
    missing = sorted(f"{e.__name__}.{name}" for e, name in members - _ARGS.keys())
    extra = sorted(f"{e.__name__}.{name}" for e, name in _ARGS.keys() - members)
    if missing or extra or len(_ARGS) != len(SIGNATURES):
        raise SystemExit(f"tools/gen_typed_events.py SIGNATURES: missing {missing}, not members {extra}")


def emitters() -> list[Emitter]:
    check_signatures()
    dialog = Emitter("DialogEmitter", "The events of a :class:`~lpm.Dialog`.")
    dialog.add_members(DialogEvent)

    conversation = Emitter(
        "ConversationEmitter",
        "The events of a :class:`~lpm.Conversation`: its own, and its dialogs' bubbled ones.",
    )
    conversation.add_members(ConversationEvent)
    conversation.add_members(DIALOG_BUBBLED)

    connection = Emitter(
        "ConnectionEmitter",
        "The events of every connection class: its own, its conversations' as ``conversation:<name>``"
        " (conversation first), rings, token upkeep, and ``<type>#request`` / ``<type>#response``.",
    )
    connection.add_members(ConnectionEvent)
    for member in (*CONVERSATION_BUBBLED, *DIALOG_BUBBLED):
        connection.add_members((member,), prefix=PREFIX, first=("Conversation",))
    connection.add_members((RoutingEvent.RING, SubscriptionEvent.CONVERSATION, SubscriptionEvent.LIMIT_BREAK))
    connection.add_members(TokenEvent(name) for name in MAINTAINER_EVENTS)
    # The poller's answers and errors are re-emitted on the connection, with the skill events.
    connection.add_members(
        (
            ShiftStatusEvent.RESPONSE,
            ShiftStatusEvent.ERROR,
            ShiftStatusEvent.SKILL_ENTERED_WORK_HOURS,
            ShiftStatusEvent.SKILL_ENTERED_OFF_HOURS,
        )
    )
    for name, args in CONSUMER_TOKEN_EVENTS:
        connection.add(name, args)
    for req in Req:
        connection.add(f"{req.value}#request", ("RequestEventInfo",))
        connection.add(f"{req.value}#response", ("ResponseEventInfo",))

    participant = Emitter("ParticipantEmitter", "The events of a :class:`~lpm.Participant`.")
    participant.add_members(ParticipantEvent)
    ring = Emitter("RingEmitter", "The events of a :class:`~lpm.Ring`.")
    ring.add_members(RingEvent)
    routing = Emitter("RoutingEmitter", "The events of a :class:`~lpm.RoutingTaskSubscription`.")
    routing.add_members(RoutingEvent)
    subscription = Emitter(
        "SubscriptionEmitter", "The events of a :class:`~lpm.ConversationSubscription` (and its child pages)."
    )
    subscription.add_members(SubscriptionEvent)
    token = Emitter("TokenEmitter", "The events of the token maintainers.")
    token.add_members(TokenEvent)
    intake = Emitter("IntakeEmitter", "The events of the webhooks intake (``connection.webhooks_intake``).")
    intake.add_members(IntakeEvent)
    shift_status = Emitter("ShiftStatusEmitter", "The events of the skill shift-status poller.")
    shift_status.add_members(ShiftStatusEvent)
    emitters = [connection, conversation, dialog, participant, ring, routing, subscription, token, intake]
    return [*emitters, shift_status]


# ---------------------------------------------------------------- rendering


def _payload(args: Args) -> str:
    """What ``wait_for`` returns for these arguments (see ``lpm.client.events._payload``)."""
    if not args:
        return "None"
    if len(args) == 1:
        return args[0]
    return f"tuple[{', '.join(args)}]"


def _callable(args: Args, result: str) -> str:
    return f"Callable[[{', '.join(args)}], {result}]"


def _literal(values: Sequence[str], indent: str) -> str:
    """``Literal[...]`` on one line, or one value a line (as ruff formats it)."""
    one_line = f"Literal[{', '.join(values)}]"
    if len(indent) + len(one_line) + 30 <= LINE:
        return one_line
    inner = indent + "    "
    return "Literal[\n" + "".join(f"{inner}{v},\n" for v in values) + f"{indent}]"


def _def(indent: str, head: str, params: Sequence[str], result: str, comment: str = "") -> list[str]:
    """A ``def`` stub, its parameters one a line (a magic trailing comma keeps ruff's layout)."""
    lines = [f"{indent}{head}({comment}"]
    lines += [f"{indent}    {p}," for p in params]
    lines.append(f"{indent}) -> {result}: ...")
    return lines


class Renderer:
    def __init__(self) -> None:
        #: Signature -> name of the TypeVar bound to its handlers (decorators keep the function's type).
        self.typevars: dict[Args, str] = {}
        self.names: set[str] = {"Callable", "AsyncIterator", "Literal", "TypeVar", "overload", "Any"}

    def typevar(self, args: Args) -> str:
        if args not in self.typevars:
            self.typevars[args] = f"_F{len(self.typevars)}"
        return self.typevars[args]

    def use(self, types: Iterable[str]) -> None:
        for text in types:
            for token in text.replace("[", " ").replace("]", " ").replace(",", " ").replace("|", " ").split():
                if token in IMPORTS:
                    self.names.add(token)

    def emitter(self, emitter: Emitter) -> list[str]:
        groups: dict[Args, list[Event]] = {}
        for event in emitter.events:
            groups.setdefault(event.args, []).append(event)
        prefix = f"_{emitter.name.removesuffix('Emitter')}"
        aliases: list[str] = []
        variants: dict[str, list[tuple[tuple[str, ...], str]]] = {m: [] for m in IMPLEMENTATIONS}
        for n, (args, events) in enumerate(groups.items()):
            alias = f"{prefix}{n}"
            values = [f'"{e.name}"' for e in events] + [m for e in events for m in e.members]
            self.use(m.split(".")[0] for e in events for m in e.members)
            self.use(args)
            aliases.append(f"    {alias} = {_literal(values, '    ')}")
            fn = self.typevar(args)
            handler = _callable(args, "_R")
            variants["on"].append(((f"name: {alias}", f"handler: {handler}"), handler))
            variants["on"].append(((f"name: {alias}", "handler: None = None"), f"Callable[[{fn}], {fn}]"))
            check = f"check: {_callable(args, 'bool')} | None = None"
            variants["wait_for"].append(
                ((f"name: {alias}", check, "timeout: float | None = None"), _payload(args))
            )
            variants["events"].append(
                ((f"name: {alias}", "*", "maxsize: int = 0"), f"AsyncIterator[{_payload(args)}]")
            )
        names = f"{prefix}Name"
        aliases.append(f"    {names} = {' | '.join(f'{prefix}{n}' for n in range(len(groups)))}")
        ind = "        "
        doc = textwrap.wrap(emitter.doc, LINE - 12)
        out = [*aliases, "", f"    class {emitter.name}(EventEmitter):"]
        out += [f'{ind}"""{doc[0]}', *(f"{ind}{line}" for line in doc[1:])]
        out[-1] += '"""'
        out += ["", f"{ind}__slots__ = ()", ""]
        # The overloads narrow the base's ``name: str`` on purpose: hence ``ignore[override]``.
        for method, (impl_params, impl_result) in IMPLEMENTATIONS.items():
            head = f"async def {method}" if method == "wait_for" else f"def {method}"
            if len(variants[method]) == 1:
                params, result = variants[method][0]
                out += _def(ind, head, ("self", *params), result, IGNORE)
            else:
                for i, (params, result) in enumerate(variants[method]):
                    out.append(f"{ind}@overload{IGNORE if i == 0 else ''}")
                    out += _def(ind, head, ("self", *params), result)
                out += _def(ind, head, ("self", *impl_params), impl_result)
            out.append("")
            if method == "on":
                # ``once`` takes what ``on`` takes: an alias, which mypy reads as the same overloads
                # (narrower than the base's, as ``on``'s are: hence ``ignore[assignment]``).
                out += [f"{ind}once = on  # type: ignore[assignment]", ""]
        off = (f"name: {names}", "handler: Callable[..., object] | None = None")
        return out + _def(ind, "def off", ("self", *off), "None", IGNORE)


IGNORE = "  # type: ignore[override]"
#: The implementation signature closing each method's overloads (``mypy`` wants one).
IMPLEMENTATIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "on": (("name: str", "handler: Any = None"), "Any"),
    "wait_for": (("name: str", "check: Any = None", "timeout: float | None = None"), "Any"),
    "events": (("name: str", "*", "maxsize: int = 0"), "AsyncIterator[Any]"),
}


HEADER = '''"""Typed event methods of the SDK's emitter classes (generated by tools/gen_typed_events.py from
the event enums; do not edit: run ``python tools/gen_typed_events.py``).

Each ``<Name>Emitter`` declares, for ``mypy``, the ``on`` / ``once`` / ``wait_for`` / ``events`` /
``off`` of one class with ``Literal`` event names (the wire string or the enum member) and the
arguments the handlers receive: a misspelled event name, a handler with the wrong parameters or a
``wait_for`` result used as the wrong type is a type error, and ``@obj.on(name)`` returns the
decorated function with its own type.  At run time each of these names *is*
:class:`lpm.client.events.EventEmitter`: nothing is added to the classes or to ``emit``.

A name the overloads do not know (a ``conn.send()`` request type of your own, say) can still be
listened to through the untyped base: ``EventEmitter.on(conn, "my.Type#response", handler)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lpm.client.events import EventEmitter

'''


def generate() -> str:
    renderer = Renderer()
    classes = emitters()
    rendered = [renderer.emitter(e) for e in classes]
    names = [e.name for e in classes]
    lines = [HEADER.rstrip("\n"), ""]
    lines.append("__all__ = [")
    lines += [f'    "{n}",' for n in sorted(names)]
    lines += ["]", "", "if TYPE_CHECKING:"]
    std = {"AsyncIterator": "collections.abc", "Callable": "collections.abc"}
    typing_names = sorted(n for n in ("Any", "Literal", "TypeVar", "overload"))
    lines.append(f"    from collections.abc import {', '.join(sorted(std))}")
    lines.append(f"    from typing import {', '.join(typing_names)}")
    lines.append("")
    by_module: dict[str, list[str]] = {}
    for name in sorted(renderer.names):
        module = IMPORTS.get(name)
        if module and module != "typing":
            by_module.setdefault(module, []).append(name)
    for module in sorted(by_module):
        lines.append(f"    from {module} import {', '.join(sorted(by_module[module]))}")
    lines.append("")
    lines.append('    _R = TypeVar("_R")')
    for args, var in renderer.typevars.items():
        bound = _callable(args, "object")
        lines.append(f'    {var} = TypeVar("{var}", bound={bound})')
    for block in rendered:
        lines.append("")
        lines += block
    lines.append("else:")
    for name in names:
        lines.append(f"    {name} = EventEmitter")
    return formatted("\n".join(lines).rstrip() + "\n")


def formatted(source: str) -> str:
    """``source`` as ``ruff check --fix`` (import order) and ``ruff format`` leave it, so the file
    passes ``make lint`` as generated."""
    name = str(OUT.relative_to(ROOT))
    for command in (["check", "--fix-only", "--select", "I", "--quiet"], ["format"]):
        source = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--stdin-filename", name, "-"],
            input=source,
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout
    return source


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail when the file is not current")
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT.relative_to(ROOT)} is stale: run python tools/gen_typed_events.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
