"""Run ``sipedge`` with its garbage-collector pauses measured (bench-only wrapper).

    .venv/bin/python bench/gc_probe.py run --listen udp:127.0.0.2:5060

Same arguments as ``python -m sipedge``. At exit it prints to stderr, per GC generation, how
many collections ran, their total and longest pause, and how many objects the collector
tracks at exit (for a run stopped right after the load, about the peak).
``SIPEDGE_GC_THRESHOLD="a,b,c"`` sets ``gc.set_threshold(a, b, c)`` first, and
``SIPEDGE_GC_FREEZE=1`` calls ``gc.freeze()`` after start-up imports, to try tunings without
touching src/. Use it through call_rate.py::

    .venv/bin/python bench/call_rate.py --peer sipedge --keep-logs \\
        --cmd '.venv/bin/python bench/gc_probe.py run --listen udp:{ip}:{port}'

(the report is at the end of the kept ``peer.log``).
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
import time
from typing import Any


class GcClock:
    """Accumulates collection counts and pause times per generation via ``gc.callbacks``."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.total = [0.0, 0.0, 0.0]
        self.longest = [0.0, 0.0, 0.0]
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
            return
        gen = int(info["generation"])
        took = time.perf_counter() - self._start
        self.count[gen] += 1
        self.total[gen] += took
        self.longest[gen] = max(self.longest[gen], took)

    def report(self) -> None:
        """Print one line per generation, and the objects the GC tracks now, to stderr."""
        print(f"gc tracked objects at exit: {len(gc.get_objects())}", file=sys.stderr)
        for gen in range(3):
            print(
                f"gc gen{gen}: {self.count[gen]} collections, total {self.total[gen] * 1e3:.0f} ms,"
                f" longest {self.longest[gen] * 1e3:.1f} ms",
                file=sys.stderr,
                flush=True,
            )


def main() -> None:
    """Install the probe (and any tuning asked for), then run the sipedge CLI."""
    threshold = os.environ.get("SIPEDGE_GC_THRESHOLD")
    if threshold:
        a, b, c = (int(x) for x in threshold.split(","))
        gc.set_threshold(a, b, c)
    clock = GcClock()
    gc.callbacks.append(clock)
    atexit.register(clock.report)
    from sipedge.cli import main as cli_main

    if os.environ.get("SIPEDGE_GC_FREEZE") == "1":
        gc.freeze()
    cli_main(args=sys.argv[1:], prog_name="sipedge")


if __name__ == "__main__":
    main()
