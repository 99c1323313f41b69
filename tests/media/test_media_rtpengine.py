"""The async rtpengine client against the real daemon (UDP, TCP, WS) and scripted fake nodes."""

from __future__ import annotations

import asyncio
import random
import re
import socket
import statistics
import time
from collections.abc import Callable
from typing import Any, cast

import pytest
from media_support import (
    HOST,
    SDP_ANSWER,
    SDP_OFFER,
    RtpEngineDaemon,
    run,
    sdp_with_streams,
)
from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

from sipedge.media import (
    RelayConfig,
    RelayRejected,
    RelayTimeout,
    RelayUnavailable,
    RtpEngine,
)
from sipedge.media.ng import (
    NG_SUBPROTOCOL,
    NgMessage,
    NgStreamSplitter,
    encode_message,
    parse_message,
)

TRANSPORTS = ["udp", "tcp", "ws"]


def relay(*specs: str, **settings: Any) -> RtpEngine:
    settings.setdefault("ping_interval", 0)
    sets = settings.pop("sets", {"default": list(specs)})
    return RtpEngine(RelayConfig(sets=sets, **settings))


def node_of(daemon: RtpEngineDaemon, transport: str) -> str:
    return {"udp": daemon.udp, "tcp": daemon.tcp, "ws": daemon.ws}[transport]


def media_ports(sdp: str) -> list[int]:
    return [int(p) for p in re.findall(r"^m=audio (\d+) ", sdp, re.M)]


class FirstChoice(random.Random):
    """Always picks the first available node of a set."""

    def random(self) -> float:
        return 0.0


# -- the real daemon -----------------------------------------------------------------------


@pytest.mark.interop
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_call_lifecycle_against_rtpengine(rtpengine: RtpEngineDaemon, transport: str) -> None:
    node = node_of(rtpengine, transport)
    call_id = f"life-{transport}-{time.monotonic_ns()}"

    async def main() -> None:
        async with relay(node) as r:
            assert await r.ping(node) == {"result": "pong"}
            offer = await r.offer(call_id, "ft", SDP_OFFER, flags=["trust-address"])
            sdp = offer["sdp"]
            assert isinstance(sdp, str) and offer["result"] == "ok"
            assert "c=IN IP4 127.0.0.1" in sdp and "c=IN IP4 198.51.100.1" not in sdp
            (port,) = media_ports(sdp)
            assert rtpengine.port_min <= port <= rtpengine.port_max
            assert f"a=rtcp:{port + 1}" in sdp
            assert r.node_of(call_id) == node
            answer = await r.answer(call_id, "ft", "tt", SDP_ANSWER)
            assert isinstance(answer["sdp"], str) and "c=IN IP4 127.0.0.1" in answer["sdp"]
            query = await r.query(call_id)
            assert set(query["tags"]) >= {"ft", "tt"}  # type: ignore[arg-type]
            assert call_id in await r.list_calls(node)
            deleted = await r.delete(call_id, "ft", delay=0)
            assert deleted["result"] == "ok" and "warning" not in deleted
            assert call_id not in await r.list_calls(node)
            assert r.node_of(call_id) is None
            (status,) = r.status()
            assert status.timeouts == 0 and status.pending == 0

    run(main())
    assert call_id not in rtpengine.calls()


@pytest.mark.interop
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_large_reply_arrives_whole(rtpengine: RtpEngineDaemon, transport: str) -> None:
    node = node_of(rtpengine, transport)
    call_id = f"big-{transport}-{time.monotonic_ns()}"

    async def main() -> None:
        async with relay(node) as r:
            await r.offer(call_id, "ft", sdp_with_streams(8))
            await r.answer(call_id, "ft", "tt", sdp_with_streams(8, "203.0.113.7"))
            query = await r.query(call_id)
            medias = query["tags"]["ft"]["medias"]  # type: ignore[call-overload,index]
            assert len(medias) == 8
            await r.delete(call_id, "ft", delay=0)

    run(main())


@pytest.mark.interop
def test_daemon_errors_and_warnings(rtpengine: RtpEngineDaemon) -> None:
    async def main() -> None:
        async with relay(rtpengine.udp) as r:
            with pytest.raises(RelayRejected) as info:
                await r.answer("no-such-call", "ft", "tt", SDP_ANSWER)
            assert info.value.reason
            reply = await r.delete("no-such-call", "ft")  # unknown: asked of every node
            assert reply["result"] == "ok" and "warning" in reply
            (status,) = r.status()
            assert status.available  # an error reply is not a node failure

    run(main())


@pytest.mark.interop
def test_ws_commands_in_parallel(rtpengine: RtpEngineDaemon) -> None:
    """rtpengine 10.5 garbles WS replies it computes concurrently (often right after a
    query); the client runs WS commands in turn, so every one of them is answered."""

    async def main() -> None:
        async with relay(rtpengine.ws, timeout=1.0) as r:
            for round_ in range(4):
                call_id = f"ws-par-{round_}-{time.monotonic_ns()}"
                await r.offer(call_id, "ft", SDP_OFFER)
                queries = [r.query(call_id) for _ in range(3)]
                pings = [r.ping(rtpengine.ws) for _ in range(40)]
                replies = await asyncio.gather(*queries, *pings)
                assert all(x["result"] in ("pong", "ok") for x in replies)
                await r.delete(call_id, "ft", delay=0)
            (status,) = r.status()
            assert status.timeouts == 0

    run(main())


def test_ws_link_keeps_one_command_in_flight() -> None:
    async def main() -> None:
        in_flight = peak = 0

        async def handler(ws: ServerConnection) -> None:
            async def answer(message: NgMessage) -> None:
                nonlocal in_flight, peak
                in_flight += 1
                peak = max(peak, in_flight)
                await asyncio.sleep(0.005)
                in_flight -= 1
                await ws.send(encode_message(message.cookie, {"result": "pong"}))

            async with asyncio.TaskGroup() as group:
                async for frame in ws:
                    assert isinstance(frame, bytes)
                    group.create_task(answer(parse_message(frame)))

        async with serve(handler, HOST, 0, subprotocols=[Subprotocol(NG_SUBPROTOCOL)]) as server:
            spec = f"ws://{HOST}:{server.sockets[0].getsockname()[1]}/"  # type: ignore[union-attr]
            async with relay(spec) as r:
                replies = await asyncio.gather(*(r.ping(spec) for _ in range(20)))
        assert replies == [{"result": "pong"}] * 20 and peak == 1

    run(main())


@pytest.mark.interop
def test_tcp_ng_back_to_back_commands_and_split_reads(rtpengine: RtpEngineDaemon) -> None:
    """Five commands in one segment; the replies read 7 bytes at a time are all found."""
    batch = b"".join(encode_message(f"bb{i}", {"command": "ping"}) for i in range(4))
    batch += encode_message("bb-list", {"command": "list"})
    splitter = NgStreamSplitter()
    got: list[NgMessage] = []
    with socket.create_connection((HOST, rtpengine.ng_tcp), timeout=2) as s:
        s.sendall(batch)
        while len(got) < 5:
            chunk = s.recv(7)
            assert chunk, "connection closed early"
            got += splitter.feed(chunk)
    assert sorted(m.cookie for m in got) == ["bb-list", "bb0", "bb1", "bb2", "bb3"]
    assert splitter.buffered == 0


# -- scripted fake nodes ---------------------------------------------------------------------

Handler = Callable[[NgMessage], dict[str, Any] | None]


class FakeUdpNode(asyncio.DatagramProtocol):
    """A UDP "rtpengine" that answers with ``handler`` (None: stay silent)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.received: list[NgMessage] = []
        self.transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def start(cls, handler: Handler) -> tuple[FakeUdpNode, str]:
        loop = asyncio.get_running_loop()
        transport, node = await loop.create_datagram_endpoint(
            lambda: cls(handler), local_addr=(HOST, 0)
        )
        return node, f"udp:{HOST}:{transport.get_extra_info('sockname')[1]}"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        message = parse_message(data)
        self.received.append(message)
        reply = self.handler(message)
        if reply is not None and self.transport is not None:
            self.transport.sendto(encode_message(message.cookie, reply), addr)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def cookies(self, command: str) -> list[str]:
        return [m.cookie for m in self.received if m.body.get("command") == command]


def silent(message: NgMessage) -> None:
    return None


def ok(message: NgMessage) -> dict[str, Any]:
    if message.body.get("command") == "ping":
        return {"result": "pong"}
    return {"result": "ok", "sdp": "v=0\r\n"}


def test_udp_retransmits_with_the_same_cookie() -> None:
    async def main() -> None:
        seen: list[str] = []

        def drop_first(message: NgMessage) -> dict[str, Any] | None:
            seen.append(message.cookie)
            return None if len(seen) == 1 else {"result": "pong"}

        fake, spec = await FakeUdpNode.start(drop_first)
        async with relay(spec, timeout=2.0, retransmit=0.05) as r:
            assert await r.ping(spec) == {"result": "pong"}
            await r.ping(spec)
            (status,) = r.status()
        fake.close()
        assert seen[0] == seen[1] != seen[2]  # resent with its cookie; next command: new one
        assert status.retransmits == 1 and status.timeouts == 0

    run(main())


def test_tcp_reconnects_and_resends_with_the_same_cookie() -> None:
    async def main() -> None:
        cookies: list[str] = []
        connections = 0

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            splitter = NgStreamSplitter()
            while data := await reader.read(4096):
                for message in splitter.feed(data):
                    cookies.append(message.cookie)
                    if connections == 1:  # first connection: drop it without an answer
                        writer.close()
                        return
                    writer.write(encode_message(message.cookie, {"result": "pong"}))
            writer.close()

        server = await asyncio.start_server(serve, HOST, 0)
        spec = f"tcp:{HOST}:{server.sockets[0].getsockname()[1]}"
        async with relay(spec, timeout=2.0) as r:
            assert await r.ping(spec) == {"result": "pong"}
        server.close()
        assert connections == 2 and cookies[0] == cookies[1]

    run(main())


def test_tcp_replies_merged_in_one_segment_and_split_across_writes() -> None:
    async def main() -> None:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            splitter = NgStreamSplitter()
            pending: list[NgMessage] = []
            while data := await reader.read(4096):
                pending += splitter.feed(data)
                if len(pending) < 3:
                    continue
                replies = [encode_message(m.cookie, {"result": "pong"}) for m in pending]
                writer.write(replies[0] + replies[1])  # two replies in one segment
                await writer.drain()
                for i in range(0, len(replies[2]), 5):  # one reply in 5-byte pieces
                    writer.write(replies[2][i : i + 5])
                    await writer.drain()
                    await asyncio.sleep(0.005)
                pending.clear()
            writer.close()

        server = await asyncio.start_server(serve, HOST, 0)
        spec = f"tcp:{HOST}:{server.sockets[0].getsockname()[1]}"
        async with relay(spec, timeout=2.0) as r:
            replies = await asyncio.gather(*(r.ping(spec) for _ in range(3)))
        server.close()
        assert replies == [{"result": "pong"}] * 3

    run(main())


def test_unreachable_tcp_node_fails_fast_and_backs_off() -> None:
    async def main() -> None:
        with socket.socket() as s:  # a port with nothing listening
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        spec = f"tcp:{HOST}:{port}"
        async with relay(spec, timeout=1.0, reconnect_min=0.3) as r:
            started = time.monotonic()
            with pytest.raises(RelayUnavailable):
                await r.ping(spec)
            assert time.monotonic() - started < 0.2  # refused: no waiting for the timeout
            with pytest.raises(RelayUnavailable):
                await r.offer("c", "f", SDP_OFFER)  # disabled now: no node to take it

    run(main())


@pytest.mark.interop
def test_dead_node_is_disabled_and_new_calls_go_to_the_live_one(
    rtpengine: RtpEngineDaemon,
) -> None:
    async def main() -> None:
        dead, dead_spec = await FakeUdpNode.start(silent)
        config = RelayConfig(
            sets={"default": [dead_spec, rtpengine.udp]}, timeout=0.3, retransmit=0.12,
            ping_interval=0,
        )  # fmt: skip
        ids = [f"fo-{i}-{time.monotonic_ns()}" for i in range(6)]
        async with RtpEngine(config, rng=FirstChoice()) as r:
            started = time.monotonic()
            await r.offer(ids[0], "ft", SDP_OFFER)  # tried on the dead node first
            first = time.monotonic() - started
            sent_to_dead = len(dead.received)
            later = []
            for call_id in ids[1:]:
                started = time.monotonic()
                await r.offer(call_id, "ft", SDP_OFFER)
                later.append(time.monotonic() - started)
            assert {r.node_of(i) for i in ids} == {rtpengine.udp}
            status = {s.label: s for s in r.status()}
            for call_id in ids:
                await r.delete(call_id, "ft", delay=0)
        dead.close()
        assert 0.3 <= first < 1.0
        assert max(later) < 0.25  # the disabled node is skipped: no 0.3 s timeout any more
        assert len(dead.received) == sent_to_dead == 3  # one offer, sent and resent twice
        assert not status[dead_spec].available and status[dead_spec].timeouts == 1
        assert status[rtpengine.udp].available

    run(main())


@pytest.mark.interop
def test_slow_node_adds_no_latency_to_calls_on_another(rtpengine: RtpEngineDaemon) -> None:
    async def main() -> None:
        dead, dead_spec = await FakeUdpNode.start(silent)
        sets = {"default": [rtpengine.udp], "far": [dead_spec]}
        async with relay(sets=sets, timeout=1.0, retransmit=0.2) as r:
            baseline = [await _timed_ping(r, rtpengine.udp) for _ in range(20)]
            stuck = [asyncio.create_task(r.offer(f"stuck{i}", "f", SDP_OFFER, node_set="far"))
                     for i in range(5)]  # fmt: skip
            await asyncio.sleep(0.05)
            during = [await _timed_ping(r, rtpengine.udp) for _ in range(50)]
            assert not any(t.done() for t in stuck)  # the dead node's calls were still waiting
            results = await asyncio.gather(*stuck, return_exceptions=True)
        dead.close()
        assert all(isinstance(x, RelayUnavailable) for x in results)
        # Loopback pings take well under a millisecond; waiting for the dead node would take
        # its 1 s timeout. The bounds leave room for a loaded CI machine.
        assert max(during) < 0.2, during
        assert statistics.median(during) < statistics.median(baseline) + 0.01, (baseline, during)

    run(main())


async def _timed_ping(r: RtpEngine, node: str) -> float:
    started = time.monotonic()
    await r.ping(node)
    return time.monotonic() - started


def test_failed_delete_is_retried_in_the_background_a_bounded_number_of_times() -> None:
    async def main() -> None:
        fake, spec = await FakeUdpNode.start(ok)
        config: dict[str, Any] = {"timeout": 0.15, "retransmit": 0.05}
        config.update(delete_retries=2, delete_retry_delay=0.05, max_background_deletes=1)
        async with relay(spec, **config) as r:
            await r.offer("c1", "f", SDP_OFFER)
            await r.offer("c2", "f", SDP_OFFER)
            fake.handler = silent
            with pytest.raises(RelayTimeout):
                await r.delete("c1", "f")
            with pytest.raises(RelayTimeout):
                await r.delete("c2", "f")  # over max_background_deletes: not retried
            assert r.deletes_dropped == 1
            await asyncio.sleep(0.05 + 0.15 + 0.1 + 0.15 + 0.3)
            deletes = fake.cookies("delete")
            await asyncio.sleep(0.3)
            assert fake.cookies("delete") == deletes  # nothing after the last retry
        fake.close()
        assert len(set(deletes)) == 4  # c1 + 2 retries, c2 once

    run(main())


def test_background_delete_stops_once_it_succeeds() -> None:
    async def main() -> None:
        fake, spec = await FakeUdpNode.start(ok)
        async with relay(spec, timeout=0.15, delete_retries=5, delete_retry_delay=0.05) as r:
            await r.offer("c1", "f", SDP_OFFER)
            fake.handler = silent
            with pytest.raises(RelayTimeout):
                await r.delete("c1", "f")
            fake.handler = ok
            await asyncio.sleep(0.6)
        fake.close()
        assert len(set(fake.cookies("delete"))) == 2

    run(main())


def test_health_pings_bring_a_disabled_node_back() -> None:
    async def main() -> None:
        fake, spec = await FakeUdpNode.start(silent)
        settings = {"timeout": 0.1, "retransmit": 0.05, "disable_time": 0.2, "ping_interval": 0.1}
        async with relay(spec, **settings) as r:
            with pytest.raises(RelayUnavailable):
                await r.offer("c1", "f", SDP_OFFER)
            with pytest.raises(RelayUnavailable):
                await r.offer("c1", "f", SDP_OFFER)  # disabled: refused at once
            fake.handler = ok
            await asyncio.sleep(0.2)
            assert not r.status()[0].available  # disabled time not over yet
            await asyncio.sleep(0.4)
            assert r.status()[0].available
            assert (await r.offer("c1", "f", SDP_OFFER))["result"] == "ok"
        fake.close()
        assert fake.cookies("ping")

    run(main())


def test_weights_share_new_calls() -> None:
    async def main() -> None:
        a, spec_a = await FakeUdpNode.start(ok)
        b, spec_b = await FakeUdpNode.start(ok)
        config = RelayConfig(sets={"default": [f"{spec_a}=1", f"{spec_b}=3"]}, ping_interval=0)
        async with RtpEngine(config, rng=random.Random(3)) as r:
            for i in range(200):
                await r.offer(f"w{i}", "f", SDP_OFFER)
            await r.answer("w0", "f", "t", SDP_ANSWER)  # stays on w0's node
            await r.offer("w0", "f", SDP_OFFER)  # a re-offer too
        a.close()
        b.close()
        assert 30 < len(a.cookies("offer")) < 70
        assert len(a.cookies("offer")) + len(b.cookies("offer")) == 201
        home = a if "w0" in [m.body.get("call-id") for m in a.received] else b
        assert len([m for m in home.received if m.body.get("call-id") == "w0"]) == 3

    run(main())
