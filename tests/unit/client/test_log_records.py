"""Log records the SDK writes must not keep the objects a failure worked on alive.

A handler that keeps records -- pytest's log capture during a test, a ``MemoryHandler`` -- keeps
their ``args``.  An exception passed as an argument keeps its traceback, the frames that raised
it and whatever they held: the long chaos run (tests/chaos/test_chaos.py, ``check_memory``)
counted a growing number of conversations that no cache held, each kept by the frames of a
failed history load or dialog resubscribe through a captured DEBUG record.
"""

from __future__ import annotations

import gc
import logging
import weakref

import pytest

from lpm.client.model.cache import _retrying
from lpm.errors import ConnectionClosedError


class _Conversation:
    """Stands for the conversation a failing frame works on (weak-referenceable)."""


async def test_retried_failure_log_record_keeps_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="lpm")
    held = _Conversation()
    ref = weakref.ref(held)
    calls = 0

    async def load(conversation: _Conversation | None) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            # the frame raising holds the conversation, as a history load's frames do
            raise ConnectionClosedError(f"lost while loading {id(conversation)}")

    box: list[_Conversation | None] = [held]
    await _retrying(lambda: load(box.pop() if box else None))
    del held
    gc.collect()

    records = [r for r in caplog.records if r.name == "lpm.client.model.cache" and "transient" in r.msg]
    assert len(records) == 1, caplog.records
    assert calls == 2
    assert "lost while loading" in records[0].getMessage()  # the text is still logged
    assert not any(isinstance(a, BaseException) for a in records[0].args or ())
    assert ref() is None, gc.get_referrers(ref())


def test_no_log_call_passes_an_object_that_holds_the_model() -> None:
    """Every ``log.<level>(msg, *args)`` in the package passes text, numbers or ids: never ``self``
    (a subscription holds its conversations), nor an exception (its traceback holds frames).
    Found again by the long chaos run after the subscription state tables logged ``%r``, self."""
    import ast
    from pathlib import Path

    import lpm

    offenders: list[str] = []
    levels = {"debug", "info", "warning", "error", "critical", "exception"}
    for path in Path(lpm.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in levels
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in {"log", "logger"}
            ):
                continue
            for arg in node.args[1:]:
                if isinstance(arg, ast.Name) and (arg.id == "self" or arg.id in {"exc", "error", "err", "e"}):
                    offenders.append(f"{path.name}:{node.lineno} passes {arg.id}")
    assert offenders == []
