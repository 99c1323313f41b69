"""Redis unreachable: clear errors and one alarm, 500 to REGISTER (RFC 3261 §10.3), bans
and dialogs kept locally and written once Redis is back, reads served from the local
copy, every wait bounded by the timeout. Each test has its own redis-server."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from ha_support import FLOW, RedisServer, binding, eventually, link, register

from sipedge.config.ha import HaConfig
from sipedge.dialog import Dialog, Leg
from sipedge.ha.shared import SharedState
from sipedge.registrar import Registrar, StoreError

A = "sip:alice@example.com"
PREFIX = "outage:"


def ha(server: RedisServer) -> HaConfig:
    return HaConfig(
        backend="redis", redis_url=server.url, key_prefix=PREFIX, timeout=0.5, retry_interval=0.05
    )


def test_down_at_start_then_back(own_redis: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        node = SharedState(ha(own_redis), loop.time, link=link(own_redis.url, PREFIX, "n1", 0.5))
        try:
            with caplog.at_level(logging.INFO, "sipedge.ha"):
                assert await node.start() == 0  # no exception: SIP keeps running
                assert node.link.up is False
                registrar = Registrar(node.location)
                out = await registrar.register(register("<sip:alice@198.51.100.7>"), FLOW)
                assert out.status == 500  # RFC 3261 §10.3: could not store
                with pytest.raises(StoreError, match="redis unreachable"):
                    await node.location.count()
                await node.bans.ban("203.0.113.7", 300, "flood")
                assert node.bans.is_banned("203.0.113.7", loop.time())  # holds locally
                await node.dialogs.save(Dialog(call_id="c1", caller=Leg(tag="t1")))
                assert (node.bans.pending, node.dialogs.pending) == (1, 1)
                own_redis.start()
                assert await eventually(lambda: node.bans.pending == 0 and node.link.up)
                assert await eventually(lambda: node.dialogs.pending == 0)
            assert caplog.text.count("redis unreachable") == 1  # one alarm, not one per error
            assert "redis reachable again" in caplog.text
            r = node.link.redis
            assert await r.hexists(PREFIX + "bans", "203.0.113.7")
            assert await r.hexists(PREFIX + "dialogs", "c1;t1")
            out = await registrar.register(register("<sip:alice@198.51.100.7>"), FLOW)
            assert out.status == 200
        finally:
            await node.close()

    asyncio.run(scenario())


def test_lookups_use_the_local_copy_while_down(own_redis: RedisServer) -> None:
    async def scenario() -> None:
        own_redis.start()
        loop = asyncio.get_running_loop()
        node = SharedState(ha(own_redis), loop.time, link=link(own_redis.url, PREFIX, "n1", 0.5))
        try:
            b = binding(A, "sip:alice@198.51.100.7", time.time() + 60)
            await node.location.replace(A, [b])
            own_redis.stop()
            assert await node.location.lookup(A) == [b]  # calls to alice still route
            assert node.link.counters["location.cache_reads"] == 1
            with pytest.raises(StoreError):
                await node.location.lookup("sip:bob@example.com")  # never seen here
            with pytest.raises(StoreError):
                await node.location.replace(A, [])
            assert await node.location.expire(time.time() + 3600) == []  # no raise: retried
            assert await node.dialogs.load_all() == []
        finally:
            await node.close()

    asyncio.run(scenario())


def test_ban_follower_reconnects_and_catches_up(own_redis: RedisServer) -> None:
    async def scenario() -> None:
        own_redis.start()
        loop = asyncio.get_running_loop()
        cfg = ha(own_redis)
        n1 = SharedState(cfg, loop.time, link=link(own_redis.url, PREFIX, "n1", 0.5))
        n2 = SharedState(cfg, loop.time, link=link(own_redis.url, PREFIX, "n2", 0.5))
        try:
            await n2.start()
            own_redis.stop()
            await asyncio.sleep(0.2)  # node 2's subscription breaks
            await n1.bans.ban("203.0.113.7", 300, "flood")  # queued on node 1
            own_redis.start()
            await n1.start()  # flushes node 1's queue
            assert await eventually(lambda: n2.bans.is_banned("203.0.113.7", loop.time()))
        finally:
            await n1.close()
            await n2.close()

    asyncio.run(scenario())


def test_an_unreachable_address_fails_within_the_timeout() -> None:
    async def scenario() -> None:
        # TEST-NET-1: never routed; depending on the host, connect times out or fails fast.
        lk = link("redis://192.0.2.1:6379/0", PREFIX, "n1", 0.3)
        cfg = HaConfig(backend="redis", timeout=0.3, retry_interval=0.05)
        node = SharedState(cfg, asyncio.get_running_loop().time, link=lk)
        try:
            started = time.monotonic()
            await node.start()
            with pytest.raises(StoreError):
                await node.location.replace(A, [binding(A, "sip:a@h", time.time() + 60)])
            assert time.monotonic() - started < 2.5
        finally:
            await node.close()

    asyncio.run(scenario())
