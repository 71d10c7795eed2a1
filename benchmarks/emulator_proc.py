"""The emulator in its own process for the benchmarks: ``python -m benchmarks.emulator_proc``.

TLS (node-agent-sdk hard-codes https/wss), the control and bench APIs on, snapshots uncapped so
a subscription sees every benchmark conversation; ``--db FILE`` keeps the world in a SQLite file
as ``lpm emulator --db`` does (the ``*_db`` scenarios: what durable acknowledgements cost).
Prints one JSON line (where to connect, the pid whose CPU the harness watches) and serves until
stdin closes.  Garbage-collector pauses longer than 5 ms are reported on stderr as JSON lines
``{"gc": generation, "ms": pause, "t": epoch}``: a full collection stops the emulator's only
thread, and the harness lines them up with the latencies it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
from typing import Any

from lpm.emulator.app import Emulator

_REPORTED_PAUSE_MS = 5.0


def _watch_gc() -> None:
    started = [0.0]

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        ms = (time.perf_counter() - started[0]) * 1000
        if ms > _REPORTED_PAUSE_MS:
            line = {"gc": info["generation"], "ms": round(ms, 1), "t": time.time()}
            sys.stderr.write(json.dumps(line) + "\n")
            sys.stderr.flush()

    gc.callbacks.append(callback)


async def main(db: str | None = None) -> None:
    """Serve until stdin closes; ``db``: the SQLite file of the world (None: in memory)."""
    _watch_gc()
    emu = Emulator(db=db, tls=True, faults=True, snapshot_limit=1_000_000, port=0)
    async with emu:
        # What start-up allocated (modules, the default world) is never garbage: freezing it
        # keeps full collections short and, above all, keeps *when* they fall independent of how
        # much code the package imports -- otherwise one more module can move a 15-20 ms pause
        # into a measured window (seen in the recovery scenario).
        gc.collect()
        gc.freeze()
        info = {
            "csds_domain": emu.csds_domain,
            "ca_file": str(emu.ca_file),
            "base_url": emu.base_url,
            "account_id": emu.account_id,
            "pid": os.getpid(),
        }
        sys.stdout.write(json.dumps(info) + "\n")
        sys.stdout.flush()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.emulator_proc")
    parser.add_argument("--db", help="keep the world in this SQLite file (default: in memory)")
    asyncio.run(main(parser.parse_args().db))
