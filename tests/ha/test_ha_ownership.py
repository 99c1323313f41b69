"""Who does what when several nodes share Redis: the fail2ban line of a shared ban is
written by the node that made it only, and a node starting in active-active mode takes
back only its own calls (single-active: all of them, it has taken the floating IP)."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from ha_support import eventually, link, links

from sipedge.config.ha import HaConfig
from sipedge.dialog import Dialog, DialogState, DialogTracker, Leg
from sipedge.ha.bans import RedisBanList
from sipedge.ha.dialogs import RedisDialogStore
from sipedge.ha.shared import SharedState

IP = "203.0.113.7"


def test_a_shared_ban_is_logged_once_by_the_node_that_made_it(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        async with links(redis_url, prefix, "n1", "n2", "n3") as (l1, l2, l3):
            n1 = RedisBanList(l1, loop.time)
            n2 = RedisBanList(l2, loop.time)
            follower = asyncio.create_task(n2.run(retry_interval=0.05))
            try:
                assert await eventually(n2.subscribed.is_set)
                caplog.clear()
                await n1.ban(IP, 300, "flood")
                assert await eventually(lambda: n2.is_banned(IP, loop.time()))
                n3 = RedisBanList(l3, loop.time)  # a node starting later loads it
                assert await n3.load() == 1
                await n1.unban(IP)
                assert await eventually(lambda: not n2.is_banned(IP, loop.time()))
            finally:
                follower.cancel()
        lines = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
        fail2ban = [x for x in lines if x[2].startswith(("sipedge BAN", "sipedge UNBAN"))]
        warn = ("sipedge.security", logging.WARNING)
        assert fail2ban == [
            (*warn, "sipedge BAN ip=203.0.113.7 reason=flood seconds=300"),
            (*warn, "sipedge UNBAN ip=203.0.113.7"),
        ]
        debug = [x[2] for x in lines if x[0] == "sipedge.ha" and x[1] == logging.DEBUG]
        assert sum(m.startswith("ban of 203.0.113.7 by node n1 applied") for m in debug) == 2
        assert sum(m.startswith("unban of 203.0.113.7 by node n1") for m in debug) == 1
        assert not logging.getLogger("sipedge.security").disabled  # restored

    with caplog.at_level(logging.DEBUG):
        asyncio.run(scenario())


def call(n: int) -> Dialog:
    return Dialog(
        call_id=f"call-{n}@uac",
        caller=Leg(uri=f"<sip:alice@example.com>;tag=a{n}", tag=f"a{n}"),
        callee=Leg(uri="<sip:bob@example.com>;tag=b", tag="b"),
        state=DialogState.CONFIRMED,
        created=100.0,
        confirmed_at=101.0,
    )


def test_records_name_their_node(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        async with links(redis_url, prefix, "a", "b") as (la, lb):
            await RedisDialogStore(la).save(call(1))
            await RedisDialogStore(lb).save(call(2))
            raw = await la.redis.hget(la.key("dialogs"), call(1).key)
            assert json.loads(raw)["node"] == "a"
            store = RedisDialogStore(la)
            assert [d.call_id for d in await store.load_all("a")] == ["call-1@uac"]
            assert len(await store.load_all()) == 2

    asyncio.run(scenario())


@pytest.mark.parametrize(("mode", "adopted"), [("single-active", 2), ("active-active", 1)])
def test_a_starting_node_adopts_by_mode(
    redis_url: str, prefix: str, mode: str, adopted: int
) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        async with links(redis_url, prefix, "a", "b") as (la, lb):
            for lk, n in ((la, 1), (lb, 2)):
                await RedisDialogStore(lk, loop.time).save(call(n).with_(created=loop.time()))
        cfg = HaConfig(backend="redis", redis_url=redis_url, key_prefix=prefix, mode=mode)
        node = SharedState(cfg, loop.time, link=link(redis_url, prefix, "a"))
        try:
            tracker = DialogTracker()
            assert await node.start(tracker) == adopted
            assert tracker.get(call(1).key) is not None
        finally:
            await node.close()

    asyncio.run(scenario())
