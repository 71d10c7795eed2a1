"""The floor: a raw aiohttp + msgspec client, ``python -m benchmarks.raw_client SCENARIO PARAMS``.

It does the wire work every client must do and nothing else: log in (CSDS, agentVep), open the
brand socket without compression, subscribe to the bot's open conversations (as the SDKs do, so
it receives the same frames), decode *every* frame it receives into Python objects
(``msgspec.json``), match each response to its request by id (one future per request), and in
``ingest`` count the content events of the messaging notifications.  No object model, no
validation, no events, no reconnection.  ``SDK overhead`` in the results is our client's CPU per
message or event divided by this client's.

Same protocol as ``py_client``: JSON lines on stdout, ``{"event": "ready", "phase": ...}`` when
the harness may stream, then one ``{"event": "result", ...}``.  Scenarios: ``pipeline``,
``ingest``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import ssl
import sys
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import msgspec

from benchmarks.common import cpu_seconds, emit, now, rss_bytes

Params = dict[str, Any]
TEXT = {"type": "ContentEvent", "contentType": "text/plain", "message": "bench"}
PUBLISH = ".ams.ms.PublishEvent"
SUBSCRIBE = ".ams.aam.SubscribeExConversations"
CONVERSATIONS = ".ams.aam.ExConversationChangeNotification"
MESSAGE = ".ams.ms.OnlineEventDistribution"
#: Frames kept (not timed) to estimate what permessage-deflate would make of this stream.
SAMPLE_FRAMES = 2000


class RawClient:
    """One brand socket: requests as futures matched by ``reqId``, every frame decoded."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.pending: dict[str, asyncio.Future[Any]] = {}
        self.ids = itertools.count(1)
        self.encode = msgspec.json.Encoder().encode
        self.decode = msgspec.json.Decoder().decode
        #: Called with every decoded notification (after the response matching).
        self.on_notification: Callable[[dict[str, Any]], None] = lambda frame: None
        self.sample: list[str] = []
        self.reader = asyncio.ensure_future(self._read())

    async def request(self, type_: str, body: dict[str, Any]) -> Any:
        req_id = str(next(self.ids))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[req_id] = fut
        await self.ws.send_frame(
            self.encode({"kind": "req", "id": req_id, "type": type_, "body": body}), aiohttp.WSMsgType.TEXT
        )
        return await fut

    async def _read(self) -> None:
        decode, pending, sample = self.decode, self.pending, self.sample
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            if len(sample) < SAMPLE_FRAMES:
                sample.append(msg.data)
            frame = decode(msg.data)
            if frame.get("kind") == "resp":
                fut = pending.pop(frame.get("reqId"), None)
                if fut is not None and not fut.done():
                    code = frame.get("code", 200)
                    if isinstance(code, int) and code >= 400:
                        fut.set_exception(RuntimeError(f"{frame.get('type')} answered {code}"))
                    else:
                        fut.set_result(frame.get("body"))
            else:
                self.on_notification(frame)
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("socket closed"))

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()
        await asyncio.gather(self.reader, return_exceptions=True)


async def _open(p: Params, http: aiohttp.ClientSession) -> RawClient:
    """CSDS, login, socket (no compression), subscription to the open conversations."""
    acc = p["account_id"]
    async with http.get(
        f"https://{p['csds_domain']}/api/account/{acc}/service/baseURI.json?version=1.0"
    ) as r:
        hosts = {e["service"]: e["baseURI"] for e in (await r.json())["baseURIs"]}
    login = {"username": p["username"], "password": p["password"]}
    async with http.post(f"https://{hosts['agentVep']}/api/account/{acc}/login?v=1.3", json=login) as r:
        bearer = (await r.json())["bearer"]
    url = f"wss://{hosts['asyncMessagingEnt']}/ws_api/account/{acc}/messaging/brand/{bearer}?v=2.1"
    ws = await http.ws_connect(url, compress=0, autoping=True, max_msg_size=64 * 1024 * 1024)
    client = RawClient(ws)
    first = asyncio.get_running_loop().create_future()

    def on_first(frame: dict[str, Any]) -> None:
        if frame.get("type") == CONVERSATIONS and not first.done():
            first.set_result(len(frame["body"].get("changes", [])))

    client.on_notification = on_first
    await client.request(SUBSCRIBE, {"convState": ["OPEN"]})
    p["known"] = await asyncio.wait_for(first, p["timeout"])
    client.on_notification = lambda frame: None
    return client


def deflate_estimate(frames: list[str]) -> dict[str, float]:
    """What permessage-deflate (context takeover, 15-bit window, one sync flush per message)
    would make of these frames: bytes per frame before and after."""
    if not frames:
        return {"plain_bytes_per_frame": 0.0, "deflated_bytes_per_frame": 0.0}
    z = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    plain = deflated = 0
    for text in frames:
        data = text.encode()
        plain += len(data)
        deflated += len(z.compress(data)) + len(z.flush(zlib.Z_SYNC_FLUSH)) - 4  # RFC 7692 drops 00 00 ff ff
    return {"plain_bytes_per_frame": plain / len(frames), "deflated_bytes_per_frame": deflated / len(frames)}


async def pipeline(p: Params, client: RawClient) -> Params:
    """``warmup`` then ``total`` PublishEvents, ``inflight`` outstanding, one coroutine each."""
    convs, inflight = p["conversations"], p["inflight"]

    async def run(total: int) -> None:
        counter = itertools.count()

        async def worker() -> None:
            while (i := next(counter)) < total:
                conv = convs[i % len(convs)]
                await client.request(PUBLISH, {"dialogId": conv, "conversationId": conv, "event": TEXT})

        await asyncio.gather(*(worker() for _ in range(inflight)))

    await run(p["warmup"])
    cpu0, t0, w0 = cpu_seconds(), time.perf_counter(), now()
    await run(p["total"])
    elapsed, cpu, w1 = time.perf_counter() - t0, cpu_seconds() - cpu0, now()
    return {"seconds": elapsed, "cpu_seconds": cpu, "messages": p["total"], "window": [w0, w1]}


async def ingest(p: Params, client: RawClient) -> Params:
    """Count content events while the harness streams ``warmup`` then ``events`` messages."""
    loop = asyncio.get_running_loop()
    state = {"count": 0, "target": p["warmup"], "t0": 0.0, "cpu0": 0.0, "w0": 0.0}
    reached: asyncio.Future[tuple[float, float, float]] = loop.create_future()
    first_measured = p["warmup"] + 1

    def on_notification(frame: dict[str, Any]) -> None:
        if frame.get("type") != MESSAGE:
            return
        event = frame["body"].get("event")
        if not event or event.get("type") != "ContentEvent":
            return
        state["count"] += 1
        if state["count"] == first_measured:
            state["t0"], state["cpu0"], state["w0"] = time.perf_counter(), cpu_seconds(), now()
        if state["count"] == state["target"] and not reached.done():
            reached.set_result((time.perf_counter(), cpu_seconds(), now()))

    client.on_notification = on_notification
    if p["warmup"]:
        emit({"event": "ready", "phase": "warmup", "known": p["known"]})
        await asyncio.wait_for(reached, p["timeout"])
        reached = loop.create_future()
    state["target"] = p["warmup"] + p["events"]
    client.sample.clear()
    emit({"event": "ready", "phase": "measure", "known": p["known"]})
    t1, cpu1, w1 = await asyncio.wait_for(reached, p["timeout"])
    return {
        # The first measured message's own processing is not in the window: count the intervals.
        "events": p["events"] - 1,
        "seconds": t1 - state["t0"],
        "cpu_seconds": cpu1 - state["cpu0"],
        "known_conversations": p["known"],
        "window": [state["w0"], w1],
        **deflate_estimate(client.sample),
    }


SCENARIOS: dict[str, Callable[[Params, RawClient], Awaitable[Params]]] = {
    "pipeline": pipeline,
    "ingest": ingest,
}


async def main(scenario: str, p: Params) -> None:
    ctx = ssl.create_default_context(cafile=p["ca_file"])
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as http:
        async with asyncio.timeout(p["timeout"]):
            client = await _open(p, http)
            result = await SCENARIOS[scenario](p, client)
        await client.close()
    emit({"event": "result", "client": "raw", "scenario": scenario, "rss_bytes_end": rss_bytes(), **result})


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
