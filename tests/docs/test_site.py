"""The documentation site: it builds with ``mkdocs build --strict`` (a broken link, a missing
reference or a docstring warning fails), its API reference shows the public API and only it, each
emitter class lists its events from their one definition, every public method and property has a
description, no page cites what a reader does not have, and every code block is checked by a test.
"""

from __future__ import annotations

import html
import importlib
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

import lpm
from tests.docs.site import (
    DOCS,
    REFERENCE,
    ROOT,
    build_site,
    load_api,
    reference_identifiers,
    rendered_objects,
)

#: What a reader of the site does not have: the project's design notes, its issue tracker, the
#: specifications it was written from.
CITATION = re.compile(r"DESIGN\.md|shared/|\bspec/|node-sdk-reference|protocol\.md|\b[Ii]ssues? \d+|§")


def load_tool(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once for this module (strict)."""
    dest = tmp_path_factory.mktemp("site")
    output = build_site(dest)
    assert "WARNING" not in output, output
    return dest


def is_module(identifier: str) -> bool:
    try:
        importlib.import_module(identifier)
    except ImportError:
        return False
    return True


def text_of(page: Path) -> str:
    return page.read_text(encoding="utf-8")


def section(page_html: str, identifier: str, others: list[str]) -> str:
    """The HTML of ``identifier``'s entry: from its heading to the next entry of the page."""
    start = page_html.index(f'id="{identifier}"')
    ends = [page_html.find(f'id="{o}"', start + 1) for o in others if o != identifier]
    ends = [e for e in ends if e > start]
    return page_html[start : min(ends) if ends else len(page_html)]


# ---------------------------------------------------------------- the build


def test_site_builds_strict_from_the_pages_and_the_docstrings(site: Path) -> None:
    for page in ("index.html", "porting-from-node.html", "porting-from-node-agent-sdk.html"):
        assert (site / page).is_file(), page
    for page in sorted(REFERENCE.glob("*.md")):
        assert (site / "reference" / f"{page.stem}.html").is_file(), page.name
    # The reference is rendered at build time: nothing generated is committed.
    assert not (DOCS / "api").exists()
    assert not (ROOT / "tools" / "gen_api_docs.py").exists()
    connections = text_of(site / "reference" / "connections.html")
    assert 'id="lpm.Connection"' in connections
    assert 'id="lpm.BrandWebsocketConnection.set_agent_state"' in connections
    # The search index has the guides and the reference.
    index = json.loads(text_of(site / "search" / "search_index.json"))
    locations = {doc["location"].split("#")[0] for doc in index["docs"]}
    assert {"index.html", "reference/connections.html", "porting-from-node-agent-sdk.html"} <= locations


def test_docstring_roles_become_links_or_code(site: Path) -> None:
    for page in (site / "reference").glob("*.html"):
        body = text_of(page)
        assert not re.search(r":(class|meth|func|attr|mod|data|exc):`", body), page.name
        assert "][lpm." not in body, page.name  # an autorefs link left unresolved
    conversation = text_of(site / "reference" / "connections.html")
    # ":class:`~lpm.errors.WaitTimeoutError`" in Connection.wait_for_conversation: a link to its entry.
    assert 'href="errors.html#lpm.errors.WaitTimeoutError"' in conversation


# ---------------------------------------------------------------- what the reference shows


def test_every_public_name_is_in_the_reference() -> None:
    identifiers = set(reference_identifiers())
    module_pages = {i for i in identifiers if is_module(i)}
    missing = []
    for name in lpm.__all__:
        obj = getattr(lpm, name)
        if name == "__version__" or f"lpm.{name}" in identifiers or f"lpm.{name}" in module_pages:
            continue
        module = getattr(obj, "__module__", "")
        if module not in module_pages:
            missing.append(name)
    assert not missing, f"not in docs/reference/*.md: {missing}"


def test_internal_members_are_left_out() -> None:
    tool = load_tool("docs_api")
    objects = list(rendered_objects())
    shown = {path for path, _ in objects}
    for path, obj in objects:
        owner = obj.parent.path if obj.parent is not None else ""
        assert not (obj.name in tool.INTERNAL and f"{owner}.".startswith(tool.INTERNAL_IN)), path
        # The emitter's methods are described once, on the events page.
        if owner.startswith(("lpm.client.events.EventEmitter", "lpm.client.typed_events.")):
            assert path.startswith("lpm.client.events.EventEmitter."), path
    for wanted in (
        "lpm.Connection.open",
        "lpm.BrandWebsocketConnection.publish_event",
        "lpm.BrandWebsocketConnection.update_conversation_field",
        "lpm.BrandWebsocketConnection.query_messages",
        "lpm.BrandWebsocketConnection.subscribe_conversations",
        "lpm.Conversation.send_message",
        "lpm.client.events.EventEmitter.wait_for",
        "lpm.RequestEventInfo.request",  # a payload's field, not the transports' request()
        "lpm.client.history_search.Sdes.events",  # a record's field, not the emitter's events()
    ):
        assert wanted in shown, wanted
    for internal in (
        "lpm.WebsocketConnection.request",
        "lpm.Conversation.apply",
        "lpm.ConversationSubscription.handle_notification",
        "lpm.BrandWebsocketConnection.register_routing_subscription",
        "lpm.Conversation.on",
    ):
        assert internal not in shown, internal


def test_public_methods_and_properties_have_descriptions() -> None:
    missing = set()
    for _path, obj in rendered_objects():
        described = obj.docstring is not None and obj.docstring.value.strip()
        kind = obj.is_function or obj.is_class or (obj.is_attribute and "property" in obj.labels)
        if kind and not described:
            missing.add(obj.path)
    assert not missing, f"without a description: {sorted(missing)}"


def test_every_option_has_a_description() -> None:
    options = load_api().modules_collection["lpm.client.options.ConnectionOptions"]
    fields = {name for name, member in options.members.items() if member.is_attribute}
    assert {"account_id", "open_timeout", "compression"} <= fields
    missing = {
        name
        for name in fields
        if not (options.members[name].docstring and options.members[name].docstring.value.strip())
    }
    assert not missing, f"options without a description: {sorted(missing)}"


def test_each_emitter_class_lists_its_events(site: Path) -> None:
    """The events table of each class is made from tools/gen_typed_events.py, the definition that
    also types its on()/wait_for(): every event name and every handler signature is on the page."""
    events = load_tool("gen_typed_events")
    emitters = {emitter.name: emitter for emitter in events.emitters()}
    pages = {
        "lpm.Connection": ("connections", "ConnectionEmitter"),
        "lpm.Conversation": ("conversations", "ConversationEmitter"),
        "lpm.Dialog": ("conversations", "DialogEmitter"),
        "lpm.Participant": ("conversations", "ParticipantEmitter"),
        "lpm.ConversationSubscription": ("subscriptions", "SubscriptionEmitter"),
        "lpm.RoutingTaskSubscription": ("subscriptions", "RoutingEmitter"),
        "lpm.Ring": ("subscriptions", "RingEmitter"),
        "lpm.TokenMaintainer": ("tokens", "TokenEmitter"),
        "lpm.StaticTokenMaintainer": ("tokens", "TokenEmitter"),
    }
    for identifier, (page, emitter) in pages.items():
        page_html = text_of(site / "reference" / f"{page}.html")
        others = re.findall(r"^::: (\S+)", text_of(REFERENCE / f"{page}.md"), flags=re.M)
        entry = html.unescape(re.sub(r"<[^>]+>", "", section(page_html, identifier, others)))
        assert "Events" in entry, identifier
        for event in emitters[emitter].events:
            if event.name.endswith(("#request", "#response")) and not event.members:
                assert event.name.rsplit("#", 1)[0] in entry, (identifier, event.name)
            else:
                assert event.name in entry, (identifier, event.name)
                assert ", ".join(event.args) in entry, (identifier, event.name, event.args)
    # Subclasses point at their base's table.
    brand = section(
        text_of(site / "reference" / "connections.html"),
        "lpm.BrandWebsocketConnection",
        ["lpm.ConsumerWebsocketConnection"],
    )
    assert 'href="#lpm.Connection"' in brand


# ---------------------------------------------------------------- what the pages say


def test_no_page_cites_what_a_reader_does_not_have() -> None:
    found = []
    for page in sorted([*DOCS.rglob("*.md"), ROOT / "README.md"]):
        rel = page.relative_to(DOCS).as_posix() if page.is_relative_to(DOCS) else page.name
        for n, line in enumerate(text_of(page).splitlines(), start=1):
            for match in CITATION.finditer(line):
                found.append(f"{rel}:{n}: {match.group(0)!r} in {line.strip()!r}")
    assert not found, "\n".join(found)


def code_blocks() -> list[tuple[str, str, str]]:
    """``(page, language, code)`` of every fenced block of the guides and the README."""
    blocks = []
    for page in sorted([*DOCS.rglob("*.md"), ROOT / "README.md"]):
        rel = page.relative_to(ROOT).as_posix()
        for language, code in re.findall(r"^```(\w*)\n(.*?)^```", text_of(page), flags=re.M | re.S):
            blocks.append((rel, language, code))
    return blocks


def test_every_code_block_is_run_or_type_checked() -> None:
    """Which test checks each kind of block (a new kind, or a block on a page no test reads,
    fails here until a test covers it)."""
    typing = load_tool("check_typing")
    type_checked = {p.relative_to(ROOT).as_posix() for pattern in typing.PAGES for p in ROOT.glob(pattern)}
    blocks = code_blocks()
    assert any(language == "python" for _, language, _ in blocks)
    for page, language, code in blocks:
        where = (page, code[:60])
        if language == "python":
            # tools/check_typing.py type-checks every page (the connection guides included); the
            # guides' whole programs also run in tests/integration/test_sdk_null_webhooks.py.
            assert page in type_checked, where
        elif language == "javascript":
            # tests/docs/test_porting_guides.py runs it with node-agent-sdk.
            assert page == "docs/porting-from-node-agent-sdk.md", where
        elif language == "toml":
            # emulator.md's worlds load in tests/integration/test_docs_examples.py; testing.md's
            # set-up runs in tests/testing_plugin/test_fresh_project.py.
            assert page in ("docs/emulator.md", "docs/testing.md"), where
        elif language == "json":
            json.loads(code)
        else:
            # Shell commands and plain text (diagrams, output) are not programs.
            assert language in ("", "sh"), where
