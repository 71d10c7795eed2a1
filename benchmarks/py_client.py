"""One scenario of our SDK, in its own process: ``python -m benchmarks.py_client SCENARIO PARAMS``.

``PARAMS`` is a JSON object (where the emulator is, the bot's credentials, the scenario's sizes).
Stdout carries JSON lines: ``{"event": "ready"}`` when the harness may act on the emulator
(stream events, drop the socket), then one ``{"event": "result", ...}``.  CPU figures are this
process's own (``getrusage``), taken around the measured phase only.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import lpm
from benchmarks.common import cpu_seconds, emit, gc_seconds, now, rss_bytes
from lpm.client.auth.csds import CSDS
from lpm.client.options import OPTION_NAMES

Params = dict[str, Any]
#: Largest frame accepted (the raw client and node-agent-sdk accept at least as much).
BIG_FRAMES = 64 * 1024 * 1024
#: The tree whose SDK this process measures.
LPM_PATH = str(Path(lpm.__file__).resolve().parent)
TEXT = {"type": "ContentEvent", "contentType": "text/plain", "message": "bench"}


def _subscribed(p: Params, **options: Any) -> Any:
    """A connection whose default subscription holds the bot's conversations, as a bot has (the
    echo of every publish then lands in a known conversation).  The bench emulator sends every
    conversation in the first snapshot: there is nothing for the limit break to page through."""
    return _connection(
        p,
        create_default_subscription=True,
        wait_for_first_notification=True,
        limit_break_enabled=False,
        **options,
    )


def _connection(p: Params, **options: Any) -> Any:
    options.setdefault("create_default_subscription", False)
    if "max_frame_size" in OPTION_NAMES:
        # The bench emulator sends every conversation in one snapshot (UMS caps a snapshot near
        # 1,000): 10,000 conversations are a frame of ~17 MB, past the 16 MiB default limit.
        options.setdefault("max_frame_size", BIG_FRAMES)
    if p.get("compression"):  # only when asked: a baseline tree may predate the option
        options["compression"] = True
    return lpm.create_connection(
        account_id=p["account_id"],
        user_type=lpm.UserType.BRAND,
        auth_data={"username": p["username"], "password": p["password"]},
        csds_domain=p["csds_domain"],
        ssl=p["ca_file"],
        **options,
    )


async def connect(p: Params) -> Params:
    """CSDS + login + socket + first response, a fresh connection (and CSDS cache) each time."""
    samples = []
    for _ in range(p["iterations"]):
        CSDS.clear()
        start = time.perf_counter()
        conn = _connection(p)
        await conn.open()
        await conn.get_clock()
        samples.append((time.perf_counter() - start) * 1000)
        await conn.close()
    return {"samples_ms": samples}


async def _sequential(n: int, call: Callable[[], Awaitable[Any]]) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


async def rtt(p: Params) -> Params:
    """Sequential GetClock, then sequential PublishEvent, one at a time."""
    conv = p["conversations"][0]
    async with _subscribed(p) as conn:

        async def publish() -> None:
            await conn.publish_event(conv, conv, TEXT)

        await _sequential(p["warmup"], conn.get_clock)
        clock = await _sequential(p["n"], conn.get_clock)
        await _sequential(p["warmup"], publish)
        pub = await _sequential(p["n"], publish)
    return {"get_clock_ms": clock, "publish_ms": pub}


async def pipeline(p: Params) -> Params:
    """``warmup`` then ``total`` PublishEvents with ``inflight`` outstanding at any time, over
    some conversations; only the second batch is measured."""
    convs, inflight = p["conversations"], p["inflight"]
    async with _subscribed(p) as conn:

        async def run(total: int) -> None:
            counter = itertools.count()

            async def worker() -> None:
                while (i := next(counter)) < total:
                    conv = convs[i % len(convs)]
                    await conn.publish_event(conv, conv, TEXT)

            await asyncio.gather(*(worker() for _ in range(inflight)))

        await run(p["warmup"])
        cpu0, gc0, t0, w0 = cpu_seconds(), gc_seconds(), time.perf_counter(), now()
        await run(p["total"])
        elapsed, cpu, in_gc = time.perf_counter() - t0, cpu_seconds() - cpu0, gc_seconds() - gc0
        w1 = now()
    return {
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "gc_seconds": in_gc,
        "messages": p["total"],
        "window": [w0, w1],
    }


async def ingest(p: Params) -> Params:
    """Count messages arriving in the object model while the emulator streams ``warmup`` (not
    measured) and then ``events`` messages."""
    loop = asyncio.get_running_loop()
    warmup = p["warmup"]
    first_measured = warmup + 1
    state = {"count": 0, "target": warmup, "t0": 0.0, "cpu0": 0.0, "gc0": 0.0, "w0": 0.0}
    reached: asyncio.Future[tuple[float, float, float, float]] = loop.create_future()

    def on_message(conversation: Any, message: Any) -> None:
        state["count"] += 1
        if state["count"] == first_measured:
            state["t0"], state["cpu0"], state["w0"] = time.perf_counter(), cpu_seconds(), now()
            state["gc0"] = gc_seconds()
        if state["count"] == state["target"] and not reached.done():
            reached.set_result((time.perf_counter(), cpu_seconds(), gc_seconds(), now()))

    conn = _subscribed(p)
    conn.on("conversation:message", on_message)
    async with conn:
        known = len(conn.get_all_known_conversations())
        if warmup:
            emit({"event": "ready", "phase": "warmup", "known": known})
            await asyncio.wait_for(reached, p["timeout"])
            reached = loop.create_future()
        state["target"] = warmup + p["events"]
        emit({"event": "ready", "phase": "measure", "known": known})
        t1, cpu1, gc1, w1 = await asyncio.wait_for(reached, p["timeout"])
    # The first measured message's own processing is not in the window: count the intervals.
    return {
        "events": p["events"] - 1,
        "seconds": t1 - state["t0"],
        "cpu_seconds": cpu1 - state["cpu0"],
        "gc_seconds": gc1 - state["gc0"],
        "known_conversations": known,
        "window": [state["w0"], w1],
    }


async def history(p: Params) -> Params:
    """Subscribe to the open conversations and load every one's history (``get_all_messages``):
    time and CPU from the subscription request until every conversation is announced with its
    messages (the connection is open before; its opening is not measured)."""
    count, per = p["conversations"], p["messages"]
    conn = _connection(p, get_all_messages=True, limit_break_enabled=False)
    async with conn:
        cpu0, t0, w0 = cpu_seconds(), time.perf_counter(), now()
        subscription = await conn.create_conversation_subscription(
            {"stage": ["OPEN"]}, wait_for_first_notification=True
        )
        await asyncio.wait_for(subscription.wait_loaded(), p["timeout"])
        seconds, cpu, w1 = time.perf_counter() - t0, cpu_seconds() - cpu0, now()
        convs = conn.get_all_known_conversations()
        loaded = sum(1 for c in convs if c.open_dialog is not None and len(c.open_dialog.messages) >= per)
        if loaded < count:
            raise RuntimeError(f"only {loaded} of {count} conversations loaded their history")
        rss = rss_bytes()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "rss_bytes": rss,
        "conversations": loaded,
        "window": [w0, w1],
    }


async def memory(p: Params) -> Params:
    """RSS once the connection holds every conversation with its whole history."""
    count, per = p["conversations"], p["messages"]
    base_conn = _connection(p)
    async with base_conn:
        await base_conn.get_clock()
        idle_rss = rss_bytes()
    conn = _subscribed(p, get_all_messages=True)
    t0 = time.perf_counter()
    async with conn:
        deadline = time.monotonic() + p["timeout"]
        while True:
            convs = conn.get_all_known_conversations()
            loaded = sum(1 for c in convs if c.open_dialog is not None and len(c.open_dialog.messages) >= per)
            if loaded >= count:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {loaded} of {count} conversations loaded their history")
            await asyncio.sleep(0.2)
        seconds = time.perf_counter() - t0
        rss = rss_bytes()
    return {
        "rss_bytes": rss,
        "idle_rss_bytes": idle_rss,
        "load_seconds": seconds,
        "conversations": len(convs),
    }


async def recovery(p: Params) -> Params:
    """The harness drops the socket; time until subscriptions are back and a queued request is done."""
    conn = _subscribed(
        p,
        # Reconnect at once, as the node application does on its "closed" event.
        wait_to_reconnect=0.0,
        reconnect_schedule=(0.0, 0.5, 1.0),
    )
    marks: dict[str, float] = {}

    def mark(name: str) -> Callable[..., None]:
        def handler(*_: Any) -> None:
            marks.setdefault(name, time.perf_counter())

        return handler

    async with conn:
        routing = await conn.create_routing_task_subscription()
        assert routing is not None
        known = len(conn.get_all_known_conversations())
        conn.on("disconnect", mark("disconnect"))
        conn.on("connect#response", mark("socket"))
        restored = asyncio.ensure_future(conn.wait_for("reconnect", timeout=p["timeout"]))
        disconnected = asyncio.ensure_future(conn.wait_for("disconnect", timeout=p["timeout"]))
        emit({"event": "ready", "known": known})
        await disconnected
        # Made while the socket is down: queued, written once the session is restored.
        clock = asyncio.ensure_future(conn.get_clock())
        await restored
        marks["restored"] = time.perf_counter()
        await clock
        marks["request"] = time.perf_counter()
    t0 = marks["disconnect"]
    return {
        "total_ms": (marks["request"] - t0) * 1000,
        "after_reconnect_ms": (marks["request"] - marks.get("socket", t0)) * 1000,
        "subscriptions_ms": (marks["restored"] - t0) * 1000,
        "known_conversations": known,
    }


SCENARIOS: dict[str, Callable[[Params], Awaitable[Params]]] = {
    "connect": connect,
    "rtt": rtt,
    "pipeline": pipeline,
    "ingest": ingest,
    "history": history,
    "memory": memory,
    "recovery": recovery,
}


async def main(scenario: str, params: Params) -> None:
    # Bounded: a client that keeps reconnecting (a refused frame, say) must fail the run, not hang it.
    result = await asyncio.wait_for(SCENARIOS[scenario](params), params["timeout"])
    emit(
        {
            "event": "result",
            "client": "ours",
            "scenario": scenario,
            "rss_bytes_end": rss_bytes(),
            # Which tree was measured (the harness checks it for a --baseline run).
            "lpm_path": LPM_PATH,
            **result,
        }
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
