"""Emulator capacity load: ``python -m benchmarks.capacity PARAMS`` (one step of N conversations).

Measures the emulator, so the load is as cheap as possible: raw WebSockets speaking the
documented frames (no SDK), one process.  ``N`` consumer sockets each publish one message per
second (phases spread over the second); one bot socket answers every consumer message.  Every
message carries its publish time, so both legs give a publish→delivery latency on one clock:
consumer → bot, and bot → consumer.  The result line has the p50/p99 latency, delivered
messages/s and this process's CPU share (if the load generator itself saturates, the latency
measures it too; the harness reports that).
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import random
import ssl
import sys
import time
from typing import Any

import aiohttp

from benchmarks.common import cpu_seconds, emit, percentile
from lpm.protocol import frames
from lpm.protocol.types import Dialect, Notif, Req, notification_type, request_wire_name

BRAND_PUBLISH = request_wire_name(Req.PUBLISH_EVENT, Dialect.BRAND_V2)
CONSUMER_PUBLISH = request_wire_name(Req.PUBLISH_EVENT, Dialect.CONSUMER_V3)
CONSUMER_SUBSCRIBE = request_wire_name(Req.SUBSCRIBE_MESSAGING_EVENTS, Dialect.CONSUMER_V3)
BRAND_EVENT = notification_type(Notif.MESSAGING_EVENT, Dialect.BRAND_V2)
CONSUMER_EVENT = notification_type(Notif.MESSAGING_EVENT, Dialect.CONSUMER_V3)
_ids = itertools.count(1)


def _request(type_: str, body: dict[str, Any]) -> str:
    return frames.encode(frames.Request(id=str(next(_ids)), type=type_, body=body)).decode()


def _text(conv: str, message: str) -> dict[str, Any]:
    return {
        "dialogId": conv,
        "conversationId": conv,
        "event": {"type": "ContentEvent", "contentType": "text/plain", "message": message},
    }


class Load:
    def __init__(self, p: dict[str, Any]) -> None:
        self.p = p
        self.latencies: list[float] = []
        self.delivered = 0
        self.measuring = False
        self.stop = False

    def record(self, message: Any) -> None:
        if not self.measuring or not isinstance(message, str) or ":" not in message:
            return
        sent = float(message.split(":", 1)[1])
        self.latencies.append((time.time() - sent) * 1000)
        self.delivered += 1

    async def bot(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            frame = json.loads(msg.data)
            if frame.get("type") != BRAND_EVENT:
                continue
            body = frame["body"]
            if body.get("originatorMetadata", {}).get("role") != "CONSUMER":
                continue
            message = body.get("event", {}).get("message")
            self.record(message)
            conv = body["conversationId"]
            await ws.send_str(_request(BRAND_PUBLISH, _text(conv, f"b:{time.time()}")))

    async def consumer_reader(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            frame = json.loads(msg.data)
            if frame.get("type") != CONSUMER_EVENT:
                continue
            for change in frame["body"].get("changes", []):
                if change.get("originatorMetadata", {}).get("role") == "CONSUMER":
                    continue
                self.record(change.get("event", {}).get("message"))

    async def consumer_writer(self, ws: aiohttp.ClientWebSocketResponse, conv: str) -> None:
        interval = self.p["interval"]
        await asyncio.sleep(random.random() * interval)
        next_at = time.monotonic()
        while not self.stop:
            await ws.send_str(_request(CONSUMER_PUBLISH, _text(conv, f"c:{time.time()}")))
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))


async def main(p: dict[str, Any]) -> None:
    ctx = ssl.create_default_context(cafile=p["ca_file"])
    host, account = p["ws_base"], p["account_id"]
    load = Load(p)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=0)) as http:
        bot = await http.ws_connect(f"{host}/ws_api/account/{account}/messaging/brand/{p['bearer']}?v=2.1")
        tasks = [asyncio.create_task(load.bot(bot))]
        sockets = []
        for consumer in p["consumers"]:
            ws = await http.ws_connect(
                f"{host}/ws_api/account/{account}/messaging/consumer?v=3",
                headers={"Authorization": f"jwt {consumer['jwt']}"},
                max_msg_size=0,
            )
            conv = consumer["conversation_id"]
            await ws.send_str(
                _request(CONSUMER_SUBSCRIBE, {"dialogId": conv, "conversationId": conv, "fromSeq": 0})
            )
            sockets.append(ws)
            tasks.append(asyncio.create_task(load.consumer_reader(ws)))
            tasks.append(asyncio.create_task(load.consumer_writer(ws, conv)))
        await asyncio.sleep(p["warmup"])
        # The load generator must not add its own pauses to the latencies it measures: a full
        # collection of this process's heap (1,000 sockets) takes tens of milliseconds.
        gc.collect()
        gc.freeze()
        gc.disable()
        load.measuring = True
        cpu0, t0, w0 = cpu_seconds(), time.perf_counter(), time.time()
        await asyncio.sleep(p["seconds"])
        load.measuring = False
        gc.enable()
        elapsed, cpu, w1 = time.perf_counter() - t0, cpu_seconds() - cpu0, time.time()
        load.stop = True
        for ws in [bot, *sockets]:
            await ws.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    emit(
        {
            "event": "result",
            "conversations": len(p["consumers"]),
            "messages_per_s": load.delivered / elapsed,
            "p50_ms": percentile(load.latencies, 50),
            "p99_ms": percentile(load.latencies, 99),
            "load_cpu": cpu / elapsed,
            "window": [w0, w1],
        }
    )


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.stdin.read())))
