""":class:`SharedState`: the Redis-backed stores of one node and their background tasks.

What the composition root uses when ``[ha] backend = "redis"``: one connection
(:class:`~sipedge.ha.client.RedisLink`) shared by the three stores, a task following the
ban channel, and a health loop that, while Redis is unreachable, pings it every
``retry_interval`` seconds and writes the queued bans and dialog records once it answers.
An unreachable Redis at start is logged, not fatal: SIP keeps working on local state
(registrations then fail with 500 until Redis is back; RFC 3261 §10.3).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from ..config.ha import HaConfig
from ..dialog.tracker import DialogTracker
from .bans import RedisBanList
from .client import RedisLink, connect
from .dialogs import RedisDialogStore
from .location import RedisLocationStore

__all__ = ["SharedState"]

log = logging.getLogger("sipedge.ha")


class SharedState:
    """Location, ban and dialog stores in one Redis (see the module text).

    ``clock`` is the clock of the proxy's ``now`` values (bans and dialog timers).
    """

    def __init__(
        self,
        config: HaConfig,
        clock: Callable[[], float] = time.monotonic,
        *,
        link: RedisLink | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.link = link if link is not None else connect(config)
        self.location = RedisLocationStore(self.link)
        self.bans = RedisBanList(self.link, clock)
        self.dialogs = RedisDialogStore(self.link, clock)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, tracker: DialogTracker | None = None) -> int:
        """Check Redis, follow the ban channel (its first load is awaited, bounded by the
        timeout, so a node taking over enforces the bans at once), start the health loop
        and adopt the stored dialogs into ``tracker`` (in active-active mode only those of
        this node, ``ha.node``). Returns how many were adopted."""
        if await self.link.ping():
            log.info("shared state in redis (node %s)", self.link.node)
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self.bans.run(self.config.retry_interval)))
        self._tasks.append(loop.create_task(self._health()))
        if self.link.up:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.bans.subscribed.wait(), 2 * self.config.timeout)
        if tracker is None:
            return 0
        # single-active: the node starting has taken the floating IP, every call is its
        # own now; active-active: the other nodes carry on with theirs.
        owner = self.link.node if self.config.mode == "active-active" else None
        adopted = tracker.adopt(await self.dialogs.load_all(owner), self.clock())
        if adopted:
            log.warning("took over %d dialogs from the shared store", adopted)
        return adopted

    async def _health(self) -> None:
        """While Redis is down or writes are queued: ping, then flush the queues."""
        while True:
            await asyncio.sleep(self.config.retry_interval)
            if self.link.up and not (self.bans.pending or self.dialogs.pending):
                continue
            if await self.link.ping():
                await self.bans.flush()
                await self.dialogs.flush()

    def status(self) -> dict[str, Any]:
        """Reachability, queued writes and counters (for logs and the API)."""
        return {
            "backend": "redis",
            "node": self.link.node,
            "redis_up": self.link.up,
            "last_error": self.link.last_error,
            "queued_bans": self.bans.pending,
            "queued_dialogs": self.dialogs.pending,
            "counters": dict(self.link.counters),
        }

    async def close(self) -> None:
        """Stop the tasks, write what is queued (bounded by the timeout) and disconnect."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.link.up and (self.bans.pending or self.dialogs.pending):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush(), self.config.timeout)
        await self.link.close()

    async def _flush(self) -> None:
        await self.bans.flush()
        await self.dialogs.flush()
