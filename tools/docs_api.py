"""The API reference's rules, as a griffe extension (``mkdocs.yml`` loads it into mkdocstrings).

What it does to the docstrings griffe reads from ``src/lpm``, before mkdocstrings renders them:

* **Internal members are not API.**  :data:`INTERNAL` names the methods the object model, the
  subscriptions and the transports call on each other (``apply``, ``request``,
  ``handle_notification``...).  They are public only in spelling (no leading underscore yet);
  the extension removes them from the loaded tree, so no page shows them and no link can point
  at them.
* **Sphinx roles become links.**  The docstrings are written in Sphinx's dialect
  (``:class:`~lpm.Ring```, ``:meth:`close```); Markdown has no roles.  A role whose target
  the reference renders becomes an autorefs link (``[`Ring`][lpm.Ring]``); any other (a name
  inside the SDK's private modules) becomes plain code, so the strict build never meets a
  dangling reference.  ``text::`` literal-block markers lose their second colon.
* **Each emitter class lists its events.**  The events of a class and the arguments its handlers
  get are written once, in ``tools/gen_typed_events.py`` (the event enums + ``SIGNATURES``); the
  extension appends that table, with each enum member's own description, to the docstring of
  every class deriving from a generated ``<Name>Emitter``.

``tests/docs/test_site.py`` builds the site with ``--strict`` and checks what this produces.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import griffe

ROOT = Path(__file__).resolve().parents[1]

#: Members that are not part of the API although their names have no leading underscore: the
#: object model's interface to its connection and the hooks the dispatcher, the subscription
#: keeper and the transports call.  They are to become private (renamed with a leading
#: underscore); until then the reference leaves them out.
INTERNAL = frozenset(
    {
        # the dispatcher and the subscription keeper
        "apply",
        "apply_event",
        "handle_notification",
        "init",
        "mark_disconnected",
        "needs_resubscribe",
        "resubscribe",
        "wire_query",
        "register_conversation_subscription",
        "unregister_conversation_subscription",
        "register_routing_subscription",
        "process_shift_status",
        # the object model's bookkeeping
        "actions",
        "from_event",
        "has_seen",
        "last_contiguous_sequence",
        "max_seen_sequence",
        # the transports' plumbing
        "request",
        "report_error",
        "dialect",
        "transport_name",
        "unsupported_hint",
        "lookup_service",
        "put_file",
        "get_file",
        "concerns",
        "http_session",
    }
)

#: Where :data:`INTERNAL` applies: the classes of the object model, the subscriptions, the
#: connections and their auth (a payload's ``request`` field, elsewhere, is data).
INTERNAL_IN = (
    "lpm.client.actions.",
    "lpm.client.auth.",
    "lpm.client.connection.",
    "lpm.client.model.",
    "lpm.client.subscriptions.",
    "lpm.client.transport.",
)

#: The event emitter's own methods: described once, on the ``EventEmitter`` entry of the events
#: page, rather than on every class (``mkdocs.yml``'s filters hide them on the class pages; the
#: pages of whole modules, where such a name may be data, keep them).
EMITTER_METHODS = frozenset(
    {
        "on",
        "once",
        "off",
        "wait_for",
        "events",
        "emit",
        "remove_all_listeners",
        "has_listeners",
        "listener_count",
        "close_events",
    }
)
EMITTER = "lpm.client.events.EventEmitter"

#: The pages of the API reference: each ``::: identifier`` line renders one object.
REFERENCE = ROOT / "docs" / "reference"

ROLE = re.compile(
    r":(?:py:)?(?:class|func|meth|attr|mod|data|exc|obj|const):`(?P<tilde>~?)(?P<target>[^`]+)`"
)


def reference_identifiers() -> list[str]:
    """The identifier of every ``::: identifier`` line of the reference pages."""
    found: list[str] = []
    for page in sorted(REFERENCE.glob("*.md")):
        found += re.findall(r"^::: (\S+)", page.read_text(encoding="utf-8"), flags=re.M)
    return found


def load_typed_events() -> ModuleType:
    """``tools/gen_typed_events.py``, the one definition of each class's events."""
    name = "gen_typed_events"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / "gen_typed_events.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def final(obj: griffe.Object | griffe.Alias) -> griffe.Object:
    """``obj``, or the object an alias (an imported name) finally points at."""
    target = obj.final_target if isinstance(obj, griffe.Alias) else obj
    assert isinstance(target, griffe.Object)
    return target


def walk(obj: griffe.Object) -> Iterator[griffe.Object]:
    """``obj`` and everything defined inside it (aliases, i.e. imported names, excepted)."""
    yield obj
    for member in list(obj.members.values()):
        if not member.is_alias:
            assert isinstance(member, griffe.Object)
            yield from walk(member)


class LpmReference(griffe.Extension):
    """The rules of the module docstring, applied once the whole ``lpm`` package is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.path != "lpm":
            return
        objects = list(walk(pkg))
        for obj in objects:
            if obj.is_class and obj.path.startswith(INTERNAL_IN):
                for name in INTERNAL & obj.members.keys():
                    del obj.members[name]
        rendered = self._rendered(pkg)
        tables = EventTables(pkg)
        for obj in objects:
            if obj.is_class:
                assert isinstance(obj, griffe.Class)
                section = tables.section(obj, rendered)
                if section:
                    if obj.docstring is None:
                        obj.docstring = griffe.Docstring("", parent=obj)
                    obj.docstring.value = obj.docstring.value.rstrip() + "\n\n" + section
            if obj.docstring is not None:
                obj.docstring.value = self._markdown(obj, obj.docstring.value, rendered)

    # ---------------------------------------------------------------- what the reference renders

    @staticmethod
    def _rendered(pkg: griffe.Module) -> dict[str, str]:
        """Canonical path → the identifier the reference renders it under, for every object a
        ``::: identifier`` of ``docs/reference/*.md`` shows (their members are derived from
        these): a link goes only where the reference really has an entry."""
        rendered: dict[str, str] = {}
        for identifier in reference_identifiers():
            try:
                obj = final(pkg.modules_collection[identifier])
            except (KeyError, griffe.AliasResolutionError):
                continue  # mkdocstrings reports it
            rendered[obj.path] = identifier
            rendered[identifier] = identifier
            if not obj.is_module:
                continue
            for name, member in obj.members.items():
                if name.startswith("_") or not member.is_public or member.is_module:
                    continue
                target = final(member)
                rendered.setdefault(target.path, f"{identifier}.{name}")
                rendered.setdefault(f"{identifier}.{name}", f"{identifier}.{name}")
        return rendered

    def _identifier(self, obj: griffe.Object, target: str, rendered: dict[str, str]) -> str | None:
        """The rendered identifier ``target`` (as written in ``obj``'s docstring) refers to."""
        head, _, rest = target.partition(".")
        path: str | None = None
        if target in rendered:
            return rendered[target]
        try:
            path = obj.resolve(head) if head != "lpm" else "lpm"
        except griffe.NameResolutionError:
            # A bare member name (":meth:`close`") in a method's docstring is a sibling's.
            scope = obj.parent if obj.is_function or obj.is_attribute else obj
            if scope is not None and head in scope.all_members:
                path = f"{scope.path}.{head}"
        if path is None:
            return None
        full = f"{path}.{rest}" if rest else path
        found = self._lookup(obj, full)
        if found is not None:
            full = found
        # The longest rendered prefix, then the member path under it.
        parts = full.split(".")
        for cut in range(len(parts), 0, -1):
            prefix = ".".join(parts[:cut])
            if prefix in rendered:
                members = parts[cut:]
                if not members:
                    return rendered[prefix]
                if len(members) > 1 or members[0].startswith("_"):
                    return None
                if members[0] in EMITTER_METHODS:
                    return f"{EMITTER}.{members[0]}"
                owner = self._lookup(obj, prefix)
                if owner is None:
                    return None
                try:
                    known = members[0] in pkg_members(obj, owner)
                except griffe.AliasResolutionError:
                    known = False
                return f"{rendered[prefix]}.{members[0]}" if known else None
        return None

    @staticmethod
    def _lookup(obj: griffe.Object, path: str) -> str | None:
        """The canonical path of ``path`` (aliases followed), or None when it is not loaded."""
        try:
            found = obj.modules_collection[path]
        except KeyError:
            return None
        target = final(found)
        return str(target.path)

    def _markdown(self, obj: griffe.Object, text: str, rendered: dict[str, str]) -> str:
        def role(match: re.Match[str]) -> str:
            target = match.group("target")
            shown = target.rsplit(".", 1)[-1] if match.group("tilde") else target
            identifier = self._identifier(obj, target, rendered)
            return f"[`{shown}`][{identifier}]" if identifier else f"`{shown}`"

        text = ROLE.sub(role, text)
        # reST's "text::" opens a literal block (indented; Markdown shows it as code): keep one ":".
        text = re.sub(r"(?m)^(\s*)::\s*$", "", text)
        return re.sub(r"(?m)(\S)::\s*$", r"\1:", text)


def pkg_members(obj: griffe.Object, path: str) -> set[str]:
    """The member names (inherited ones included) of the class at ``path``."""
    owner = obj.modules_collection[path]
    target = final(owner)
    if isinstance(target, griffe.Class):
        return set(target.all_members)
    return set(target.members)


class EventTables:
    """The "Events" section of each emitter class, from ``tools/gen_typed_events.py``."""

    def __init__(self, pkg: griffe.Module) -> None:
        tool = load_typed_events()
        self.pkg = pkg
        self.emitters = {emitter.name: emitter for emitter in tool.emitters()}
        #: enum class name → its module's path, to read each member's description.
        self.enum_modules = {
            cls.__name__: cls.__module__
            for cls in (
                tool.ConnectionEvent,
                tool.ConversationEvent,
                tool.DialogEvent,
                tool.ParticipantEvent,
                tool.RingEvent,
                tool.RoutingEvent,
                tool.SubscriptionEvent,
                tool.TokenEvent,
                tool.IntakeEvent,
            )
        }
        self.prefix: str = tool.PREFIX
        #: Every request type: each has ``<type>#request`` and ``<type>#response`` events.
        self.requests: list[Any] = list(tool.Req)

    def _emitter_of(self, cls: griffe.Class) -> tuple[str, bool] | None:
        """The generated emitter ``cls`` derives from, and whether directly."""
        try:
            mro = [cls, *cls.mro()]
        except (ValueError, griffe.AliasResolutionError):
            return None
        for depth, klass in enumerate(mro):
            for base in klass.bases:
                name = str(base).rsplit(".", 1)[-1]
                if name in self.emitters:
                    return name, depth == 0
        return None

    def _describe(self, member: str) -> str:
        enum_name, _, name = member.partition(".")
        module = self.enum_modules.get(enum_name)
        if module is None:
            return ""
        try:
            found = self.pkg.modules_collection[f"{module}.{enum_name}.{name}"]
        except KeyError:
            return ""
        doc = found.docstring.value if found.docstring else ""
        # The enums' comments start with the handler's arguments, which the table has a column for.
        doc = re.sub(r"^``\(.*?\)``:\s*", "", " ".join(doc.split()))
        return doc[:1].upper() + doc[1:].replace("|", "\\|")

    def section(self, cls: griffe.Class, rendered: dict[str, str]) -> str:
        found = self._emitter_of(cls)
        if found is None or cls.path.startswith("lpm.client.typed_events"):
            return ""
        name, direct = found
        if not direct:
            owner = next(
                (
                    rendered[c.path]
                    for c in cls.mro()
                    if c.path in rendered and any(str(b).endswith(name) for b in c.bases)
                ),
                None,
            )
            if owner is None:
                return ""
            return f"**Events**: those of [`{owner.rsplit('.', 1)[-1]}`][{owner}]."
        emitter = self.emitters[name]
        request_names = {f"{req.value}#{end}" for req in self.requests for end in ("request", "response")}
        requests = [e for e in emitter.events if e.name in request_names]
        bubbled = [e for e in emitter.events if e.name.startswith(self.prefix)]
        own = [e for e in emitter.events if e not in requests and e not in bubbled]
        listen = ", ".join(f"[`{m}`][{EMITTER}.{m}]" for m in ("on", "once", "wait_for", "events"))
        lines = [
            f"**Events** (listen with {listen}; the handler gets the arguments shown, in order):",
            "",
            "| event (enum member) | handler arguments | what it means |",
            "| --- | --- | --- |",
        ]
        for event in own:
            args = ", ".join(event.args) or "(none)"
            members = "".join(f"<br>`{m}`" for m in event.members)
            why = self._describe(event.members[0]) if event.members else ""
            lines.append(f"| `{event.name}`{members} | `{args}` | {why} |")
        if bubbled:
            lines += [
                "",
                f"Bubbled from its conversations (the conversation first, then the event's own "
                f"arguments), as `{self.prefix}<event>`:",
                "",
                "| event | handler arguments |",
                "| --- | --- |",
            ]
            lines += [f"| `{e.name}` | `{', '.join(e.args)}` |" for e in bubbled]
        if requests:
            types = sorted({e.name.rsplit("#", 1)[0] for e in requests})
            request_args = next(e.args for e in requests if e.name.endswith("#request"))
            response_args = next(e.args for e in requests if e.name.endswith("#response"))
            lines += [
                "",
                f"For every request type, `<type>#request` (`{', '.join(request_args)}`) and "
                f"`<type>#response` (`{', '.join(response_args)}`): "
                + ", ".join(f"`{t}`" for t in types)
                + ".",
            ]
        return "\n".join(lines)
