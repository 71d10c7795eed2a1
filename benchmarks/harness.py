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
import math
import os
import re
import shlex
import ssl
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class Variant:
    """One column of the results: a client program and its settings."""

    #: Key in the results (``ours``, ``peer``...).
    name: str
    #: ``py`` (benchmarks.py_client: our SDK), ``node`` (peer_bench.js: node-agent-sdk) or ``raw``
    #: (benchmarks.raw_client: aiohttp + msgspec, no SDK).
    runner: str
    #: Whether the client asks for permessage-deflate (verified from the emulator's record of
    #: every upgrade of the run).
    compression: bool
    #: How the table names it.
    label: str
    #: What it is set to, in words (the settings table of the report).
    settings: str


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            "ours",
            "py",
            False,
            "lpm",
            "this tree; `compression=False` (the default); `max_frame_size` 64 MiB (the bench's "
            "10,000-conversation snapshot is one frame of more than 16 MiB)",
        ),
        Variant("peer", "node", False, "node-agent-sdk", "`perMessageDeflate: false` in the Agent config"),
        Variant(
            "raw",
            "raw",
            False,
            "raw aiohttp + msgspec",
            "`ws_connect(compress=0)`; decodes every frame, matches responses by id, nothing else",
        ),
        Variant(
            "peer_deflate",
            "node",
            True,
            "node-agent-sdk, default",
            "its defaults: `ws` offers permessage-deflate and the emulator accepts",
        ),
        Variant("ours_deflate", "py", True, "lpm, compression", "as lpm, with `compression=True`"),
        # Only with --baseline: our SDK from another source tree (the same driver).
        Variant("before", "py", False, "lpm before", "the --baseline tree; otherwise as lpm"),
    )
}

#: Scenario sizes. ``full`` is the issue's; ``quick`` for development; ``smoke`` for the unit test.
SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "full": {
        "connect": {"iterations": 30},
        "rtt": {"n": 1000, "warmup": 50},
        "rtt_db": {"n": 1000, "warmup": 50},
        "pipeline": {"total": 20_000, "warmup": 3000, "inflight": 1000, "conversations": 100},
        "pipeline_db": {"total": 20_000, "warmup": 3000, "inflight": 1000, "conversations": 100},
        "ingest": {"events": 50_000, "warmup": 5000, "conversations": 1000},
        "history": {"conversations": 10_000, "messages": 10},
        "memory": {"conversations": 10_000, "messages": 10},
        "recovery": {"conversations": 10_000},
        "capacity": {"steps": [100, 250, 500, 1000, 1500, 2000], "seconds": 10.0},
    },
    "quick": {
        "connect": {"iterations": 8},
        "rtt": {"n": 200, "warmup": 20},
        "rtt_db": {"n": 200, "warmup": 20},
        "pipeline": {"total": 4000, "warmup": 1000, "inflight": 500, "conversations": 50},
        "pipeline_db": {"total": 4000, "warmup": 1000, "inflight": 500, "conversations": 50},
        "ingest": {"events": 5000, "warmup": 1000, "conversations": 100},
        "history": {"conversations": 1000, "messages": 10},
        "memory": {"conversations": 1000, "messages": 10},
        "recovery": {"conversations": 1000},
        "capacity": {"steps": [50, 200], "seconds": 3.0},
    },
    "smoke": {
        "connect": {"iterations": 2},
        "rtt": {"n": 10, "warmup": 2},
        "rtt_db": {"n": 10, "warmup": 2},
        "pipeline": {"total": 100, "warmup": 20, "inflight": 20, "conversations": 5},
        "pipeline_db": {"total": 100, "warmup": 20, "inflight": 20, "conversations": 5},
        "ingest": {"events": 100, "warmup": 20, "conversations": 10},
        "history": {"conversations": 20, "messages": 3},
        "memory": {"conversations": 20, "messages": 3},
        "recovery": {"conversations": 3},
        # At least one full send interval (1 s): every consumer then publishes inside the window.
        "capacity": {"steps": [5], "seconds": 1.2, "warmup": 0.3},
    },
}
SCENARIOS = (
    "connect",
    "rtt",
    "rtt_db",
    "pipeline",
    "pipeline_db",
    "ingest",
    "history",
    "memory",
    "recovery",
    "capacity",
)
AB_SCENARIOS = SCENARIOS[:-1]
#: The columns of each scenario: ours and the peer with the same settings (no compression) first,
#: the raw floor where the issue asks for it, then the peer with its default (compression
#: negotiated) and ours with compression where that comparison says something.
SCENARIO_VARIANTS: dict[str, tuple[str, ...]] = {
    "connect": ("ours", "peer", "peer_deflate"),
    "rtt": ("ours", "peer", "peer_deflate"),
    "rtt_db": ("ours", "peer"),
    "pipeline": ("ours", "peer", "raw", "peer_deflate", "ours_deflate"),
    "pipeline_db": ("ours", "peer"),
    "ingest": ("ours", "peer", "raw", "peer_deflate", "ours_deflate"),
    "history": ("ours", "peer", "peer_deflate"),
    "memory": ("ours", "peer"),
    "recovery": ("ours", "peer", "peer_deflate"),
}
#: The ratios reported per scenario (numerator, denominator), when both columns ran: each is
#: computed per round (runs of the same round) and shown as the median with its range.
#: Every pair compares equal settings except the two ``*/ours``, ``*/peer`` pairs, which show
#: what compression costs one client.
RATIOS: tuple[tuple[str, str], ...] = (
    ("ours", "peer"),
    ("ours", "raw"),
    ("ours_deflate", "peer_deflate"),
    ("ours_deflate", "ours"),
    ("peer_deflate", "peer"),
    ("ours", "before"),
)
#: Scenarios run against an emulator keeping its world in a SQLite file (``--db``), and the client
#: scenario each runs: the same work as without the file, so the pair shows what durable
#: acknowledgements cost (every acknowledged publish is committed before its answer is sent).
DB_SCENARIOS = {"rtt_db": "rtt", "pipeline_db": "pipeline"}


#: Environment variable naming a source tree whose emulator the runs use (default: this tree's).
EMULATOR_TREE_ENV = "LPM_BENCH_EMULATOR_TREE"


class EmulatorProcess:
    """The emulator (``benchmarks.emulator_proc``) in a child process, with a CPU sampler.

    ``db``: keep the world in this SQLite file (``--db``); None keeps it in memory.
    """

    def __init__(self, db: Path | None = None) -> None:
        self.db = db
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
        env = dict(os.environ)
        tree = os.environ.get(EMULATOR_TREE_ENV)
        if tree:
            # The emulator of another source tree (a fixed one: a before/after then compares
            # the clients only, whatever happens to the emulator in this tree meanwhile).
            env["PYTHONPATH"] = os.pathsep.join([str(Path(tree) / "src"), str(ROOT)])
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.emulator_proc",
            *(["--db", str(self.db)] if self.db is not None else []),
            cwd=str(ROOT),
            env=env,
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

    async def get(self, path: str) -> Any:
        assert self.http is not None
        async with self.http.get(self.info["base_url"] + path) as resp:
            data = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"{path} answered {resp.status}: {data}")
            return data

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


def client_params(emu: EmulatorProcess, variant: Variant, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "csds_domain": emu.info["csds_domain"],
        "ca_file": emu.info["ca_file"],
        "account_id": emu.info["account_id"],
        "username": "bot",
        "password": "bot-password",
        "timeout": 300,
        "compression": variant.compression,
        **extra,
    }


OnReady = Callable[[dict[str, Any]], Awaitable[None]]


async def run_client(
    variant: Variant,
    scenario: str,
    params: dict[str, Any],
    on_ready: OnReady | None = None,
    timeout: float = 900,
    baseline: Path | None = None,
) -> dict[str, Any]:
    """Run one client process for one scenario; returns its result line (plus its window).

    ``on_ready`` is awaited with every ``{"event": "ready", ...}`` line the client prints (the
    harness then acts on the emulator: streams, drops the socket).  ``baseline``: the source
    tree whose ``src/lpm`` the ``before`` variant imports instead of this one.
    """
    if variant.runner == "node":
        argv = ["node", str(NODE_DRIVER), scenario, json.dumps(params)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("NODE_")}
        env["NODE_PATH"] = str(NODE_MODULES)
        env["NODE_EXTRA_CA_CERTS"] = params["ca_file"]
    else:
        module = "benchmarks.raw_client" if variant.runner == "raw" else "benchmarks.py_client"
        argv = [sys.executable, "-m", module, scenario, json.dumps(params)]
        profile_dir = os.environ.get("LPM_BENCH_PROFILE")
        if profile_dir and variant.runner == "py" and variant.name != "before":
            # Where the time goes: cProfile of our client, one file per scenario and variant.
            out = Path(profile_dir) / f"{scenario}-{variant.name}.prof"
            argv = [
                sys.executable,
                "-m",
                "cProfile",
                "-o",
                str(out),
                "-m",
                module,
                scenario,
                json.dumps(params),
            ]
        wrap = os.environ.get("LPM_BENCH_WRAP")
        if wrap and variant.runner == "py" and variant.name != "before":
            # A sampling profiler (e.g. ``py-spy record -o {out} --``) around our client:
            # ``{scenario}`` and ``{variant}`` in the command are filled in.
            argv = [*shlex.split(wrap.format(scenario=scenario, variant=variant.name)), *argv]
        env = dict(os.environ)
        if variant.name == "before":
            if baseline is None:
                raise ValueError("the 'before' variant needs a baseline tree (--baseline)")
            env["PYTHONPATH"] = os.pathsep.join([str(baseline / "src"), str(ROOT)])
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
                if not isinstance(event, dict):
                    continue
                if event.get("event") == "ready" and on_ready is not None:
                    await on_ready(event)
                elif event.get("event") == "result":
                    result = event
                elif event.get("event") == "error":
                    raise RuntimeError(f"{variant.name} {scenario}: {event.get('message')}")
            await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    stderr = (await stderr_task).decode(errors="replace")
    if result is None:
        raise RuntimeError(
            f"{variant.name} {scenario} exited {proc.returncode} without a result:\n{_redact(stderr[-3000:])}"
        )
    result.setdefault("window", [start, time.time()])
    return result


# ---------------------------------------------------------------- scenarios


async def _conversations(emu: EmulatorProcess, count: int, messages: int = 0) -> list[str]:
    data = await emu.post("/_emulator/bench/conversations", {"count": count, "messages": messages})
    ids: list[str] = data["conversations"]
    return ids


def check_upgrades(variant: Variant, records: list[dict[str, Any]]) -> dict[str, Any]:
    """What the run's upgrades negotiated, checked against the variant's setting.

    Raises when a socket of the run negotiated otherwise than the variant claims (a comparison
    with other settings than the table says would be wrong), or when there was no upgrade."""
    if not records:
        raise RuntimeError(f"{variant.name}: the emulator recorded no WebSocket upgrade")
    answered = sorted({r.get("answered") or "none" for r in records})
    offered = sorted({r.get("offered") or "none" for r in records})
    deflate = [a.startswith("permessage-deflate") for a in answered]
    if (variant.compression and not all(deflate)) or (not variant.compression and any(deflate)):
        raise RuntimeError(
            f"{variant.name} should run {'with' if variant.compression else 'without'} compression, but "
            f"the emulator answered {answered} to the offers {offered}"
        )
    return {"count": len(records), "offered": offered, "answered": answered}


async def one_run(
    variant: str | Variant, scenario: str, size: dict[str, Any], baseline: Path | None = None
) -> dict[str, Any]:
    """One client, one scenario, on a fresh emulator: raw result + derived metrics + emulator load
    + what its upgrades negotiated."""
    v = VARIANTS[variant] if isinstance(variant, str) else variant
    if scenario in DB_SCENARIOS:
        with tempfile.TemporaryDirectory(prefix="lpm-bench-db-") as tmp:
            return await _one_run(v, scenario, size, Path(tmp) / "world.db", baseline)
    return await _one_run(v, scenario, size, None, baseline)


async def _one_run(
    variant: Variant, scenario: str, size: dict[str, Any], db: Path | None, baseline: Path | None
) -> dict[str, Any]:
    async with EmulatorProcess(db) as emu:
        scenario = DB_SCENARIOS.get(scenario, scenario)
        on_ready: OnReady | None = None
        extra: dict[str, Any] = {}
        if scenario == "connect":
            extra = {"iterations": size["iterations"]}
        elif scenario == "rtt":
            extra = {"n": size["n"], "warmup": size["warmup"], "conversations": await _conversations(emu, 1)}
        elif scenario == "pipeline":
            ids = await _conversations(emu, size["conversations"])
            extra = {
                "total": size["total"],
                "warmup": size["warmup"],
                "inflight": size["inflight"],
                "conversations": ids,
            }
        elif scenario == "ingest":
            await _conversations(emu, size["conversations"])
            extra = {"events": size["events"], "warmup": size["warmup"]}

            async def stream(event: dict[str, Any]) -> None:
                count = size["warmup"] if event.get("phase") == "warmup" else size["events"]
                await emu.post("/_emulator/bench/stream", {"events": count, "hold": True})

            on_ready = stream
        elif scenario in ("history", "memory"):
            await _conversations(emu, size["conversations"], size["messages"])
            extra = {"conversations": size["conversations"], "messages": size["messages"]}
        elif scenario == "recovery":
            await _conversations(emu, size["conversations"])

            async def drop(event: dict[str, Any]) -> None:
                await emu.post("/_emulator/sockets/drop", {"user_id": "bot"})

            on_ready = drop
        params = client_params(emu, variant, extra)
        raw = await run_client(
            variant, scenario, params, on_ready, timeout=params["timeout"] + 60, baseline=baseline
        )
        await asyncio.sleep(0.25)  # one more CPU sample after the window
        util = emu.utilisation(*raw["window"])
        upgrades = check_upgrades(variant, (await emu.get("/_emulator/bench/upgrades"))["upgrades"])
    if variant.runner == "node" and raw.get("extensions"):
        # The peer's own view (ws's negotiated extensions) must agree with the emulator's.
        upgrades["client_view"] = raw["extensions"]
        if (raw["extensions"] != ["none"]) != variant.compression:
            raise RuntimeError(f"{variant.name}: ws reports the extensions {raw['extensions']}")
    if variant.name == "before" and baseline is not None:
        measured = Path(raw.get("lpm_path", "?"))
        if measured != (baseline / "src" / "lpm").resolve():
            raise RuntimeError(f"the 'before' run imported lpm from {measured}, not from {baseline}")
    metrics = derive(scenario, raw)
    if scenario == "pipeline":
        # The emulator's own cost per message (the client may be the bottleneck of messages/s):
        # what the *_db pair compares to show the price of committing before acknowledging.
        metrics["emulator_cpu_s_per_1000"] = util["mean"] * raw["seconds"] / raw["messages"] * 1000
    run: dict[str, Any] = {
        "client": variant.name,
        "metrics": metrics,
        "emulator_cpu": util,
        "emulator_saturated": bool(util["mean"] >= SATURATED),
        "upgrades": upgrades,
    }
    if "plain_bytes_per_frame" in raw:
        run["wire"] = {k: raw[k] for k in ("plain_bytes_per_frame", "deflated_bytes_per_frame")}
    return run


def derive(scenario: str, raw: dict[str, Any]) -> dict[str, float]:
    """The reported numbers of one run."""
    scenario = DB_SCENARIOS.get(scenario, scenario)
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
            "cpu_us_per_message": raw["cpu_seconds"] / raw["messages"] * 1e6,
            **_gc_share(raw),
        }
    if scenario == "ingest":
        return {
            "events_per_s": raw["events"] / raw["seconds"],
            "cpu_us_per_event": raw["cpu_seconds"] / raw["events"] * 1e6,
            **_gc_share(raw),
        }
    if scenario == "history":
        return {
            "seconds": raw["seconds"],
            "cpu_seconds": raw["cpu_seconds"],
            "rss_mb": raw["rss_bytes"] / 2**20,
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


def _gc_share(raw: dict[str, Any]) -> dict[str, float]:
    """The part of a Python client's CPU spent in the garbage collector (NaN for a client that
    does not report it: node-agent-sdk, the raw client)."""
    in_gc, cpu = raw.get("gc_seconds"), raw.get("cpu_seconds")
    if not isinstance(in_gc, float) or not cpu:
        return {"gc_cpu_share": math.nan}
    return {"gc_cpu_share": in_gc / cpu}


def ratio_stats(num: list[float], den: list[float]) -> dict[str, Any]:
    """Per-round ratios ``num[r] / den[r]``: their median, min and max (NaN where undefined)."""
    rounds = [
        a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan
        for a, b in zip(num, den, strict=True)
    ]
    kept = [r for r in rounds if not math.isnan(r)]
    return {
        "median": median(kept),
        "min": min(kept) if kept else math.nan,
        "max": max(kept) if kept else math.nan,
        "rounds": rounds,
    }


def round_order(variants: tuple[str, ...], r: int) -> tuple[str, ...]:
    """Round ``r``'s order: the list rotated by ``r``, so each column runs first in turn (two
    columns alternate) and none always runs just after the same one's load."""
    k = r % len(variants)
    return variants[k:] + variants[:k]


async def ab_scenario(
    scenario: str,
    size: dict[str, Any],
    rounds: int,
    log: Callable[[str], None],
    variants: tuple[str, ...] | None = None,
    baseline: Path | None = None,
) -> dict[str, Any]:
    """``rounds`` rounds of one run per column (``variants``, by default the scenario's), the
    order changing between rounds; medians per column and per-round ratios per pair."""
    columns = variants or SCENARIO_VARIANTS[scenario]
    if baseline is not None and "before" not in columns:
        columns = (*columns, "before")
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in columns}
    for r in range(rounds):
        for name in round_order(columns, r):
            run = await one_run(name, scenario, size, baseline)
            runs[name].append(run)
            flag = "  EMULATOR SATURATED" if run["emulator_saturated"] else ""
            shown = ", ".join(f"{k}={v:.3g}" for k, v in run["metrics"].items())
            log(
                f"  {scenario} round {r + 1} {name}: {shown} (emulator {run['emulator_cpu']['mean']:.0%}; "
                f"upgrades answered {', '.join(run['upgrades']['answered'])}){flag}"
            )
    metrics = list(runs[columns[0]][0]["metrics"])
    medians = {c: {k: median([run["metrics"][k] for run in runs[c]]) for k in metrics} for c in columns}
    ratios = {
        f"{a}/{b}": {
            k: ratio_stats([run["metrics"][k] for run in runs[a]], [run["metrics"][k] for run in runs[b]])
            for k in metrics
        }
        for a, b in RATIOS
        if a in runs and b in runs
    }
    emulator = {
        c: {
            "mean": median([run["emulator_cpu"]["mean"] for run in runs[c]]),
            "peak": max(run["emulator_cpu"]["peak"] for run in runs[c]),
            "saturated_runs": sum(run["emulator_saturated"] for run in runs[c]),
        }
        for c in columns
    }
    upgrades = {
        c: {
            "offered": sorted({o for run in runs[c] for o in run["upgrades"]["offered"]}),
            "answered": sorted({a for run in runs[c] for a in run["upgrades"]["answered"]}),
            "count": sum(run["upgrades"]["count"] for run in runs[c]),
        }
        for c in columns
    }
    out: dict[str, Any] = {
        "size": size,
        "rounds": rounds,
        "variants": list(columns),
        "runs": runs,
        "median": medians,
        "ratio": ratios,
        "emulator": emulator,
        "upgrades": upgrades,
    }
    wire = [run["wire"] for run in runs.get("raw", []) if "wire" in run]
    if wire:
        out["wire"] = {k: median([w[k] for w in wire]) for k in wire[0]}
    return out


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
