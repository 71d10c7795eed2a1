"""``make bench``: our SDK and node-agent-sdk@1.2.0 side by side against one emulator.

``python -m benchmarks`` (see :mod:`benchmarks.__main__` and docs/performance.md) starts the
emulator in its own process, runs every scenario for both clients in alternating A/B rounds,
each client in its own process, and writes ``benchmarks/results/latest.json`` and ``latest.png``.
"""
