"""This node's Path entries in shared bindings (sipedge.ha.paths): written for bindings only
this node can reach, dropped when it reads its own, kept for the other nodes, which then
route through it (RFC 3327 §5.3); the NAT flag and the bulk read of the Redis store."""

from __future__ import annotations

import asyncio

import pytest
from ha_support import binding, links

from sipedge.ha.location import RedisLocationStore, decode, encode
from sipedge.ha.paths import NodeLocationStore, NodePaths, peer_interface
from sipedge.nat.keepalive import KeepaliveSettings, PingTracker
from sipedge.proxy.flowtoken import FlowTokens
from sipedge.proxy.routing import Identity, Interface, preprocess_routes
from sipedge.proxy.targets import LocalListener
from sipedge.registrar import Binding, Registrar
from sipedge.sip.message import Request
from sipedge.sip.parser import parse_message
from sipedge.transport.base import Flow

T0 = 1_800_000_000.0
AOR = "sip:bob@example.com"
SECRET = b"flow-tokens-shared-by-the-nodes"
IF_A = Interface("udp", "10.0.0.11", 5060)
IF_B = Interface("udp", "10.0.0.12", 5060)
TCP = Flow("tcp", ("10.0.0.11", 5060), ("198.51.100.7", 40001), 42)
NATED = Flow("udp", ("10.0.0.11", 5060), ("198.51.100.8", 61000))


def node_paths(iface: Interface) -> NodePaths:
    return NodePaths(FlowTokens(SECRET), iface, Identity([iface], ["example.com"]))


def stream_binding(flow: Flow = TCP, **kw: object) -> Binding:
    return binding(
        AOR,
        "sip:bob@192.168.1.5:5070;transport=tcp",
        T0 + 300,
        transport=flow.transport,
        local=flow.local,
        remote=flow.remote,
        conn_id=flow.conn_id,
        **kw,
    )


def test_only_bindings_reached_over_a_flow_get_our_entry() -> None:
    paths = node_paths(IF_A)
    b = stream_binding()
    stamped = paths.stamp(b)
    [entry] = stamped.path
    assert entry.startswith("<sip:ft-") and entry.endswith("@10.0.0.11:5060;lr>")
    assert not stamped.reached_by_flow  # another node goes through the Path
    assert paths.unstamp(stamped) == b
    nated = binding(AOR, "sip:bob@192.168.1.5", T0 + 60, remote=NATED.remote, nat=True)
    assert paths.stamp(nated).path and paths.unstamp(paths.stamp(nated)) == nated
    direct = binding(AOR, "sip:bob@198.51.100.9", T0 + 60)  # plain UDP: anyone can send
    assert paths.stamp(direct) is direct
    behind = binding(AOR, "sip:bob@x", T0 + 60, conn_id=3, path=("<sip:edge.example.net;lr>",))
    assert paths.stamp(behind) is behind  # a Path from the REGISTER already says where


def test_another_nodes_entry_is_not_ours() -> None:
    stamped = node_paths(IF_A).stamp(stream_binding())
    assert node_paths(IF_B).unstamp(stamped) is stamped
    assert not node_paths(IF_A).is_own("<sip:10.0.0.11:5060;lr>")  # ours, but no token
    assert not node_paths(IF_A).is_own("<sip:ft-x@10.0.0.99:5060;lr>")
    assert not node_paths(IF_A).is_own("not a uri <")


def test_the_node_named_by_the_entry_relays_over_the_flow() -> None:
    """What node A does with a request node B sent through A's entry (RFC 3261 §16.4)."""
    stamped = node_paths(IF_A).stamp(stream_binding())
    text = (
        f"INVITE sip:bob@192.168.1.5:5070;transport=tcp SIP/2.0\r\n"
        f"Route: {stamped.path[0]}\r\n"
        "Via: SIP/2.0/UDP 10.0.0.12:5060;branch=z9hG4bK-b1\r\n"
        "Max-Forwards: 69\r\nFrom: <sip:carol@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\n"
        "Call-ID: aa-1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    req = parse_message(text.encode())
    assert isinstance(req, Request)
    from_b = Flow("udp", ("10.0.0.11", 5060), ("10.0.0.12", 5060))
    info = preprocess_routes(req, Identity([IF_A]), FlowTokens(SECRET), from_b)
    assert info.consumed == 1 and info.flow == TCP and not req.routes


def test_peer_interface_choice() -> None:
    udp = LocalListener(("10.0.0.11", 5060), IF_A)
    tcp = LocalListener(("10.0.0.11", 5060), Interface("tcp", "10.0.0.11", 5060))
    ws = LocalListener(("0.0.0.0", 80), Interface("ws", "sip.example.com", 80))
    assert peer_interface([ws, tcp, udp]) == IF_A
    assert peer_interface([ws, tcp]) == tcp.iface
    assert peer_interface([ws, tcp, udp], "tcp:10.0.0.11:5060") == tcp.iface
    with pytest.raises(ValueError, match="not one of"):
        peer_interface([udp], "tcp:10.0.0.11:5070")
    with pytest.raises(ValueError, match="no UDP"):
        peer_interface([ws])


def test_nat_flag_is_stored_and_old_records_still_read() -> None:
    nated = binding(AOR, "sip:bob@192.168.1.5", T0 + 60, remote=NATED.remote, nat=True)
    [back] = decode(AOR, encode([nated]))
    assert back.nat and back.reached_by_flow
    old = '[["sip:bob@h",1.0,1.0,"c",1,null,null,[],"udp","",0,"1.2.3.4",5,null,null,0.0]]'
    assert decode(AOR, old)[0].nat is False
    with pytest.raises(ValueError):
        decode(AOR, '[["sip:bob@h",1.0]]')


def test_two_nodes_see_one_binding_each_their_own_way(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        async with links(redis_url, prefix, "a", "b") as (la, lb):
            a = NodeLocationStore(RedisLocationStore(la), node_paths(IF_A))
            b = NodeLocationStore(RedisLocationStore(lb), node_paths(IF_B))
            reg_a, reg_b = Registrar(a, clock=lambda: T0), Registrar(b, clock=lambda: T0)
            await a.replace(AOR, [stream_binding()])
            # Node A reaches bob over its connection, and pings (owns) what it reaches.
            [mine] = await reg_a.targets(AOR)
            assert mine.flow == TCP and mine.routes == () and mine.dst is None
            # Node B sends to node A with A's entry preloaded as Route (RFC 3327 §5.3).
            [theirs] = await reg_b.targets(AOR)
            assert theirs.flow is None and theirs.dst is not None
            assert (theirs.dst.host, theirs.dst.port) == ("10.0.0.11", 5060)
            assert len(theirs.routes) == 1 and "@10.0.0.11:5060;lr" in theirs.routes[0]
            # Ownership of NAT keepalives: only the node holding the flow pings it.
            await a.replace("sip:nat@example.com", [_nat(NATED)])
            tracker = PingTracker(KeepaliveSettings())
            seen_a = [x for bs in (await a.all_bindings()).values() for x in bs]
            seen_b = [x for bs in (await b.all_bindings()).values() for x in bs]
            assert sum(tracker.eligible(x, T0) for x in seen_a) == 1
            assert sum(tracker.eligible(x, T0) for x in seen_b) == 0
            # A refresh arriving at node B instead moves the binding to B.
            moved = stream_binding(Flow("tcp", ("10.0.0.12", 5060), TCP.remote, 9))
            await b.replace(AOR, [moved])
            assert (await reg_b.targets(AOR))[0].flow is not None
            assert (await reg_a.targets(AOR))[0].routes[0].endswith("@10.0.0.12:5060;lr>")
            # Removing what it read (a dead NAT binding) works through the wrapper.
            [n] = await a.lookup("sip:nat@example.com")
            assert await reg_a.remove_binding(n)
            assert await a.lookup("sip:nat@example.com") == []

    asyncio.run(scenario())


def _nat(flow: Flow) -> Binding:
    return binding(
        "sip:nat@example.com",
        "sip:nat@192.168.1.6",
        T0 + 60,
        local=flow.local,
        remote=flow.remote,
        nat=True,
    )


def test_lookup_many_reads_in_bulk_and_falls_back_to_the_copy(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        async with links(redis_url, prefix, "a") as (la,):
            store = RedisLocationStore(la)
            aors = [f"sip:u{i}@example.com" for i in range(1200)]
            for aor in aors:
                await store.replace(aor, [binding(aor, aor + ";x", T0 + 60)])
            calls = 0
            real = la.redis.mget

            async def counting(*args: object, **kw: object) -> object:
                nonlocal calls
                calls += 1
                return await real(*args, **kw)

            la.redis.mget = counting  # type: ignore[method-assign]
            found = await store.lookup_many([*aors, "sip:nobody@example.com"])
            assert len(found) == 1200 and calls == 3  # 500 per round trip
            assert found[aors[7]][0].contact == aors[7] + ";x"
            assert len(await store.all_bindings()) == 1200

            async def down(*args: object, **kw: object) -> object:
                raise ConnectionError("redis is down")

            la.redis.mget = down  # type: ignore[method-assign]
            cached = await store.lookup_many(aors[:3])
            assert sorted(cached) == sorted(aors[:3]) and not la.up

    asyncio.run(scenario())
