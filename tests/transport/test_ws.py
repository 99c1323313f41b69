"""SIP over WebSocket (RFC 7118) over real loopback sockets, under asyncio and uvloop.

Well-behaved clients are the ``websockets`` asyncio client; misbehaving ones (silent,
slow, deaf to pings) are raw sockets speaking just enough RFC 6455 by hand.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from transport_support import Received, Runner, make_manager, next_message, sip
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus
from websockets.typing import Origin, Subprotocol

from sipedge.cli_cert import make_selfsigned
from sipedge.transport.base import TransportConfig, TransportError
from sipedge.transport.manager import TransportManager
from sipedge.transport.tls import TlsServerConfig
from sipedge.transport.ws import WsConfig

HOSTS = ["127.0.0.1", "::1"]

CONFIG = TransportConfig(
    idle_timeout=5.0, message_timeout=5.0, connect_timeout=1.0, close_timeout=0.5
)
WS = WsConfig(handshake_timeout=1.0, ping_interval=None)
SIP = [Subprotocol("sip")]
Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_selfsigned(tmp_path_factory.mktemp("wss"), "ws.test")


def manager(config: TransportConfig = CONFIG) -> tuple[TransportManager, Received]:
    return make_manager(config)


def uri(scheme: str, addr: tuple[str, int]) -> str:
    host = f"[{addr[0]}]" if ":" in addr[0] else addr[0]
    return f"{scheme}://{host}:{addr[1]}/"


@asynccontextmanager
async def client(
    addr: tuple[str, int], scheme: str = "ws", cafile: Path | None = None, **options: Any
) -> AsyncIterator[ClientConnection]:
    if cafile is not None:
        options["ssl"] = ssl.create_default_context(cafile=str(cafile))
    options.setdefault("subprotocols", SIP)
    async with connect(
        uri(scheme, addr), proxy=None, open_timeout=1, close_timeout=0.5, **options
    ) as conn:
        yield conn


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.01)


# -- a raw client -----------------------------------------------------------------------

UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Protocol: sip\r\n\r\n"
)


async def raw_upgrade(addr: tuple[str, int]) -> Stream:
    reader, writer = await asyncio.open_connection(*addr)
    writer.write(UPGRADE)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 1.0)
    assert head.startswith(b"HTTP/1.1 101 ") and b"Sec-WebSocket-Protocol: sip" in head
    return reader, writer


def client_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A masked client frame (RFC 6455 §5.2, §5.3); payloads under 64 KiB."""
    mask = os.urandom(4)
    size = len(payload)
    length = bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + struct.pack("!H", size)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([(0x80 if fin else 0) | opcode]) + length + mask + masked


async def server_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """(opcode, payload) of the next unmasked server frame."""
    first, second = await asyncio.wait_for(reader.readexactly(2), 2.0)
    size = second & 0x7F
    if size == 126:
        (size,) = struct.unpack("!H", await reader.readexactly(2))
    elif size == 127:
        (size,) = struct.unpack("!Q", await reader.readexactly(8))
    return first & 0x0F, await reader.readexactly(size)


async def read_eof(reader: asyncio.StreamReader) -> bytes:
    try:
        return await asyncio.wait_for(reader.read(), 2.0)
    except ConnectionResetError:
        return b""


# -- messages ---------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["ws", "wss"])
@pytest.mark.parametrize("host", HOSTS)
def test_sip_message_each_way(run: Runner, host: str, scheme: str, cert: tuple[Path, Path]) -> None:
    async def main() -> None:
        mgr, queue = manager()
        tls = TlsServerConfig(*cert) if scheme == "wss" else None
        local = await mgr.start_listener(scheme, host, 0, tls=tls, ws=WS)
        assert (scheme, local) in mgr.listeners()
        cafile = cert[0] if scheme == "wss" else None
        async with client(local, scheme, cafile) as ws:
            assert ws.subprotocol == "sip"
            await ws.send(sip(b"text").decode())  # a text frame
            await ws.send(sip(b"\xff\xfe"))  # a binary frame
            await ws.send([sip(b"frag")[:10], sip(b"frag")[10:30], sip(b"frag")[30:]])
            (text, flow), (binary, flow2) = await next_message(queue), await next_message(queue)
            assert (text, binary) == (sip(b"text"), sip(b"\xff\xfe"))
            assert await next_message(queue) == (sip(b"frag"), flow)
            assert flow == flow2 and flow.transport == scheme and flow.local == local
            assert flow.remote == ws.local_address[:2] and flow.conn_id is not None
            [info] = mgr.connections()
            assert info.flow == flow and info.inbound
            assert mgr.flow_alive(flow)
            assert mgr.send(sip(b"reply"), flow)
            assert await asyncio.wait_for(ws.recv(), 1.0) == sip(b"reply").decode()  # text
            assert mgr.send(sip(b"\x80"), flow)
            assert await asyncio.wait_for(ws.recv(), 1.0) == sip(b"\x80")  # binary
            # send_to reuses the client's own connection; it never opens one (RFC 7118 §5)
            assert await mgr.send_to(sip(b"via"), scheme, *flow.remote) == flow
            assert await asyncio.wait_for(ws.recv(), 1.0) == sip(b"via").decode()
            await ws.send("\r\n\r\n")  # CRLF keepalive as a message: pong, nothing up
            assert await asyncio.wait_for(ws.recv(), 1.0) == "\r\n"
            assert queue.empty()
        await mgr.close()

    run(main())


def test_invalid_utf8_text_message_fails_with_1007(run: Runner) -> None:
    async def main() -> None:
        mgr, queue = manager()
        local = await mgr.start_listener("ws", "127.0.0.1", 0, ws=WS)
        reader, writer = await raw_upgrade(local)
        writer.write(client_frame(0x1, sip(b"\xff")))
        assert await server_frame(reader) == (
            0x8,
            struct.pack("!H", 1007) + b"invalid UTF-8 in a text message",
        )
        assert await read_eof(reader) == b""
        assert queue.empty()
        writer.close()
        await mgr.close()

    run(main())


# -- handshake --------------------------------------------------------------------------


def test_upgrade_needs_the_sip_subprotocol(run: Runner) -> None:
    async def main() -> None:
        mgr, _ = manager()
        local = await mgr.start_listener("ws", "127.0.0.1", 0, ws=WS)
        for offered in (None, [Subprotocol("chat")]):
            with pytest.raises(InvalidStatus) as refused:
                async with client(local, subprotocols=offered):
                    pass
            assert refused.value.response.status_code == 400
        async with client(local, subprotocols=[Subprotocol("chat"), *SIP]) as ws:
            assert ws.subprotocol == "sip"
        await until(lambda: not mgr.connections())
        await mgr.close()

    run(main())


def test_origin_allow_list(run: Runner) -> None:
    async def main() -> None:
        mgr, _ = manager()
        ws_config = replace(WS, origins=("https://app.test",), allow_missing_origin=False)
        local = await mgr.start_listener("ws", "127.0.0.1", 0, ws=ws_config)
        async with client(local, origin=Origin("https://app.test")) as ws:
            assert ws.subprotocol == "sip"
        for origin in (Origin("https://evil.test"), None):
            with pytest.raises(InvalidStatus) as refused:
                async with client(local, origin=origin):
                    pass
            assert refused.value.response.status_code == 403
        # any Origin is fine without a list
        open_local = await mgr.start_listener("ws", "127.0.0.1", 0, ws=WS)
        async with client(open_local, origin=Origin("https://evil.test")) as ws:
            assert ws.subprotocol == "sip"
        await mgr.close()

    run(main())


def test_handshake_timeout_drops_silent_and_slow_clients(run: Runner) -> None:
    async def main() -> None:
        mgr, _ = manager()
        local = await mgr.start_listener(
            "ws", "127.0.0.1", 0, ws=replace(WS, handshake_timeout=0.3)
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        silent = await asyncio.open_connection(*local)
        slow = await asyncio.open_connection(*local)
        await until(lambda: len(mgr.connections()) == 2)

        async def trickle() -> None:
            for byte in UPGRADE:  # one byte every 20 ms: never idle, never done in time
                slow[1].write(bytes([byte]))
                await asyncio.sleep(0.02)

        sender = asyncio.create_task(trickle())
        assert await read_eof(silent[0]) == b""
        assert await read_eof(slow[0]) == b""
        elapsed = loop.time() - started
        assert 0.25 < elapsed < 1.0 and not sender.done()
        assert mgr.connections() == []
        sender.cancel()
        for _, writer in (silent, slow):
            writer.close()
        await mgr.close()

    run(main())


def test_connections_per_ip_count_before_the_upgrade(run: Runner) -> None:
    async def main() -> None:
        mgr, queue = manager(replace(CONFIG, max_connections_per_ip=2))
        local = await mgr.start_listener("ws", "127.0.0.1", 0, ws=WS)
        tcp = await mgr.start_listener("tcp", "127.0.0.1", 0)
        pending = [await asyncio.open_connection(*local) for _ in range(2)]
        await until(lambda: len(mgr.connections()) == 2)
        with pytest.raises(InvalidMessage):  # dropped before any HTTP response
            async with client(local):
                pass
        reader, writer = await asyncio.open_connection(*tcp)  # the counter is shared
        assert await read_eof(reader) == b""
        writer.close()
        pending[0][1].close()
        await until(lambda: len(mgr.connections()) == 1)
        async with client(local) as ws:
            await ws.send(sip())
            assert (await next_message(queue))[0] == sip()
        for _, pending_writer in pending:
            pending_writer.close()
        await mgr.close()

    run(main())


# -- limits, keepalive, close -----------------------------------------------------------


def test_oversized_message_closes_with_1009_only_that_client(run: Runner) -> None:
    async def main() -> None:
        mgr, queue = manager()
        local = await mgr.start_listener(
            "ws", "127.0.0.1", 0, ws=replace(WS, max_message_size=1000)
        )
        async with client(local) as good, client(local) as bad:
            await bad.send(sip(b"x" * 1000))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(bad.recv(), 1.0)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
            await good.send(sip(b"fine"))
            data, flow = await next_message(queue)
            assert data == sip(b"fine") and mgr.send(sip(b"ok"), flow)
            assert await asyncio.wait_for(good.recv(), 1.0) == sip(b"ok").decode()
            assert queue.empty()
        await mgr.close()

    run(main())


def test_oversized_fragmented_message_closes_with_1009(run: Runner) -> None:
    async def main() -> None:
        mgr, queue = manager()
        local = await mgr.start_listener(
            "ws", "127.0.0.1", 0, ws=replace(WS, max_message_size=1000)
        )
        reader, writer = await raw_upgrade(local)
        writer.write(client_frame(0x2, b"y" * 600, fin=False) + client_frame(0x0, b"y" * 600))
        opcode, payload = await server_frame(reader)
        assert opcode == 0x8 and payload[:2] == struct.pack("!H", 1009)
        assert await read_eof(reader) == b""
        assert queue.empty()
        writer.close()
        await mgr.close()

    run(main())


def test_ping_timeout_closes_a_deaf_client(run: Runner) -> None:
    async def main() -> None:
        mgr, queue = manager()
        ws_config = replace(WS, ping_interval=0.1, ping_timeout=0.15)
        local = await mgr.start_listener("ws", "127.0.0.1", 0, ws=ws_config)
        loop = asyncio.get_running_loop()
        async with client(local, ping_interval=None) as alive:  # answers pings
            reader, writer = await raw_upgrade(local)
            started = loop.time()
            opcode, payload = await server_frame(reader)
            assert opcode == 0x9 and payload  # the server's ping, never answered
            opcode, payload = await server_frame(reader)
            assert opcode == 0x8 and payload[:2] == struct.pack("!H", 1011)
            assert await read_eof(reader) == b""
            assert 0.2 < loop.time() - started < 0.6
            await asyncio.sleep(0.3)  # several more pings answered by the library client
            await alive.send(sip(b"alive"))
            assert (await next_message(queue))[0] == sip(b"alive")
            assert len(mgr.connections()) == 1
            writer.close()
        await mgr.close()

    run(main())


def test_slow_frame_and_idle_connection_are_closed(run: Runner) -> None:
    async def main() -> None:
        mgr, queue = manager(replace(CONFIG, message_timeout=0.2, idle_timeout=0.3))
        local = await mgr.start_listener("ws", "127.0.0.1", 0, ws=WS)
        loop = asyncio.get_running_loop()
        reader, writer = await raw_upgrade(local)
        started = loop.time()
        frame = client_frame(0x1, sip(b"z" * 50))
        for byte in frame[:40]:  # slowloris inside a frame: never idle
            writer.write(bytes([byte]))
            await asyncio.sleep(0.02)
            if reader.at_eof() or not mgr.connections():
                break
        opcode, payload = await server_frame(reader)
        assert opcode == 0x8 and payload[:2] == struct.pack("!H", 1008)
        assert 0.15 < loop.time() - started < 0.6
        writer.close()
        async with client(local, ping_interval=None) as idle:
            started = loop.time()
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(idle.recv(), 2.0)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
            assert 0.25 < loop.time() - started < 1.0
        assert queue.empty()
        await mgr.close()

    run(main())


def test_closed_flow_is_dead_and_never_reopened(run: Runner) -> None:
    async def main() -> None:
        mgr, queue = manager()
        local = await mgr.start_listener("ws", "::1", 0, ws=WS)
        async with client(local) as ws:
            await ws.send(sip())
            _, flow = await next_message(queue)
        await until(lambda: not mgr.connections())
        assert not mgr.flow_alive(flow)
        assert not mgr.send(sip(), flow)
        with pytest.raises(TransportError, match="clients connect to us"):
            await mgr.send_to(sip(), "ws", *flow.remote)
        with pytest.raises(TransportError, match="clients connect to us"):
            await mgr.send_to(sip(), "wss", "127.0.0.1", 443)
        assert mgr.connections() == []
        await mgr.close()

    run(main())


def test_manager_close_sends_a_close_frame(run: Runner) -> None:
    async def main() -> None:
        mgr, queue = manager()
        local = await mgr.start_listener("ws", "127.0.0.1", 0, ws=WS)
        async with client(local) as ws:
            await ws.send(sip())
            _, flow = await next_message(queue)
            mgr.send(sip(b"last words"), flow)
            await mgr.close()
            assert await asyncio.wait_for(ws.recv(), 1.0) == sip(b"last words").decode()
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 1.0)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
        assert mgr.connections() == [] and mgr.listeners() == []

    run(main())


def test_ws_configuration_is_validated() -> None:
    with pytest.raises(ValueError):
        WsConfig(handshake_timeout=0)
    with pytest.raises(ValueError):
        WsConfig(origins="https://a.test")  # type: ignore[arg-type]
