"""Runs the scenarios: a fresh emulator process per run, each client in its own process, A/B rounds.

The emulator's CPU is sampled every 0.2 s (psutil) so every run reports how busy the emulator
was during the client's measured window; a run where it used more than ``SATURATED`` of a core
is flagged, since its numbers would then describe the emulator, not the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import ssl
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from benchmarks.common import median, percentile

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "tests" / "conformance" / "node" / "node_modules"
NODE_DRIVER = ROOT / "benchmarks" / "node" / "peer_bench.js"
#: Share of one core above which the emulator counts as saturated.
SATURATED = 0.9
CLIENTS = ("ours", "peer")

#: Scenario sizes. ``full`` is the issue's; ``quick`` for development; ``smoke`` for the unit test.
SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "full": {
        "connect": {"iterations": 30},
        "rtt": {"n": 1000, "warmup": 50},
        "pipeline": {"total": 20_000, "inflight": 1000, "conversations": 100},
        "ingest": {"events": 50_000, "conversations": 1000},
        "memory": {"conversations": 10_000, "messages": 10},
        "recovery": {"conversations": 100},
        "capacity": {"steps": [100, 250, 500, 1000, 1500, 2000], "seconds": 10.0},
    },
    "quick": {
        "connect": {"iterations": 8},
        "rtt": {"n": 200, "warmup": 20},
        "pipeline": {"total": 4000, "inflight": 500, "conversations": 50},
        "ingest": {"events": 5000, "conversations": 100},
        "memory": {"conversations": 1000, "messages": 10},
        "recovery": {"conversations": 20},
        "capacity": {"steps": [50, 200], "seconds": 3.0},
    },
    "smoke": {
        "connect": {"iterations": 2},
        "rtt": {"n": 10, "warmup": 2},
        "pipeline": {"total": 100, "inflight": 20, "conversations": 5},
        "ingest": {"events": 100, "conversations": 10},
        "memory": {"conversations": 20, "messages": 3},
        "recovery": {"conversations": 3},
        # At least one full send interval (1 s): every consumer then publishes inside the window.
        "capacity": {"steps": [5], "seconds": 1.2, "warmup": 0.3},
    },
}
SCENARIOS = ("connect", "rtt", "pipeline", "ingest", "memory", "recovery", "capacity")
AB_SCENARIOS = SCENARIOS[:-1]


class EmulatorProcess:
    """The emulator (``benchmarks.emulator_proc``) in a child process, with a CPU sampler."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.info: dict[str, Any] = {}
        self.samples: list[tuple[float, float]] = []
        #: Involuntary context switches (the OS preempted the emulator), one per sample.
        self.preemptions: list[int] = []
        self._sampler: asyncio.Task[None] | None = None
        self.http: aiohttp.ClientSession | None = None
        #: (epoch, pause ms) of every collector pause the emulator reported.
        self.gc_pauses: list[tuple[float, float]] = []
        self._stderr: asyncio.Task[None] | None = None

    async def __aenter__(self) -> EmulatorProcess:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.emulator_proc",
            cwd=str(ROOT),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._stderr = asyncio.create_task(self._read_stderr(self.proc.stderr))
        line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        if not line:
            raise RuntimeError("the emulator process exited before it was ready")
        self.info = json.loads(line)
        ctx = ssl.create_default_context(cafile=self.info["ca_file"])
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx))
        self._sampler = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
        if self._stderr is not None:
            self._stderr.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stderr
        if self.http is not None:
            await self.http.close()
        if self.proc is not None and self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                sys.stderr.write(line.decode(errors="replace"))  # a real error: show it
                continue
            if isinstance(event, dict) and "gc" in event:
                self.gc_pauses.append((event["t"], event["ms"]))

    async def _sample(self) -> None:
        ps = psutil.Process(self.info["pid"])
        while True:
            times = ps.cpu_times()
            self.samples.append((time.time(), times.user + times.system))
            self.preemptions.append(ps.num_ctx_switches().involuntary)
            await asyncio.sleep(0.2)

    def utilisation(self, start: float, end: float) -> dict[str, float]:
        """Mean and peak (per 0.2 s sample) share of one core the emulator used in [start, end]."""
        # The samples bracketing the window: the last one before it and the first one after it.
        before = [i for i, s in enumerate(self.samples) if s[0] <= start]
        after = [i for i, s in enumerate(self.samples) if s[0] >= end]
        first = before[-1] if before else 0
        last = after[0] if after else len(self.samples) - 1
        window = self.samples[first : last + 1]
        if len(window) < 2:
            return {"mean": float("nan"), "peak": float("nan"), "gc_max_ms": 0.0, "preempted_per_s": 0.0}
        mean = (window[-1][1] - window[0][1]) / max(window[-1][0] - window[0][0], 1e-6)
        peaks = [(b[1] - a[1]) / max(b[0] - a[0], 1e-6) for a, b in itertools.pairwise(window)]
        gc_ms = [ms for t, ms in self.gc_pauses if start <= t <= end]
        return {
            "mean": round(mean, 3),
            "peak": round(max(peaks), 3),
            "gc_max_ms": max(gc_ms, default=0.0),
            "preempted_per_s": round(
                (self.preemptions[last] - self.preemptions[first]) / max(window[-1][0] - window[0][0], 1e-6),
                1,
            ),
        }

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        assert self.http is not None
        async with self.http.post(self.info["base_url"] + path, json=body) as resp:
            data = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"{path} answered {resp.status}: {data}")
            return data


def _redact(text: str) -> str:
    """Error output without the tokens the load carries (JWTs, hex bearers)."""
    return re.sub(r"eyJ[\w-]+\.[\w-]+\.[\w-]*|[0-9a-f]{32,}", "<redacted>", text)


def client_params(emu: EmulatorProcess, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "csds_domain": emu.info["csds_domain"],
        "ca_file": emu.info["ca_file"],
        "account_id": emu.info["account_id"],
        "username": "bot",
        "password": "bot-password",
        "timeout": 300,
        **extra,
    }


async def run_client(
    client: str,
    scenario: str,
    params: dict[str, Any],
    on_ready: Callable[[], Awaitable[None]] | None = None,
    timeout: float = 600,
) -> dict[str, Any]:
    """Run one client process for one scenario; returns its result line (plus ``pid``/window)."""
    if client == "ours":
        argv = [sys.executable, "-m", "benchmarks.py_client", scenario, json.dumps(params)]
        env = dict(os.environ)
    else:
        argv = ["node", str(NODE_DRIVER), scenario, json.dumps(params)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("NODE_")}
        env["NODE_PATH"] = str(NODE_MODULES)
        env["NODE_EXTRA_CA_CERTS"] = params["ca_file"]
    start = time.time()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=str(ROOT),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        limit=64 * 1024 * 1024,
    )
    assert proc.stdout is not None and proc.stderr is not None
    stderr_task = asyncio.ensure_future(proc.stderr.read())
    result: dict[str, Any] | None = None
    try:
        async with asyncio.timeout(timeout):
            while line := await proc.stdout.readline():
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a log line of the SDK
                if event.get("event") == "ready" and on_ready is not None:
                    await on_ready()
                elif event.get("event") == "result":
                    result = event
                elif event.get("event") == "error":
                    raise RuntimeError(f"{client} {scenario}: {event.get('message')}")
            await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    stderr = (await stderr_task).decode(errors="replace")
    if result is None:
        raise RuntimeError(
            f"{client} {scenario} exited {proc.returncode} without a result:\n{stderr[-3000:]}"
        )
    result.setdefault("window", [start, time.time()])
    return result


# ---------------------------------------------------------------- scenarios


async def _conversations(emu: EmulatorProcess, count: int, messages: int = 0) -> list[str]:
    data = await emu.post("/_emulator/bench/conversations", {"count": count, "messages": messages})
    ids: list[str] = data["conversations"]
    return ids


async def one_run(client: str, scenario: str, size: dict[str, Any]) -> dict[str, Any]:
    """One client, one scenario, on a fresh emulator: raw result + derived metrics + emulator load."""
    async with EmulatorProcess() as emu:
        on_ready: Callable[[], Awaitable[None]] | None = None
        extra: dict[str, Any] = {}
        if scenario == "connect":
            extra = {"iterations": size["iterations"]}
        elif scenario == "rtt":
            extra = {"n": size["n"], "warmup": size["warmup"], "conversations": await _conversations(emu, 1)}
        elif scenario == "pipeline":
            ids = await _conversations(emu, size["conversations"])
            extra = {"total": size["total"], "inflight": size["inflight"], "conversations": ids}
        elif scenario == "ingest":
            await _conversations(emu, size["conversations"])
            extra = {"events": size["events"]}

            async def stream() -> None:
                await emu.post("/_emulator/bench/stream", {"events": size["events"], "hold": True})

            on_ready = stream
        elif scenario == "memory":
            await _conversations(emu, size["conversations"], size["messages"])
            extra = {"conversations": size["conversations"], "messages": size["messages"]}
        elif scenario == "recovery":
            await _conversations(emu, size["conversations"])

            async def drop() -> None:
                await emu.post("/_emulator/sockets/drop", {"user_id": "bot"})

            on_ready = drop
        raw = await run_client(client, scenario, client_params(emu, extra), on_ready)
        await asyncio.sleep(0.25)  # one more CPU sample after the window
        util = emu.utilisation(*raw["window"])
    metrics = derive(scenario, raw)
    return {
        "client": client,
        "metrics": metrics,
        "emulator_cpu": util,
        "emulator_saturated": bool(util["mean"] >= SATURATED),
    }


def derive(scenario: str, raw: dict[str, Any]) -> dict[str, float]:
    """The reported numbers of one run."""
    if scenario == "connect":
        s = raw["samples_ms"]
        return {"p50_ms": percentile(s, 50), "p99_ms": percentile(s, 99)}
    if scenario == "rtt":
        c, p = raw["get_clock_ms"], raw["publish_ms"]
        return {
            "get_clock_p50_ms": percentile(c, 50),
            "get_clock_p99_ms": percentile(c, 99),
            "publish_p50_ms": percentile(p, 50),
            "publish_p99_ms": percentile(p, 99),
        }
    if scenario == "pipeline":
        return {
            "messages_per_s": raw["messages"] / raw["seconds"],
            "cpu_s_per_1000": raw["cpu_seconds"] / raw["messages"] * 1000,
        }
    if scenario == "ingest":
        return {
            "events_per_s": raw["events"] / raw["seconds"],
            "cpu_us_per_event": raw["cpu_seconds"] / raw["events"] * 1e6,
        }
    if scenario == "memory":
        return {
            "rss_mb": raw["rss_bytes"] / 2**20,
            "rss_over_idle_mb": (raw["rss_bytes"] - raw["idle_rss_bytes"]) / 2**20,
            "load_s": raw["load_seconds"],
        }
    if scenario == "recovery":
        return {
            "total_ms": raw["total_ms"],
            "after_reconnect_ms": raw["after_reconnect_ms"],
            "subscriptions_ms": raw["subscriptions_ms"],
        }
    raise ValueError(scenario)


async def ab_scenario(
    scenario: str, size: dict[str, Any], rounds: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """``rounds`` alternating A/B rounds (ours first on even rounds, the peer first on odd ones)."""
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in CLIENTS}
    for r in range(rounds):
        order = CLIENTS if r % 2 == 0 else CLIENTS[::-1]
        for client in order:
            run = await one_run(client, scenario, size)
            runs[client].append(run)
            flag = "  EMULATOR SATURATED" if run["emulator_saturated"] else ""
            shown = ", ".join(f"{k}={v:.3g}" for k, v in run["metrics"].items())
            log(
                f"  {scenario} round {r + 1} {client}: {shown} "
                f"(emulator {run['emulator_cpu']['mean']:.0%}){flag}"
            )
    medians = {
        c: {k: median([run["metrics"][k] for run in runs[c]]) for k in runs[c][0]["metrics"]} for c in CLIENTS
    }
    ratios = {
        k: medians["ours"][k] / medians["peer"][k] if medians["peer"][k] else float("nan")
        for k in medians["ours"]
    }
    emulator = {
        c: {
            "mean": median([run["emulator_cpu"]["mean"] for run in runs[c]]),
            "peak": max(run["emulator_cpu"]["peak"] for run in runs[c]),
            "saturated_runs": sum(run["emulator_saturated"] for run in runs[c]),
        }
        for c in CLIENTS
    }
    return {
        "size": size,
        "rounds": rounds,
        "runs": runs,
        "median": medians,
        "ratio": ratios,
        "emulator": emulator,
    }


# ---------------------------------------------------------------- emulator capacity

#: The capacity criterion: p99 publish→delivery latency must stay below this.
CAPACITY_P99_MS = 50.0


async def capacity_step(n: int, seconds: float, warmup: float = 2.0) -> dict[str, Any]:
    """``n`` conversations, each one consumer message a second and one bot reply, on a fresh emulator."""
    async with EmulatorProcess() as emu:
        data = await emu.post("/_emulator/bench/consumers", {"count": n})
        params = {
            "ca_file": emu.info["ca_file"],
            "ws_base": emu.info["base_url"].replace("https://", "wss://"),
            "account_id": emu.info["account_id"],
            "consumers": data["consumers"],
            "bearer": data["bearer"],
            "interval": 1.0,
            "warmup": warmup,
            "seconds": seconds,
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.capacity",
            cwd=str(ROOT),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        # Tokens go through stdin, never the command line (visible to every user in ps).
        out, err = await asyncio.wait_for(proc.communicate(json.dumps(params).encode()), seconds + 300)
        lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
        result = next((line for line in lines if line.get("event") == "result"), None)
        if result is None:
            raise RuntimeError(f"capacity load exited {proc.returncode}:\n{_redact(err.decode()[-3000:])}")
        await asyncio.sleep(0.25)
        util = emu.utilisation(*result["window"])
    return {
        "conversations": n,
        "messages_per_s": result["messages_per_s"],
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "load_generator_cpu": round(result["load_cpu"], 3),
        "emulator_cpu": util,
        "emulator_saturated": bool(util["mean"] >= SATURATED),
        "passed": bool(result["p99_ms"] < CAPACITY_P99_MS),
    }


async def capacity_scenario(size: dict[str, Any], log: Callable[[str], None]) -> dict[str, Any]:
    """Rising N until p99 passes the limit; the largest N that passed and its messages/s."""
    steps = []
    best: dict[str, Any] | None = None
    for n in size["steps"]:
        step = await capacity_step(n, size["seconds"], size.get("warmup", 2.0))
        steps.append(step)
        log(
            f"  capacity N={n}: {step['messages_per_s']:.0f} msg/s, p50 {step['p50_ms']:.1f} ms, "
            f"p99 {step['p99_ms']:.1f} ms, emulator {step['emulator_cpu']['mean']:.0%}, "
            f"load generator {step['load_generator_cpu']:.0%}, longest emulator GC pause "
            f"{step['emulator_cpu']['gc_max_ms']:.0f} ms, emulator preempted "
            f"{step['emulator_cpu']['preempted_per_s']:.0f}/s"
            + ("  EMULATOR SATURATED" if step["emulator_saturated"] else "")
        )
        if not step["passed"]:
            break
        best = step
    return {
        "size": size,
        "p99_limit_ms": CAPACITY_P99_MS,
        "steps": steps,
        "max_conversations": best["conversations"] if best else 0,
        "messages_per_s_at_max": best["messages_per_s"] if best else 0.0,
        "p99_ms_at_max": best["p99_ms"] if best else float("nan"),
    }
