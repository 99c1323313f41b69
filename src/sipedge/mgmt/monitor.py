"""Background measurements: event-loop lag, a per-second history, rtpengine round trips.

:class:`Monitor` runs as one task in sipedge's loop. Every ``tick`` it sleeps and records
by how much the wake-up overshot (the event-loop lag: time the loop spent on other work);
every second it appends a :class:`Sample` (calls active, calls started in that second, the
worst lag of the second) to a ring of ``keep`` samples; every ``ping_every`` seconds it
pings each rtpengine node (ng ``ping``) and keeps the round trip per node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .metrics import Histogram

log = logging.getLogger("sipedge.mgmt")

LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
RTT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass(frozen=True, slots=True)
class Sample:
    """One second of history (``t`` is Unix time)."""

    t: float
    calls_active: int
    calls_started: int
    loop_lag: float


Ping = Callable[[str], Awaitable[object]]


class Monitor:
    """See the module text. ``calls`` returns (calls active, calls started so far);
    ``nodes`` the labels of the rtpengine nodes and ``ping`` pings one (both None without
    a relay)."""

    def __init__(
        self,
        calls: Callable[[], tuple[int, int]],
        *,
        nodes: Callable[[], list[str]] | None = None,
        ping: Ping | None = None,
        tick: float = 0.1,
        keep: int = 600,
        ping_every: float = 10.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._calls = calls
        self._nodes = nodes
        self._ping = ping
        self.tick = tick
        self.ping_every = ping_every
        self._wall = wall
        self.history: deque[Sample] = deque(maxlen=keep)
        self.lag = Histogram(LAG_BUCKETS)
        self.last_lag = 0.0
        self.rtt: dict[str, float | None] = {}
        self.rtt_hist: dict[str, Histogram] = {}
        self._pinging: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._started_before = calls()[1]

    async def run(self) -> None:
        """Measure until cancelled."""
        loop = asyncio.get_running_loop()
        ticks_per_sample = max(1, round(1.0 / self.tick))
        ticks_per_ping = max(1, round(self.ping_every / self.tick))
        worst = 0.0
        n = 0
        while True:
            before = loop.time()
            await asyncio.sleep(self.tick)
            lag = max(0.0, loop.time() - before - self.tick)
            self.lag.observe(lag)
            worst = max(worst, lag)
            n += 1
            if n % ticks_per_sample == 0:
                self.sample(worst)
                worst = 0.0
            if n % ticks_per_ping == 0:
                self.ping_nodes()

    def sample(self, lag: float) -> None:
        """Append one second of history."""
        active, started = self._calls()
        delta = max(0, started - self._started_before)
        self._started_before = started
        self.last_lag = lag
        self.history.append(Sample(self._wall(), active, delta, lag))

    def ping_nodes(self) -> None:
        """Start a ping to every node that has none in flight."""
        if self._nodes is None or self._ping is None:
            return
        for label in self._nodes():
            if label not in self._pinging:
                self._pinging.add(label)
                task = asyncio.get_running_loop().create_task(self._ping_one(label))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _ping_one(self, label: str) -> None:
        assert self._ping is not None
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            await self._ping(label)
        except Exception as exc:  # any failure: no round trip to report
            log.debug("rtpengine %s ping failed: %s", label, exc)
            self.rtt[label] = None
        else:
            rtt = loop.time() - start
            self.rtt[label] = rtt
            hist = self.rtt_hist.get(label)
            if hist is None:
                hist = self.rtt_hist[label] = Histogram(RTT_BUCKETS)
            hist.observe(rtt)
        finally:
            self._pinging.discard(label)

    async def close(self) -> None:
        """Cancel pings in flight."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
