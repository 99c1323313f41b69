""":class:`RedisBanList`: bans shared by every node through Redis.

``is_banned`` stays one dict look-up: it reads a local :class:`MemoryBanList` mirror. A
ban is applied to the mirror first, then written to the hash ``P bans`` (ip -> JSON
``[until, reason, node]``) and published on the channel ``P bans``; the other nodes apply
what they receive, and load the hash when they start or reconnect. Expiry times cross
nodes as wall-clock times (``time.time``): each node converts them to its own clock, so
nodes whose monotonic clocks differ agree on when a ban ends.

Only the node that makes a ban (or lifts it) logs the fail2ban line
(:func:`~sipedge.security.bans.ban_line`); the others apply it without that line and log
at debug level, so one ban is one line however many nodes share it.

A ban or unban that cannot be written while Redis is unreachable still holds locally and
is queued; :meth:`flush` writes the queue once Redis answers again (called by the
subscriber loop on every reconnection and by the health loop of
:class:`~sipedge.ha.shared.SharedState`).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from ..security.bans import Ban, MemoryBanList
from .client import REDIS_ERRORS, RedisLink

__all__ = ["RedisBanList"]

log = logging.getLogger("sipedge.ha")


class RedisBanList:
    """A :class:`~sipedge.security.bans.BanList` shared through Redis (see the module text).

    ``clock`` is the clock of the ``now`` arguments (the event loop's for the proxy);
    ``wall`` the clock shared by the nodes. ``counters`` has the mirror's counters plus
    ``bans.remote`` (bans learnt from other nodes) and ``bans.queued``.
    """

    def __init__(
        self,
        link: RedisLink,
        clock: Callable[[], float] = time.monotonic,
        *,
        wall: Callable[[], float] = time.time,
        max_entries: int = 100_000,
    ) -> None:
        self.link = link
        self.local = MemoryBanList(clock, max_entries=max_entries)
        self.counters: Counter[str] = self.local.counters
        self._clock = clock
        self._wall = wall
        self._hash = link.key("bans")
        self._channel = link.key("bans")
        self._pending: dict[str, tuple[float, str] | None] = {}  # None: an unban
        self.subscribed = asyncio.Event()

    # -- BanList -------------------------------------------------------------------------
    async def ban(self, ip: str, seconds: float, reason: str, *, now: float | None = None) -> None:
        """Ban ``ip`` here at once, then share it (queued if Redis is unreachable)."""
        now = self._clock() if now is None else now
        before = self.local.is_banned(ip, now + seconds)
        self.local.ban_now(ip, seconds, reason, now)
        if before:
            return  # a running ban already lasts longer: nothing new to share
        until = self._wall() + (now + seconds - self._clock())
        self._pending[ip] = (until, reason)
        if self.link.up:  # while down, SharedState's health loop flushes
            await self.flush()

    async def unban(self, ip: str) -> bool:
        """Lift the ban here and on every node; return whether this node had one."""
        had = await self.local.unban(ip)
        self._pending[ip] = None
        if self.link.up:
            await self.flush()
        return had

    def is_banned(self, ip: str, now: float) -> bool:
        """Whether ``ip`` is banned at ``now``: one dict look-up in the local mirror."""
        return self.local.is_banned(ip, now)

    def list(self, now: float | None = None) -> builtins.list[Ban]:
        """The bans active at ``now`` (on this node's clock), soonest expiry first."""
        return self.local.list(now)

    def __len__(self) -> int:
        return len(self.local)

    # -- sharing -------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Bans and unbans waiting for Redis."""
        return len(self._pending)

    async def flush(self) -> bool:
        """Write the queued bans and unbans; False (queue kept) when Redis fails."""
        while self._pending:
            ip, entry = next(iter(self._pending.items()))
            try:
                await self._publish(ip, entry)
            except REDIS_ERRORS as exc:
                self.link.failed("ban write", exc)
                self.counters["bans.queued"] = len(self._pending)
                return False
            if self._pending.get(ip, ()) == entry:  # not changed while we awaited
                del self._pending[ip]
        self.counters["bans.queued"] = 0
        self.link.succeeded()
        return True

    async def _publish(self, ip: str, entry: tuple[float, str] | None) -> None:
        node = self.link.node
        async with self.link.redis.pipeline(transaction=True) as pipe:
            if entry is None:
                pipe.hdel(self._hash, ip)
                msg: dict[str, Any] = {"op": "unban", "ip": ip, "node": node}
            else:
                until, reason = entry
                pipe.hset(self._hash, ip, json.dumps([until, reason, node]))
                msg = {"op": "ban", "ip": ip, "until": until, "reason": reason, "node": node}
            pipe.publish(self._channel, json.dumps(msg))
            await pipe.execute()

    async def load(self) -> int:
        """Apply every ban stored in Redis (expired ones are deleted); how many applied."""
        wall = self._wall()
        stored = await self.link.redis.hgetall(self._hash)
        applied, dead = 0, []
        for raw_ip, raw in stored.items():
            ip = _text(raw_ip)
            try:
                until, reason, _node = json.loads(raw)
                until = float(until)
            except (ValueError, TypeError) as exc:
                log.error("unreadable ban of %s in redis, deleted: %s", ip, exc)
                dead.append(ip)
                continue
            if until <= wall:
                dead.append(ip)
            elif self._apply(ip, until, str(reason), str(_node)):
                applied += 1
        if dead:
            await self.link.redis.hdel(self._hash, *dead)
        return applied

    def _apply(self, ip: str, until_wall: float, reason: str, node: str) -> bool:
        """Apply a ban made by ``node`` (quietly: that node logged it)."""
        if ip in self._pending:
            return False  # our own newer decision wins until it is written
        now = self._clock()
        seconds = until_wall - self._wall()
        if seconds <= 0 or self.local.is_banned(ip, now + seconds):
            return False
        self.local.ban_now(ip, seconds, reason, now, log_line=False)
        log.debug("ban of %s by node %s applied here (%s, %.0f s)", ip, node, reason, seconds)
        return True

    async def handle(self, data: str | bytes) -> None:
        """Apply one message of the ban channel (messages from this node are ignored)."""
        try:
            msg: dict[str, Any] = json.loads(data)
            ip, op, node = str(msg["ip"]), msg["op"], msg.get("node")
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("unreadable message on the ban channel: %s", exc)
            return
        if node == self.link.node:
            return
        if op == "ban":
            try:
                until = float(msg["until"])
            except (ValueError, TypeError, KeyError):
                return
            if self._apply(ip, until, str(msg.get("reason", "remote")), str(node)):
                self.counters["bans.remote"] += 1
        elif op == "unban" and ip not in self._pending and self.local.unban_now(ip, log_line=False):
            log.debug("unban of %s by node %s applied here", ip, node)

    async def run(self, retry_interval: float = 1.0) -> None:
        """Follow the ban channel for ever: subscribe, load the stored bans, flush the
        queue, apply messages; after a failure wait ``retry_interval`` and start again."""
        while True:
            pubsub = self.link.redis.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                await self.load()
                await self.flush()
                self.link.succeeded()
                self.subscribed.set()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        await self.handle(message["data"])
            except REDIS_ERRORS as exc:
                self.link.failed("ban subscription", exc)
            finally:
                self.subscribed.clear()
                await _close_quietly(pubsub)
            await asyncio.sleep(retry_interval)


async def _close_quietly(pubsub: Any) -> None:
    with contextlib.suppress(*REDIS_ERRORS):
        await pubsub.aclose()


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
