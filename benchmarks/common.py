"""Helpers shared by the harness and the client runners: percentiles, CPU and memory probes."""

from __future__ import annotations

import gc
import json
import math
import os
import resource
import sys
import time
from collections.abc import Sequence
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    pos = (len(ordered) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (pos - low))


def median(values: Sequence[float]) -> float:
    """The median, ignoring NaN; NaN when nothing is left."""
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return percentile(kept, 50.0)


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


_GC = {"total": 0.0, "started": 0.0}


def _time_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _GC["started"] = time.process_time()
    else:
        _GC["total"] += time.process_time() - _GC["started"]


def gc_seconds() -> float:
    """CPU seconds this process has spent in Python's garbage collector since the first call
    (part of :func:`cpu_seconds`: what keeping objects alive costs a client)."""
    if _time_gc not in gc.callbacks:
        gc.callbacks.append(_time_gc)
    return _GC["total"]


def rss_bytes() -> int:
    """Resident set size of this process now (from /proc, no psutil needed in clients)."""
    try:
        with open(f"/proc/{os.getpid()}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: peak RSS is the best available
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def emit(obj: dict[str, Any]) -> None:
    """Print one JSON result line (the harness reads the last line of stdout)."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def now() -> float:
    """Wall clock shared by every process of a run (epoch seconds)."""
    return time.time()
