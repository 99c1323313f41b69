"""RedisLocationStore against a real redis-server: every LocationStore operation, two nodes
sharing the bindings, compare-and-set expiry, the encoding and the registrar on top."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from ha_support import FLOW, binding, links, register
from hypothesis import given
from hypothesis import strategies as st

from sipedge.ha.location import RedisLocationStore, decode, encode
from sipedge.registrar import Binding, LocationStore, Registrar

T0 = 1_800_000_000.0
A = "sip:alice@example.com"
B = "sip:bob@example.com"


def full_binding(aor: str = A) -> Binding:
    return Binding(
        aor=aor,
        contact="<sip:alice@[2001:db8::7]:5070;transport=tcp;ob>",
        expires_at=T0 + 3600.123456789,
        q=0.7,
        call_id="c-1@ua",
        cseq=42,
        instance='"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"',
        reg_id=1,
        path=("<sip:edge1.example.net;lr>", "<sip:edge2.example.net;lr>"),
        transport="tcp",
        local=("192.0.2.1", 5060),
        remote=("2001:db8::7", 51000),
        conn_id=17,
        user_agent="Phone/1.0 (ünïcode)",
        registered_at=T0 - 10.5,
    )


def test_encoding_round_trips_every_field_and_is_compact() -> None:
    b = full_binding()
    assert decode(A, encode([b])) == [b]
    plain = binding(A, "sip:alice@198.51.100.7:40000", T0 + 60, local=("192.0.2.1", 5060))
    assert decode(A, encode([plain, b])) == [plain, b]
    assert len(encode([plain]).encode()) < 120  # no field names, no AOR repeated


@given(
    contact=st.text(min_size=1, max_size=40),
    expires=st.floats(min_value=0, max_value=4e9, allow_nan=False),
    q=st.floats(min_value=0, max_value=1),
    cseq=st.integers(min_value=0, max_value=2**31 - 1),
    ua=st.none() | st.text(max_size=20),
    path=st.lists(st.text(max_size=10), max_size=3),
    conn=st.none() | st.integers(min_value=0, max_value=2**40),
)
def test_encoding_round_trip_property(
    contact: str,
    expires: float,
    q: float,
    cseq: int,
    ua: str | None,
    path: list[str],
    conn: int | None,
) -> None:
    b = binding(A, contact, expires, q=q, cseq=cseq, user_agent=ua, path=tuple(path), conn_id=conn)
    assert decode(A, encode([b])) == [b]


@pytest.mark.parametrize("text", ["{}", "[1]", "[[1, 2]]", "not json", '[["c", "x"]]'])
def test_decode_rejects_what_it_did_not_write(text: str) -> None:
    with pytest.raises(ValueError):
        decode(A, text)


def test_replace_lookup_count_aors(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        async with links(redis_url, prefix, "n1") as (link,):
            store: LocationStore = RedisLocationStore(link)
            a1, a2 = binding(A, "sip:a1@h", T0 + 60), full_binding()
            await store.replace(A, [a1, a2])
            await store.replace(B, [binding(B, "sip:b1@h", T0 + 60)])
            assert await store.lookup(A) == [a1, a2]
            assert (await store.count(), sorted(await store.aors())) == (3, [A, B])
            await store.replace(A, [binding(A, "sip:a3@h", T0 + 90)])
            assert [x.contact for x in await store.lookup(A)] == ["sip:a3@h"]
            assert await store.count() == 2
            await store.replace(A, [])  # an empty list deletes the AOR
            assert (await store.lookup(A), await store.aors(), await store.count()) == ([], [B], 1)
            assert await store.lookup("sip:nobody@example.com") == []
            assert await link.redis.exists(link.key("loc", A)) == 0

    asyncio.run(scenario())


def test_two_nodes_share_bindings(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        async with links(redis_url, prefix, "n1", "n2") as (l1, l2):
            s1, s2 = RedisLocationStore(l1), RedisLocationStore(l2)
            await s1.replace(A, [full_binding()])
            assert await s2.lookup(A) == [full_binding()]
            await s2.replace(A, [])  # node 2 unregisters what node 1 stored
            assert (await s1.lookup(A), await s1.count()) == ([], 0)

    asyncio.run(scenario())


def test_expire_removes_only_due_bindings_and_tracks_the_next_expiry(
    redis_url: str, prefix: str
) -> None:
    async def scenario() -> None:
        async with links(redis_url, prefix, "n1") as (link,):
            store = RedisLocationStore(link)
            early, late = binding(A, "sip:a1@h", T0 + 10), binding(A, "sip:a2@h", T0 + 100)
            await store.replace(A, [early, late])
            await store.replace(B, [binding(B, "sip:b1@h", T0 + 50)])
            assert await store.expire(T0) == []
            assert await store.expire(T0 + 10) == [early]  # expires exactly at expires_at
            assert (await store.lookup(A), await store.count()) == ([late], 2)
            assert await link.redis.zscore(link.key("loc", "exp"), A) == T0 + 100
            removed = await store.expire(T0 + 1000)
            assert sorted(x.contact for x in removed) == ["sip:a2@h", "sip:b1@h"]
            assert (await store.count(), await store.aors()) == (0, [])

    asyncio.run(scenario())


def test_two_nodes_expiring_at_once_remove_each_binding_once(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        async with links(redis_url, prefix, "n1", "n2") as (l1, l2):
            s1, s2 = RedisLocationStore(l1), RedisLocationStore(l2)
            for i in range(50):
                aor = f"sip:u{i}@example.com"
                await s1.replace(aor, [binding(aor, f"sip:u{i}@h", T0 + i)])
            got1, got2 = await asyncio.gather(s1.expire(T0 + 100), s2.expire(T0 + 100))
            contacts = [x.contact for x in got1 + got2]
            assert sorted(contacts) == sorted(f"sip:u{i}@h" for i in range(50))
            assert await s1.count() == 0

    asyncio.run(scenario())


def test_expire_leaves_an_aor_changed_since_it_was_read(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        async with links(redis_url, prefix, "n1") as (link,):
            store = RedisLocationStore(link)
            await store.replace(A, [binding(A, "sip:a1@h", T0 + 10)])
            # The compare-and-set write of expire, with a value that is no longer current:
            assert await store._run(A, [], expected="stale") == -1
            assert len(await store.lookup(A)) == 1 and await store.count() == 1

    asyncio.run(scenario())


def test_unreadable_record_is_logged_and_skipped(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with links(redis_url, prefix, "n1") as (link,):
            store = RedisLocationStore(link)
            await link.redis.set(link.key("loc", A), json.dumps([["only", "two"]]))
            with caplog.at_level(logging.ERROR, "sipedge.ha"):
                assert await store.lookup(A) == []
            assert link.counters["location.bad_records"] == 1
            assert "unreadable bindings" in caplog.text

    asyncio.run(scenario())


def test_registrar_on_redis_serves_bindings_to_another_node(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        async with links(redis_url, prefix, "n1", "n2") as (l1, l2):
            node1 = Registrar(RedisLocationStore(l1), clock=lambda: T0)
            node2 = Registrar(RedisLocationStore(l2), clock=lambda: T0 + 1)
            out = await node1.register(register("<sip:alice@198.51.100.7:40000>"), FLOW)
            assert out.status == 200
            targets = await node2.targets("sip:alice@example.com")
            assert [str(t.uri) for t in targets] == ["sip:alice@198.51.100.7:40000"]
            assert len(await node2.expire(T0 + 7200)) == 1  # default expiry 3600 s
            assert await node1.targets("sip:alice@example.com") == []

    asyncio.run(scenario())
