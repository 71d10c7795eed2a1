"""`make bench` in miniature: the bench hooks of the emulator, and the harness at tiny sizes.

The harness runs real processes (emulator, our client, node-agent-sdk) over TLS; sizes are
tiny so this stays a few seconds.  No speed is asserted, only that every number is produced.
"""

from __future__ import annotations

import json
import math
import shutil

import aiohttp
import pytest
from benchmarks import __main__ as bench_main
from benchmarks import harness, report
from benchmarks.common import median, percentile

from lpm.emulator.app import Emulator

PEER_INSTALLED = shutil.which("node") is not None and (harness.NODE_MODULES / "node-agent-sdk").is_dir()


def test_percentiles() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile(list(range(101)), 99) == 99.0
    assert math.isnan(percentile([], 50))
    assert median([1.0, float("nan"), 3.0]) == 2.0


async def test_bench_hooks_build_conversations_and_stream(emulator: Emulator) -> None:
    base = f"{emulator.base_url}/_emulator/bench"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/conversations", json={"count": 3, "messages": 2}) as resp:
            assert resp.status == 200
            ids = (await resp.json())["conversations"]
        acc = emulator.world.account(emulator.account_id)
        assert len(ids) == 3
        for conv_id in ids:
            conv = acc.conversations[conv_id]
            assert any(p.role == "ASSIGNED_AGENT" and p.id == "2001" for p in conv.main.participants)
            assert len(acc.events[conv_id]) == 2
        async with http.post(f"{base}/stream", json={"events": 7, "conversations": ids[:2]}) as resp:
            assert (await resp.json())["published"] == 7
        assert [len(acc.events[c]) for c in ids] == [6, 5, 2]
        async with http.post(f"{base}/consumers", json={"count": 2}) as resp:
            data = await resp.json()
        assert len(data["consumers"]) == 2 and data["bearer"]
        async with http.post(f"{base}/stream", json={"events": 1, "conversations": ["nope"]}) as resp:
            assert resp.status == 400


async def test_bench_hooks_need_faults() -> None:
    url = "/_emulator/bench/conversations"
    async with (
        Emulator() as emu,
        aiohttp.ClientSession() as http,
        http.post(f"{emu.base_url}{url}", json={"count": 1}) as resp,
    ):
        assert resp.status == 404


async def test_one_run_of_ours_produces_metrics() -> None:
    run = await harness.one_run("ours", "ingest", harness.SIZES["smoke"]["ingest"])
    assert run["metrics"]["events_per_s"] > 0
    assert run["metrics"]["cpu_us_per_event"] > 0
    assert 0 <= run["emulator_cpu"]["mean"] < 10


@pytest.mark.skipif(
    not PEER_INSTALLED, reason="node-agent-sdk is not installed (make conformance installs it)"
)
def test_harness_smoke_run_writes_results(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    docs = tmp_path / "performance.md"
    docs.write_text(f"intro\n{report.DOCS_BEGIN}\nold\n{report.DOCS_END}\noutro\n")
    original = bench_main.DOCS
    bench_main.DOCS = docs
    try:
        argv = ["--smoke", "--rounds", "1", "--out", str(tmp_path), "--write-docs"]
        for scenario in ("rtt", "recovery", "capacity"):
            argv += ["--scenario", scenario]
        assert bench_main.main(argv) == 0
    finally:
        bench_main.DOCS = original
    results = json.loads((tmp_path / "latest.json").read_text())
    assert set(results["scenarios"]) == {"rtt", "recovery", "capacity"}
    for client in ("ours", "peer"):
        assert results["scenarios"]["rtt"]["median"][client]["publish_p99_ms"] > 0
        assert results["scenarios"]["recovery"]["median"][client]["total_ms"] > 0
    assert results["scenarios"]["capacity"]["steps"][0]["messages_per_s"] > 0
    assert (tmp_path / "latest.png").read_bytes()[:4] == b"\x89PNG"
    text = docs.read_text()
    assert "| 2 PublishEvent p99 (ms) |" in text and "old" not in text and text.endswith("outro\n")
    assert "ours / peer" in capsys.readouterr().out
