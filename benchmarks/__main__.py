"""``python -m benchmarks`` (``make bench``): every scenario, ours and node-agent-sdk, A/B rounds.

Options: ``--quick`` (small sizes, for development), ``--scenario NAME`` (repeatable),
``--rounds N`` (default 3), ``--out DIR`` (default benchmarks/results), ``--write-docs``
(rewrite the generated section of docs/performance.md with this run's table), ``--baseline
TREE`` (also run our SDK from another source tree, e.g. ``git archive <commit> src | tar -x -C
TREE``, as a "before" column: a before/after table from one run on one machine).  Environment:
``LPM_BENCH_EMULATOR_TREE=TREE`` runs the emulator of that source tree (a fixed one) in every run,
``LPM_BENCH_PROFILE=DIR`` writes a cProfile of our client per scenario, ``LPM_BENCH_WRAP=COMMAND``
runs our client under a command (a sampling profiler: ``py-spy record -o {scenario}.txt -f raw --``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.metadata
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from benchmarks import harness, report

DOCS = harness.ROOT / "docs" / "performance.md"


def machine() -> dict[str, Any]:
    """What the numbers ran on."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    node = shutil.which("node")
    node_version = (
        subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip() if node else "-"
    )
    peer = json.loads((harness.NODE_MODULES / "node-agent-sdk" / "package.json").read_text())["version"]
    ws = json.loads((harness.NODE_MODULES / "ws" / "package.json").read_text())["version"]
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "node": node_version,
        "peer_sdk": peer,
        "peer_ws": ws,
        "lpm": importlib.metadata.version("lp-messaging-sdk"),
        "aiohttp": importlib.metadata.version("aiohttp"),
        "msgspec": importlib.metadata.version("msgspec"),
        "load_average": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _clean(value: Any) -> Any:
    """JSON without NaN (null instead), so every JSON reader accepts the file."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


async def run(args: argparse.Namespace) -> dict[str, Any]:
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    sizes = harness.SIZES[mode]
    chosen = args.scenario or list(harness.SCENARIOS)
    unknown = sorted(set(chosen) - set(harness.SCENARIOS))
    if unknown:
        raise SystemExit(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(harness.SCENARIOS)}"
        )

    def log(text: str) -> None:
        print(text, flush=True)

    run_started = time.perf_counter()
    results: dict[str, Any] = {
        "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": mode,
        "rounds": args.rounds,
        "command": " ".join(["python -m benchmarks", *(args.argv or [])]),
        "baseline": str(args.baseline) if args.baseline else None,
        "emulator_tree": os.environ.get(harness.EMULATOR_TREE_ENV) or None,
        "machine": machine(),
        "scenarios": {},
    }
    log(
        f"benchmarks ({mode}) on {results['machine']['cpu_model']}, load {results['machine']['load_average']}"
    )
    for scenario in harness.SCENARIOS:
        if scenario not in chosen:
            continue
        started = time.perf_counter()
        log(f"{scenario}:")
        if scenario == "capacity":
            results["scenarios"][scenario] = await harness.capacity_scenario(sizes[scenario], log)
        else:
            results["scenarios"][scenario] = await harness.ab_scenario(
                scenario, sizes[scenario], args.rounds, log, baseline=args.baseline
            )
        log(f"  ({time.perf_counter() - started:.0f} s)")
    results["finished"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    results["seconds"] = round(time.perf_counter() - run_started)
    results["machine"]["load_average_end"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    results["goals"] = report.goals(results)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (development)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (the unit test)")
    parser.add_argument("--scenario", action="append", help=f"one of {', '.join(harness.SCENARIOS)}")
    parser.add_argument("--rounds", type=int, default=3, help="A/B rounds per scenario (default 3)")
    parser.add_argument("--out", type=Path, default=harness.ROOT / "benchmarks" / "results")
    parser.add_argument(
        "--write-docs", action="store_true", help="rewrite the generated section of docs/performance.md"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a source tree (with src/lpm) run as an extra 'before' column of our SDK",
    )
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.baseline is not None:
        args.baseline = args.baseline.resolve()
        if not (args.baseline / "src" / "lpm" / "__init__.py").is_file():
            parser.error(f"--baseline {args.baseline} has no src/lpm/__init__.py")
    results = asyncio.run(run(args))
    table = report.markdown(results)
    print()
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(_clean(results), indent=1) + "\n")
    report.chart(results, args.out / "latest.png")
    print(f"wrote {args.out / 'latest.json'} and {args.out / 'latest.png'}")
    if args.write_docs:
        report.write_docs(table, DOCS)
        print(f"updated {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
