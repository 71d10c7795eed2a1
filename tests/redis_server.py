"""A real ``redis-server`` on a free loopback port, for one test.

``make test`` installs Debian's ``redis-server`` when it is missing; without it
:func:`start_redis` fails (it never skips) with a message saying how to install it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class RedisServer:
    """A running server: its port, URL and process."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def start_redis(timeout: float = 10.0) -> Iterator[RedisServer]:
    """Start ``redis-server`` on a free loopback port without persistence, wait until it answers
    PING, yield it, and stop it (terminate, then kill) on exit."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise AssertionError(
            "redis-server is not installed: run `make test` (it installs Debian's redis-server) "
            "or `apt-get install -y redis-server`"
        )
    for _attempt in range(3):
        port = _free_port()
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and process.poll() is None and not _ping(port):
                time.sleep(0.05)
            if process.poll() is None and _ping(port):
                yield RedisServer(port, process)
                return
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
    raise AssertionError("redis-server did not start (tried three free ports)")
