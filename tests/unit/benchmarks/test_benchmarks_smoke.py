"""`make bench` in miniature: the bench hooks of the emulator, and the harness at tiny sizes.

The harness runs real processes (emulator, our client, node-agent-sdk) over TLS; sizes are
tiny so this stays a few seconds.  No speed is asserted, only that every number is produced.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil

import aiohttp
import pytest
from benchmarks import __main__ as bench_main
from benchmarks import harness, raw_client, replay, report
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
        async with http.get(f"{base}/upgrades") as resp:
            assert resp.status == 200 and (await resp.json()) == {"upgrades": []}


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
    assert 0 <= run["metrics"]["gc_cpu_share"] < 1  # the collector's part of that CPU
    assert 0 <= run["emulator_cpu"]["mean"] < 10
    assert run["upgrades"] == {"count": 1, "offered": ["none"], "answered": ["none"]}


async def test_one_run_of_the_raw_client_and_of_ours_compressed() -> None:
    size = harness.SIZES["smoke"]["pipeline"]
    raw = await harness.one_run("raw", "pipeline", size)
    assert raw["metrics"]["messages_per_s"] > 0 and raw["metrics"]["cpu_us_per_message"] > 0
    assert math.isnan(raw["metrics"]["gc_cpu_share"])  # only our client reports it
    assert raw["upgrades"]["answered"] == ["none"]
    compressed = await harness.one_run("ours_deflate", "ingest", harness.SIZES["smoke"]["ingest"])
    assert compressed["metrics"]["events_per_s"] > 0
    assert compressed["upgrades"]["answered"][0].startswith("permessage-deflate")


def test_upgrades_must_match_the_column_setting() -> None:
    off, on = harness.VARIANTS["peer"], harness.VARIANTS["peer_deflate"]
    plain = {"face": "brand", "offered": None, "answered": None}
    deflate = {"face": "brand", "offered": "permessage-deflate", "answered": "permessage-deflate"}
    assert harness.check_upgrades(off, [plain, plain]) == {
        "count": 2,
        "offered": ["none"],
        "answered": ["none"],
    }
    assert harness.check_upgrades(on, [deflate])["answered"] == ["permessage-deflate"]
    with pytest.raises(RuntimeError, match="should run without compression"):
        harness.check_upgrades(off, [plain, deflate])
    with pytest.raises(RuntimeError, match="should run with compression"):
        harness.check_upgrades(on, [plain])
    with pytest.raises(RuntimeError, match="no WebSocket upgrade"):
        harness.check_upgrades(off, [])


def test_ratios_are_per_round_with_their_range() -> None:
    stats = harness.ratio_stats([2.0, 3.0, 8.0], [1.0, 2.0, 4.0])
    assert stats["rounds"] == [2.0, 1.5, 2.0]
    assert (stats["median"], stats["min"], stats["max"]) == (2.0, 1.5, 2.0)
    assert report._ratio(stats) == "2.00 (1.50\u20132.00)"
    assert report._ratio(harness.ratio_stats([1.0], [4.0])) == "0.25"
    assert math.isnan(harness.ratio_stats([1.0], [0.0])["median"])


def test_round_order_changes_who_goes_first() -> None:
    columns = ("ours", "peer", "raw")
    orders = [harness.round_order(columns, r) for r in range(3)]
    assert [o[0] for o in orders] == ["ours", "peer", "raw"]
    assert all(sorted(o) == sorted(columns) for o in orders)
    assert harness.round_order(("ours", "peer"), 1) == ("peer", "ours")


def test_deflate_estimate_of_repeated_frames() -> None:
    frame = json.dumps({"kind": "notification", "type": "x", "body": {"text": "bench " * 20}})
    est = raw_client.deflate_estimate([frame] * 50)
    assert est["plain_bytes_per_frame"] == len(frame)
    assert 0 < est["deflated_bytes_per_frame"] < len(frame) / 5
    assert raw_client.deflate_estimate([])["plain_bytes_per_frame"] == 0.0


def _synthetic(ratios: dict[str, float]) -> dict[str, object]:
    def scenario(metrics: dict[str, float], size: dict[str, int]) -> dict[str, object]:
        return {
            "size": size,
            "median": {"ours": dict(metrics), "peer": dict(metrics)},
            "ratio": {
                "ours/peer": {k: harness.ratio_stats([ratios.get(k, 1.0)], [1.0]) for k in metrics},
                "ours/raw": {k: harness.ratio_stats([ratios.get("raw_" + k, 1.0)], [1.0]) for k in metrics},
            },
            "upgrades": {},
        }

    return {
        "scenarios": {
            "ingest": scenario({"events_per_s": 1.0, "cpu_us_per_event": 1.0}, {}),
            "pipeline": scenario({"messages_per_s": 1.0, "cpu_us_per_message": 1.0}, {}),
            "recovery": scenario({"total_ms": 900.0, "after_reconnect_ms": 900.0}, {"conversations": 10_000}),
        }
    }


def test_goals_follow_the_issue_limits() -> None:
    met = {
        g["goal"]: g["met"]
        for g in report.goals(_synthetic({"messages_per_s": 1.5, "cpu_us_per_message": 0.6}))
    }
    assert met["Pipelined publish: msg/s lpm / node-agent-sdk \u2265 1.4"]
    assert met["Pipelined publish: CPU per message lpm / node-agent-sdk \u2264 0.7"]
    assert met["Ingest: events/s lpm / node-agent-sdk \u2265 1.0"]
    assert met["Recovery at 10,000: < 1 s after the socket is back"]
    worse = {
        g["goal"]: g["met"]
        for g in report.goals(_synthetic({"messages_per_s": 1.3, "raw_cpu_us_per_event": 1.6}))
    }
    assert not worse["Pipelined publish: msg/s lpm / node-agent-sdk \u2265 1.4"]
    assert not worse["SDK overhead, ingest: CPU per event lpm / raw \u2264 1.5"]


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
    for client in ("ours", "peer", "peer_deflate"):
        assert results["scenarios"]["rtt"]["median"][client]["publish_p99_ms"] > 0
        assert results["scenarios"]["recovery"]["median"][client]["total_ms"] > 0
    rtt = results["scenarios"]["rtt"]
    assert rtt["upgrades"]["peer"]["answered"] == ["none"]
    assert rtt["upgrades"]["peer_deflate"]["answered"][0].startswith("permessage-deflate")
    assert rtt["ratio"]["ours/peer"]["publish_p99_ms"]["median"] > 0
    assert results["scenarios"]["capacity"]["steps"][0]["messages_per_s"] > 0
    assert (tmp_path / "latest.png").read_bytes()[:4] == b"\x89PNG"
    text = docs.read_text()
    assert "| 2 PublishEvent p99 (ms) |" in text and "old" not in text and text.endswith("outro\n")
    assert "`perMessageDeflate: false` in the Agent config" in text
    assert "lpm / node-agent-sdk" in capsys.readouterr().out


async def test_replay_runs_the_recorded_frames_through_the_sdk_and_the_raw_decoder(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = argparse.Namespace(conversations=3, events=12, replays=2, only=None)
    await replay.main(args)  # raises if a replayed message did not reach the object model
    out = capsys.readouterr().out
    assert "12 events over 3 conversations, 2 replays" in out
    assert "SDK: CPU µs per event" in out and "raw decode: CPU µs per event" in out
