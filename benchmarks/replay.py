"""Where an ingested event's CPU goes, without the network: ``python -m benchmarks.replay``.

``make bench`` measures whole processes over TLS on a shared machine, where one run can differ
from the next by a fifth.  This tool isolates the SDK's own work on each frame and makes it
repeatable:

1. An emulator in this process holds ``--conversations`` open conversations assigned to the
   bot; ``--replays`` bot connections subscribe to them (each gets the snapshot).
2. The emulator streams ``--events`` consumer messages.  Each connection *records* the
   notification frames its socket delivers (two per message: the conversation's new state and
   the message) instead of processing them.
3. Each connection then processes its recorded frames in one go, as its socket reader would
   (``_on_text``, the reader's entry point): decoding, routing, the object model, events.  The
   frames are the connection's own (its subscription id), new to its model, in arrival order.
4. The floor: the same frames decoded into Python objects (``msgspec.json``), which is all the
   raw client of ``make bench`` does with a frame after reading it.

Printed: process CPU per event of each replay (garbage collector off while timed; ``make
bench`` reports the collector's share of the client CPU separately) and of the raw decode.

Deterministic counts: every replay goes through :func:`functools.reduce`, called nowhere else
while it runs, so callgrind can count the instructions of the replay alone::

    valgrind --tool=callgrind --toggle-collect=functools_reduce \\
        python -m benchmarks.replay --events 2000 --replays 1 --only sdk
    valgrind --tool=callgrind --toggle-collect=functools_reduce \\
        python -m benchmarks.replay --events 2000 --replays 1 --only raw

and ``callgrind_annotate`` says which C functions they are spent in (valgrind's CPU has no
SHA extensions: the state digest's SHA-256 counts several times what it costs on the
hardware).  This uses the SDK's private reader entry points: it measures, it is not an example.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import msgspec

from lpm.enums import UserType
from lpm.protocol import frames
from lpm.testing import TestEmulator

#: Longest wait for the stream to reach every recording connection.
STREAM_TIMEOUT_S = 120.0


class _Recorder:
    """Stands in for a connection's ``session.receive_text``: notifications are kept, not
    processed (responses and the rest still go through, so the connection stays healthy)."""

    def __init__(self, receive_text: Callable[..., Any]) -> None:
        self.receive_text = receive_text
        self.frames: list[str] = []

    def __call__(self, data: str, now: float | None = None) -> Any:
        event = self.receive_text(data, now)
        if type(event) is frames.InboundNotification:
            self.frames.append(data)
            return None
        return event


def _replay(handle: Callable[[Any], Any], recorded: list[str]) -> float:
    """Process CPU seconds of handing every recorded frame to ``handle`` (GC off meanwhile)."""
    gc.collect()
    gc.disable()
    try:
        start = time.process_time()
        functools.reduce(lambda _, data: handle(data), recorded, None)
        return time.process_time() - start
    finally:
        gc.enable()


async def _record(args: argparse.Namespace) -> tuple[TestEmulator, list[Any], list[_Recorder]]:
    """Open the connections and record the stream; returns the emulator and the connections
    (still open) with their frames."""
    emulator = TestEmulator(faults=True, snapshot_limit=1_000_000, port=0)
    await emulator.start()
    async with aiohttp.ClientSession() as http:
        base = f"{emulator.base_url}/_emulator/bench"
        body = {"count": args.conversations, "messages": 0, "agent": "bot"}
        async with http.post(f"{base}/conversations", json=body) as resp:
            resp.raise_for_status()
        connections: list[Any] = []
        recorders: list[_Recorder] = []
        for _ in range(args.replays):
            conn = await emulator.connection(
                user_type=UserType.BRAND,
                auth_data={"username": "bot", "password": "bot-password"},
                create_default_subscription=True,
                wait_for_first_notification=True,
                limit_break_enabled=False,
                max_frame_size=64 << 20,
            )
            recorder = _Recorder(conn.session.receive_text)  # type: ignore[attr-defined]
            conn.session.receive_text = recorder  # type: ignore[attr-defined]
            connections.append(conn)
            recorders.append(recorder)
        async with http.post(f"{base}/stream", json={"events": args.events, "hold": True}) as resp:
            resp.raise_for_status()
    deadline = time.monotonic() + STREAM_TIMEOUT_S
    while any(len(r.frames) < 2 * args.events for r in recorders):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the stream did not arrive: {[len(r.frames) for r in recorders]}")
        await asyncio.sleep(0.05)
    return emulator, connections, recorders


async def main(args: argparse.Namespace) -> None:
    emulator, connections, recorders = await _record(args)
    seen = 0

    def on_message(conversation: Any, message: Any) -> None:
        nonlocal seen
        seen += 1

    try:
        sdk_us, raw_us = [], []
        for conn, recorder in zip(connections, recorders, strict=True):
            conn.session.receive_text = recorder.receive_text
            conn.on("conversation:message", on_message)
            if args.only != "raw":
                sdk_us.append(_replay(conn._on_text, recorder.frames) / args.events * 1e6)
            if args.only != "sdk":
                raw_us.append(_replay(msgspec.json.Decoder().decode, recorder.frames) / args.events * 1e6)
    finally:
        await emulator.stop()
    if args.only != "raw" and seen != args.events * args.replays:
        raise SystemExit(f"{seen} messages reached the object model, expected {args.events * args.replays}")
    print(f"{args.events} events over {args.conversations} conversations, {len(recorders)} replays")
    if sdk_us:
        shown = " ".join(f"{v:.2f}" for v in sdk_us)
        print(f"SDK: CPU µs per event (2 frames): {shown}; best {min(sdk_us):.2f}")
    if raw_us:
        shown = " ".join(f"{v:.2f}" for v in raw_us)
        print(f"raw decode: CPU µs per event (2 frames): {shown}; best {min(raw_us):.2f}")
    if sdk_us and raw_us:
        print(f"SDK / raw decode (best): {min(sdk_us) / min(raw_us):.2f}")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.replay", description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--replays", type=int, default=3, help="connections, each replaying its own frames")
    parser.add_argument("--only", choices=("sdk", "raw"), help="replay through one of the two only")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(_arguments()))
