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
from typing import Any

import lpm
from benchmarks.common import cpu_seconds, emit, now, rss_bytes
from lpm.client.auth.csds import CSDS

Params = dict[str, Any]
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
    """``total`` PublishEvents with ``inflight`` outstanding at any time, over some conversations."""
    convs = p["conversations"]
    total, inflight = p["total"], p["inflight"]
    async with _subscribed(p) as conn:
        for conv in convs[:10]:  # warm-up
            await conn.publish_event(conv, conv, TEXT)
        counter = itertools.count()

        async def worker() -> None:
            while (i := next(counter)) < total:
                conv = convs[i % len(convs)]
                await conn.publish_event(conv, conv, TEXT)

        cpu0, t0, w0 = cpu_seconds(), time.perf_counter(), now()
        await asyncio.gather(*(worker() for _ in range(inflight)))
        elapsed, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        w1 = now()
    return {"seconds": elapsed, "cpu_seconds": cpu, "messages": total, "window": [w0, w1]}


async def ingest(p: Params) -> Params:
    """Count messages arriving in the object model while the emulator streams ``events``."""
    expected = p["events"]
    done = asyncio.get_running_loop().create_future()
    state = {"count": 0, "t0": 0.0, "cpu0": 0.0, "w0": 0.0}

    def on_message(conversation: Any, message: Any) -> None:
        if state["count"] == 0:
            state["t0"], state["cpu0"], state["w0"] = time.perf_counter(), cpu_seconds(), now()
        state["count"] += 1
        if state["count"] >= expected and not done.done():
            done.set_result((time.perf_counter(), cpu_seconds(), now()))

    conn = _subscribed(p)
    conn.on("conversation:message", on_message)
    async with conn:
        known = len(conn.get_all_known_conversations())
        emit({"event": "ready", "known": known})
        t1, cpu1, w1 = await asyncio.wait_for(done, p["timeout"])
    # The first message's own processing is not in the window: count the intervals after it.
    seconds = t1 - state["t0"]
    return {
        "events": expected - 1,
        "seconds": seconds,
        "cpu_seconds": cpu1 - state["cpu0"],
        "known_conversations": known,
        "window": [state["w0"], w1],
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
    "memory": memory,
    "recovery": recovery,
}


async def main(scenario: str, params: Params) -> None:
    result = await SCENARIOS[scenario](params)
    emit({"event": "result", "client": "ours", "scenario": scenario, "rss_bytes_end": rss_bytes(), **result})


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
