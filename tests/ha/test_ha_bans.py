"""RedisBanList against a real redis-server: local O(1) checks, bans and unbans reaching
another node over pub/sub, loading at start, wall-clock conversion, Security on top."""

from __future__ import annotations

import asyncio
import json
import time

from ha_support import eventually, links

from sipedge.ha.bans import RedisBanList
from sipedge.security import AuthFailSettings, Security, SecurityConfig
from sipedge.security.bans import BanList

IP = "203.0.113.7"


class Clock:
    """A settable clock standing in for a node's monotonic clock."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_ban_holds_locally_at_once_and_is_stored(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        async with links(redis_url, prefix, "n1") as (link,):
            clock = Clock(100.0)
            bans: BanList = RedisBanList(link, clock, wall=lambda: 5000.0)
            await bans.ban(IP, 300, "flood")
            assert bans.is_banned(IP, 399.9) and not bans.is_banned(IP, 400.0)
            stored = json.loads(await link.redis.hget(link.key("bans"), IP))
            assert stored == [5300.0, "flood", "n1"]  # wall-clock expiry, reason, origin
            assert [(b.ip, b.until, b.reason) for b in bans.list(100.0)] == [(IP, 400.0, "flood")]

    asyncio.run(scenario())


def test_ban_and_unban_reach_a_running_node(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        async with links(redis_url, prefix, "n1", "n2") as (l1, l2):
            # Node 2's monotonic clock is far from node 1's: the wall clock bridges them.
            n1 = RedisBanList(l1, Clock(100.0))
            c2 = Clock(90_000.0)
            n2 = RedisBanList(l2, c2)
            follower = asyncio.create_task(n2.run(retry_interval=0.05))
            try:
                assert await eventually(n2.subscribed.is_set)
                await n1.ban(IP, 300, "auth")
                assert await eventually(lambda: n2.is_banned(IP, c2.now))
                (ban,) = n2.list(c2.now)
                assert abs(ban.until - (c2.now + 300)) < 2 and ban.reason == "auth"
                assert n2.counters["bans.remote"] == 1
                assert await n1.unban(IP)
                assert await eventually(lambda: not n2.is_banned(IP, c2.now))
            finally:
                follower.cancel()

    asyncio.run(scenario())


def test_a_node_starting_later_loads_live_bans_and_drops_expired_ones(
    redis_url: str, prefix: str
) -> None:
    async def scenario() -> None:
        async with links(redis_url, prefix, "n1", "n2") as (l1, l2):
            n1 = RedisBanList(l1, Clock(0.0))
            await n1.ban(IP, 600, "flood")
            dead = json.dumps([time.time() - 1, "flood", "n1"])
            await l1.redis.hset(l1.key("bans"), "198.51.100.1", dead)
            n2 = RedisBanList(l2, Clock(0.0))
            assert await n2.load() == 1
            assert n2.is_banned(IP, 1.0) and not n2.is_banned("198.51.100.1", 1.0)
            assert not await l1.redis.hexists(l1.key("bans"), "198.51.100.1")

    asyncio.run(scenario())


def test_a_shorter_ban_does_not_shorten_the_running_one(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        async with links(redis_url, prefix, "n1") as (link,):
            bans = RedisBanList(link, Clock(0.0), wall=lambda: 1000.0)
            await bans.ban(IP, 600, "auth")
            await bans.ban(IP, 60, "flood")
            stored = json.loads(await link.redis.hget(link.key("bans"), IP))
            assert stored[:2] == [1600.0, "auth"]
            assert bans.is_banned(IP, 599.0)

    asyncio.run(scenario())


def test_own_and_malformed_messages_are_ignored(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        async with links(redis_url, prefix, "n1") as (link,):
            bans = RedisBanList(link, Clock(0.0))
            own = {"op": "ban", "ip": IP, "until": time.time() + 60, "node": "n1"}
            await bans.handle(json.dumps(own))
            for junk in ("{", "[]", '{"op": "ban"}', '{"op": "ban", "ip": "x", "until": "y"}'):
                await bans.handle(junk)
            assert len(bans) == 0
            other = dict(own, node="n2")
            await bans.handle(json.dumps(other).encode())
            assert bans.is_banned(IP, 1.0)

    asyncio.run(scenario())


def test_security_ban_on_one_node_drops_the_source_on_the_other(
    redis_url: str, prefix: str
) -> None:
    async def scenario() -> None:
        async with links(redis_url, prefix, "n1", "n2") as (l1, l2):
            loop = asyncio.get_running_loop()
            config = SecurityConfig(auth=AuthFailSettings(max_failures=2, ban_seconds=120))
            sec1 = Security(config, bans=RedisBanList(l1, loop.time), clock=loop.time)
            n2 = RedisBanList(l2, loop.time)
            sec2 = Security(config, bans=n2, clock=loop.time)
            follower = asyncio.create_task(n2.run(retry_interval=0.05))
            try:
                assert await eventually(n2.subscribed.is_set)
                for _ in range(2):
                    sec1.auth_failed(IP, "alice", loop.time())
                assert await eventually(lambda: sec2.is_banned(IP, loop.time()))
                assert not sec2.is_banned("203.0.113.8", loop.time())
            finally:
                follower.cancel()

    asyncio.run(scenario())
