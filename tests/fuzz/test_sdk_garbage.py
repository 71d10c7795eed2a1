"""(b) A live SDK connection receiving garbage frames from the server.

The emulator plays the misbehaving server: random text, random JSON and mutated golden frames
are written into the SDK's own socket by its server session (binary frames too).  Every frame
that is not a valid UMS frame is reported on the connection's ``error`` event as a
:class:`lpm.errors.ProtocolError`; nothing else but SDK errors (``LpmError``) is ever reported;
the connection stays connected and a request made afterwards is answered.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import lpm
from lpm.errors import LpmError, ProtocolError
from lpm.protocol import frames
from tests.fuzz.common import LoopEmulator, golden_frames, mutated, protocol_objects, scaled

ACC = "12345678"
GOLDEN = golden_frames()


class Client:
    def __init__(self, env: LoopEmulator, user_type: str) -> None:
        self.env = env
        self.dialect = "brand" if user_type == "brand" else "consumer"
        options: dict[str, Any] = {"reconnect_schedule": (0.05,), "wait_to_reconnect": 0.05}
        if user_type == "brand":
            options["auth_data"] = {"username": "bot", "password": "bot-password"}
            utype = lpm.UserType.BRAND
        else:
            options["unauth_connector_id"] = "3001"
            utype = lpm.UserType.CONSUMER
        self.conn = lpm.create_connection(
            account_id=ACC, user_type=utype, csds_domain=env.emu.csds_domain, **options
        )
        self.errors: list[BaseException] = []
        self.disconnects = 0
        self.conn.on("error", self.errors.append)
        self.conn.on("disconnect", lambda *_: setattr(self, "disconnects", self.disconnects + 1))
        env.run(self.conn.open())

    def session(self) -> Any:
        ctx = self.env.emu.ctx
        assert ctx is not None
        [session] = [s for s in ctx.hub.sessions if s.actor is not None and s.dialect.value == self.dialect]
        return session

    def feed(self, data: str | bytes, *, binary: bool = False) -> list[BaseException]:
        """Have the server write ``data``; return what the connection reported meanwhile."""
        before = len(self.errors)

        async def go() -> None:
            session = self.session()
            if binary:
                await session.ws.send_bytes(data)
            else:
                # Queued like any frame the server writes: it arrives before the answer below.
                session._out.put_nowait(data.encode() if isinstance(data, str) else data)
            assert await self.conn.get_clock() > 0

        self.env.run(go())
        assert self.conn.state == lpm.ConnectionState.CONNECTED
        assert self.disconnects == 0
        reported = self.errors[before:]
        assert all(isinstance(e, LpmError) for e in reported), reported
        return reported


@pytest.fixture(scope="module")
def env() -> Iterator[LoopEmulator]:
    env = LoopEmulator()
    try:
        yield env
    finally:
        env.close()


@pytest.fixture(scope="module", params=["consumer", "brand"])
def client(env: LoopEmulator, request: pytest.FixtureRequest) -> Iterator[Client]:
    client = Client(env, request.param)
    try:
        yield client
    finally:
        env.run(client.conn.close())


def invalid(data: str) -> bool:
    try:
        frame = frames.decode_frame(data)
    except frames.FrameError:
        return True
    return isinstance(frame, frames.Request)


@scaled(40)
@given(st.text(max_size=200) | protocol_objects.map(json.dumps))
def test_random_frames_are_reported_and_the_connection_goes_on(client: Client, data: str) -> None:
    reported = client.feed(data)
    if invalid(data):
        assert any(isinstance(e, ProtocolError) for e in reported), (data, reported)


@scaled(40)
@given(st.sampled_from(sorted(GOLDEN)), st.data())
def test_mutated_golden_frames_are_survived(client: Client, name: str, data: st.DataObject) -> None:
    text = json.dumps(data.draw(mutated(GOLDEN[name])))
    reported = client.feed(text)
    if invalid(text):
        assert any(isinstance(e, ProtocolError) for e in reported), (text, reported)


@scaled(5)
@given(st.binary(min_size=1, max_size=64))
def test_binary_frames_are_reported(client: Client, data: bytes) -> None:
    reported = client.feed(data, binary=True)
    assert [type(e) for e in reported] == [ProtocolError]
