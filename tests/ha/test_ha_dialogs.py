"""RedisDialogStore against a real redis-server, and a second node adopting the dialogs of
the first through SharedState.start (what a node does when it takes the floating IP)."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from ha_support import eventually, link, links

from sipedge.config.ha import HaConfig
from sipedge.dialog import Dialog, DialogState, DialogStore, DialogTracker, Leg
from sipedge.ha.dialogs import RedisDialogStore
from sipedge.ha.shared import SharedState
from sipedge.transport.base import Flow


def call(n: int, state: DialogState = DialogState.CONFIRMED) -> Dialog:
    return Dialog(
        call_id=f"call-{n}@uac",
        caller=Leg(
            uri=f"<sip:alice@example.com>;tag=a{n}",
            tag=f"a{n}",
            target="sip:alice@198.51.100.7:5070",
            route=("<sip:edge.example.net;lr>",),
            flow=Flow("udp", ("10.99.0.100", 5060), ("198.51.100.7", 5070)),
            cseq=2,
        ),
        callee=Leg(uri="<sip:bob@example.com>;tag=b", tag="b", target="sip:bob@h", webrtc=True),
        state=state,
        created=100.0,
        confirmed_at=101.0 if state is DialogState.CONFIRMED else None,
        request_uri="sip:bob@example.com",
        media=True,
        relay_node="udp:10.0.0.9:22222",
    )


def test_save_load_overwrite_remove(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        async with links(redis_url, prefix, "n1", "n2") as (l1, l2):
            s1: DialogStore = RedisDialogStore(l1, lambda: 0.0, wall=lambda: 1024.0)
            s2 = RedisDialogStore(l2, lambda: 0.0, wall=lambda: 1024.0)
            await s1.save(call(1))
            await s1.save(call(2, DialogState.EARLY))
            loaded = sorted(await s2.load_all(), key=lambda d: d.call_id)
            assert loaded == [call(1), call(2, DialogState.EARLY)]  # every field survives
            await s2.save(call(2))  # overwrite by key
            await s1.remove(call(1).key)
            await s1.remove("no-such;key")
            assert await s2.load_all() == [call(2)]

    asyncio.run(scenario())


def test_times_cross_nodes_as_wall_clock_times(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        async with links(redis_url, prefix, "n1", "n2") as (l1, l2):
            # Same wall clock, monotonic clocks 89,900 s apart (two hosts).
            s1 = RedisDialogStore(l1, lambda: 200.0, wall=lambda: 5000.0)
            s2 = RedisDialogStore(l2, lambda: 90_100.0, wall=lambda: 5000.0)
            await s1.save(call(1))  # created 100 s, answered 99 s before "now" on node 1
            stored = json.loads(await l1.redis.hget(l1.key("dialogs"), call(1).key))
            assert (stored["created"], stored["confirmed_at"]) == (4900.0, 4901.0)
            (d,) = await s2.load_all()
            assert (d.created, d.confirmed_at, d.ended_at) == (90_000.0, 90_001.0, None)
            assert d.duration(90_100.0) == call(1).duration(200.0)

    asyncio.run(scenario())


def test_unreadable_record_is_skipped(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with links(redis_url, prefix, "n1") as (lk,):
            store = RedisDialogStore(lk, lambda: 0.0, wall=lambda: 1024.0)
            await store.save(call(1))
            await lk.redis.hset(lk.key("dialogs"), "bad;x", json.dumps({"call_id": "x"}))
            with caplog.at_level(logging.ERROR, "sipedge.ha"):
                assert await store.load_all() == [call(1)]
            assert "unreadable dialog" in caplog.text

    asyncio.run(scenario())


def test_second_node_adopts_the_dialogs_of_the_first(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        spawned: list[asyncio.Task[None]] = []

        def spawn(coro: object) -> None:
            spawned.append(loop.create_task(coro))  # type: ignore[arg-type]

        cfg = HaConfig(backend="redis", redis_url=redis_url, key_prefix=prefix)
        node1 = SharedState(cfg, loop.time, link=link(redis_url, prefix, "n1"))
        node2 = SharedState(cfg, loop.time, link=link(redis_url, prefix, "n2"))
        try:
            t1 = DialogTracker(store=node1.dialogs, spawn=spawn)
            t1.started(call(1, DialogState.TRYING).with_(created=loop.time()), loop.time())
            t1.started(call(2, DialogState.TRYING).with_(created=loop.time()), loop.time())
            t1.confirmed(call(1).key, call(1).callee, loop.time())
            t1.ended(call(2).key, "cancel", loop.time())
            await asyncio.gather(*spawned)
            t2 = DialogTracker()
            assert await node2.start(t2) == 1
            (taken,) = t2.active()
            assert taken.key == call(1).key and taken.state is DialogState.CONFIRMED
            assert taken.caller.flow == call(1).caller.flow
            assert t2.get_timer() is not None  # its timeout runs on the new node
            await node1.bans.ban("203.0.113.9", 60, "flood")
            assert await eventually(lambda: node2.bans.is_banned("203.0.113.9", loop.time()))
            assert node2.status()["redis_up"] is True
        finally:
            await node1.close()
            await node2.close()

    asyncio.run(scenario())
