"""UDP and TCP transport over real loopback sockets (127.0.0.1 and ::1), asyncio and uvloop.

Every test runs under both event loops and inside an overall timeout; the timeouts in the
configurations are small so the whole file takes a few seconds.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace
from typing import Any

import pytest
from transport_support import Received, Runner, make_manager, next_message, sip

from sipedge.transport.base import (
    ConnectError,
    Flow,
    NoListenerError,
    TransportConfig,
    TransportError,
)
from sipedge.transport.manager import TransportManager

HOSTS = ["127.0.0.1", "::1"]

CONFIG = TransportConfig(
    idle_timeout=5.0, message_timeout=5.0, connect_timeout=1.0, close_timeout=0.5
)


def manager(config: TransportConfig = CONFIG) -> tuple[TransportManager, Received]:
    return make_manager(config)


async def read_eof(reader: asyncio.StreamReader) -> bytes:
    """Everything until the server closes the connection (a reset counts as closed)."""
    try:
        return await asyncio.wait_for(reader.read(), 2.0)
    except ConnectionResetError:
        return b""


class UDPClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait((data, (addr[0], addr[1])))


async def udp_client(host: str) -> tuple[asyncio.DatagramTransport, UDPClient]:
    loop = asyncio.get_running_loop()
    return await loop.create_datagram_endpoint(UDPClient, local_addr=(host, 0))


def free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# -- UDP --------------------------------------------------------------------------------


@pytest.mark.parametrize("host", HOSTS)
def test_udp_receive_and_reply_over_the_flow(run: Runner, host: str) -> None:
    async def main() -> None:
        mgr, queue = manager()
        local = await mgr.start_listener("udp", host, 0)
        assert local[0] == host and local[1] > 0
        transport, client = await udp_client(host)
        transport.sendto(sip(b"hi"), local)
        data, flow = await next_message(queue)
        assert data == sip(b"hi")
        assert flow == Flow("udp", local, transport.get_extra_info("sockname")[:2], None)
        assert mgr.send(b"SIP/2.0 200 OK\r\n\r\n", flow)
        assert await client.queue.get() == (b"SIP/2.0 200 OK\r\n\r\n", local)
        transport.close()
        await mgr.close()

    run(main())


@pytest.mark.parametrize(("host", "size"), [("127.0.0.1", 65507), ("::1", 65527)])
def test_udp_accepts_the_largest_datagram(run: Runner, host: str, size: int) -> None:
    async def main() -> None:
        mgr, queue = manager()
        local = await mgr.start_listener("udp", host, 0)
        transport, _ = await udp_client(host)
        payload = sip(b"x" * (size - len(sip()) - 4))  # "0" becomes 5 digits
        assert len(payload) == size
        transport.sendto(payload, local)
        data, _ = await next_message(queue)
        assert data == payload
        transport.close()
        await mgr.close()

    run(main())


def test_udp_keepalives_are_dropped(run: Runner) -> None:
    async def main() -> None:
        mgr, queue = manager()
        local = await mgr.start_listener("udp", "127.0.0.1", 0)
        transport, _ = await udp_client("127.0.0.1")
        stun = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + b"\x00" * 12
        for keepalive in (b"\r\n\r\n", b"\r\n", b"\x00\x00\x00\x00", stun):
            transport.sendto(keepalive, local)
        transport.sendto(sip(), local)
        data, _ = await next_message(queue)
        assert data == sip()
        assert queue.empty()
        transport.close()
        await mgr.close()

    run(main())


@pytest.mark.parametrize("host", HOSTS)
def test_udp_send_to_leaves_from_the_listener(run: Runner, host: str) -> None:
    async def main() -> None:
        mgr, _ = manager()
        other = "127.0.0.1" if host == "::1" else "::1"
        await mgr.start_listener("udp", other, 0)
        local = await mgr.start_listener("udp", host, 0)
        transport, client = await udp_client(host)
        target = transport.get_extra_info("sockname")[:2]
        flow = await mgr.send_to(sip(), "udp", target[0], target[1])
        assert flow == Flow("udp", local, target)
        assert await client.queue.get() == (sip(), local)
        transport.close()
        await mgr.close()

    run(main())


def test_udp_send_to_needs_a_listener_of_the_family(run: Runner) -> None:
    async def main() -> None:
        mgr, _ = manager()
        local = await mgr.start_listener("udp", "127.0.0.1", 0)
        with pytest.raises(NoListenerError):
            await mgr.send_to(sip(), "udp", "::1", 5060)
        with pytest.raises(NoListenerError):
            await mgr.send_to(sip(), "udp", "127.0.0.1", 5060, local=(local[0], local[1] + 1))
        with pytest.raises(ValueError):
            await mgr.send_to(sip(), "udp", "sip.example.com", 5060)
        await mgr.close()

    run(main())


def test_on_message_exceptions_are_contained(run: Runner) -> None:
    async def main() -> None:
        queue: Received = asyncio.Queue()

        def on_message(data: bytes, flow: Flow) -> None:
            if b"BOOM" in data:
                raise RuntimeError("router bug")
            queue.put_nowait((data, flow))

        mgr = TransportManager(on_message, CONFIG)
        udp = await mgr.start_listener("udp", "127.0.0.1", 0)
        tcp = await mgr.start_listener("tcp", "127.0.0.1", 0)
        transport, _ = await udp_client("127.0.0.1")
        transport.sendto(sip(method="BOOM"), udp)
        transport.sendto(sip(), udp)
        assert (await next_message(queue))[0] == sip()
        _, writer = await asyncio.open_connection(*tcp)
        writer.write(sip(method="BOOM") + sip(b"after"))
        assert (await next_message(queue))[0] == sip(b"after")
        assert len(mgr.connections()) == 1  # the connection survived the bug
        writer.close()
        transport.close()
        await mgr.close()

    run(main())


# -- TCP, inbound -----------------------------------------------------------------------


@pytest.mark.parametrize("host", HOSTS)
def test_tcp_framing_ping_and_reply_over_the_flow(run: Runner, host: str) -> None:
    async def main() -> None:
        mgr, queue = manager()
        local = await mgr.start_listener("tcp", host, 0)
        reader, writer = await asyncio.open_connection(*local)
        stream = b"\r\n" + sip(b"one\r\n\r\n") + b"\r\n\r\n" + sip(b"two")
        for i in range(0, len(stream), 11):
            writer.write(stream[i : i + 11])
            await writer.drain()
        assert await asyncio.wait_for(reader.readexactly(2), 1.0) == b"\r\n"  # RFC 5626 pong
        (first, flow), (second, flow2) = await next_message(queue), await next_message(queue)
        assert (first, second) == (sip(b"one\r\n\r\n"), sip(b"two"))
        client = writer.get_extra_info("sockname")[:2]
        assert flow == flow2 and flow.transport == "tcp" and flow.conn_id is not None
        assert (flow.local, flow.remote) == (local, client)
        [info] = mgr.connections()
        assert info.flow == flow and info.inbound
        assert mgr.send(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", flow)
        assert await reader.readuntil(b"\r\n\r\n") == b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"
        writer.close()
        await mgr.close()

    run(main())


def test_tcp_flow_dies_with_its_connection(run: Runner) -> None:
    async def main() -> None:
        mgr, queue = manager()
        local = await mgr.start_listener("tcp", "127.0.0.1", 0)
        _, writer = await asyncio.open_connection(*local)
        writer.write(sip())
        _, flow = await next_message(queue)
        assert mgr.flow_alive(flow)
        writer.close()
        await writer.wait_closed()
        while mgr.connections():
            await asyncio.sleep(0.01)
        assert not mgr.flow_alive(flow)
        assert not mgr.send(sip(), flow)  # never reconnects
        # a new connection from the same address is a different flow
        _, writer = await asyncio.open_connection(*local)
        writer.write(sip())
        _, flow2 = await next_message(queue)
        assert flow2.conn_id != flow.conn_id and not mgr.send(sip(), flow)
        writer.close()
        await mgr.close()

    run(main())


def test_tcp_unframeable_and_oversized_input_closes(run: Runner) -> None:
    async def main() -> None:
        mgr, queue = manager(replace(CONFIG, max_message_size=500))
        local = await mgr.start_listener("tcp", "127.0.0.1", 0)
        for junk in (b"INVITE sip:a SIP/2.0\r\nl: 10000\r\n\r\n", b"\r\x00", sip(b"x" * 600)):
            reader, writer = await asyncio.open_connection(*local)
            writer.write(junk)
            assert await read_eof(reader) == b""
            writer.close()
        assert queue.empty()
        await mgr.close()

    run(main())


def test_tcp_connection_limit_per_source_ip(run: Runner) -> None:
    async def main() -> None:
        mgr, queue = manager(replace(CONFIG, max_connections_per_ip=2))
        local = await mgr.start_listener("tcp", "127.0.0.1", 0)
        clients = [await asyncio.open_connection(*local) for _ in range(2)]
        for _, writer in clients:
            writer.write(sip())
            await next_message(queue)
        reader, writer = await asyncio.open_connection(*local)
        assert await read_eof(reader) == b""
        writer.close()
        assert len(mgr.connections()) == 2
        clients[0][1].close()
        while len(mgr.connections()) > 1:
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection(*local)  # a slot is free again
        writer.write(sip(b"ok"))
        assert (await next_message(queue))[0] == sip(b"ok")
        await mgr.close()
        for _, client in [*clients, (reader, writer)]:
            client.close()

    run(main())


def test_tcp_idle_timeout_and_keepalive(run: Runner) -> None:
    async def main() -> None:
        mgr, _ = manager(replace(CONFIG, idle_timeout=0.15))
        local = await mgr.start_listener("tcp", "127.0.0.1", 0)
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection(*local)
        started = loop.time()
        for _ in range(4):  # pings every 0.08 s keep it open past the idle timeout
            writer.write(b"\r\n\r\n")
            assert await asyncio.wait_for(reader.readexactly(2), 1.0) == b"\r\n"
            await asyncio.sleep(0.08)
        assert len(mgr.connections()) == 1
        assert await read_eof(reader) == b""  # then silence: reaped
        assert 0.3 < loop.time() - started < 1.5
        assert mgr.connections() == []
        writer.close()
        await mgr.close()

    run(main())


def test_tcp_slow_message_is_cut_off(run: Runner) -> None:
    async def main() -> None:
        mgr, queue = manager(replace(CONFIG, message_timeout=0.2))
        local = await mgr.start_listener("tcp", "127.0.0.1", 0)
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection(*local)
        writer.write(sip())  # a complete message first: the clock starts with the next one
        await next_message(queue)
        started = loop.time()
        for byte in sip(b"x" * 100):  # slowloris: one byte every 20 ms, never idle
            if writer.is_closing() or reader.at_eof():
                break
            writer.write(bytes([byte]))
            await asyncio.sleep(0.02)
            if not mgr.connections():
                break
        assert mgr.connections() == []
        assert 0.15 < loop.time() - started < 0.6
        assert queue.empty()
        writer.close()
        await mgr.close()

    run(main())


def test_tcp_half_open_connection_is_closed(run: Runner) -> None:
    async def main() -> None:
        mgr, _ = manager(replace(CONFIG, message_timeout=0.2))
        local = await mgr.start_listener("tcp", "127.0.0.1", 0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        silent = await asyncio.open_connection(*local)
        pinging = await asyncio.open_connection(*local)  # keepalives are not a message
        for _ in range(3):
            pinging[1].write(b"\r\n\r\n")
            await asyncio.sleep(0.05)
        assert await read_eof(silent[0]) == b""
        assert await read_eof(pinging[0]) == b"\r\n" * 3
        assert 0.15 < loop.time() - started < 1.0 and mgr.connections() == []
        await mgr.close()
        silent[1].close()
        pinging[1].close()

    run(main())


def test_tcp_peer_not_reading_is_aborted(run: Runner) -> None:
    async def main() -> None:
        mgr, queue = manager(replace(CONFIG, max_write_buffer=64 * 1024))
        local = await mgr.start_listener("tcp", "127.0.0.1", 0)
        _, writer = await asyncio.open_connection(*local)
        writer.write(sip())
        _, flow = await next_message(queue)
        chunk = b"x" * (1 << 20)
        sent = [mgr.send(chunk, flow) for _ in range(64)]  # never read by the peer
        assert sent[0] and not sent[-1]
        assert not mgr.flow_alive(flow)
        writer.close()
        await mgr.close()

    run(main())


# -- TCP, outbound ----------------------------------------------------------------------


class PeerServer:
    """A plain asyncio TCP server standing in for a remote SIP element."""

    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []
        self.readers: list[asyncio.StreamReader] = []

    async def start(self, host: str) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._accept, host, 0)
        return self.server.sockets[0].getsockname()[:2]  # type: ignore[no-any-return]

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.readers.append(reader)
        self.writers.append(writer)

    async def close(self) -> None:
        for writer in self.writers:
            writer.close()
        self.server.close()


@pytest.mark.parametrize("host", HOSTS)
def test_tcp_send_to_opens_then_reuses(run: Runner, host: str) -> None:
    async def main() -> None:
        mgr, queue = manager()
        listener = await mgr.start_listener("tcp", host, 0)
        peer = PeerServer()
        target = await peer.start(host)
        flow = await mgr.send_to(sip(b"1"), "tcp", *target)
        assert flow.transport == "tcp" and flow.remote == target and flow.local == listener
        again = await mgr.send_to(sip(b"2"), "tcp", *target)
        assert again == flow and len(peer.readers) == 1
        reader = peer.readers[0]
        assert await reader.readexactly(len(sip(b"1")) * 2) == sip(b"1") + sip(b"2")
        [info] = mgr.connections()
        assert not info.inbound and info.sockname[0] == host
        peer.writers[0].write(b"\r\n\r\n" + sip(b"answer"))  # requests come back on the flow
        assert await next_message(queue) == (sip(b"answer"), flow)
        assert await reader.readexactly(2) == b"\r\n"
        await peer.close()
        await mgr.close()

    run(main())


def test_tcp_concurrent_send_to_share_one_connection(run: Runner) -> None:
    async def main() -> None:
        mgr, _ = manager()
        peer = PeerServer()
        target = await peer.start("127.0.0.1")
        flows = await asyncio.gather(*(mgr.send_to(sip(), "tcp", *target) for _ in range(5)))
        assert len(set(flows)) == 1 and len(mgr.connections()) == 1
        await peer.close()
        await mgr.close()

    run(main())


def test_tcp_send_to_reuses_an_inbound_connection(run: Runner) -> None:
    async def main() -> None:
        mgr, queue = manager()
        local = await mgr.start_listener("tcp", "::1", 0)
        reader, writer = await asyncio.open_connection(*local)
        writer.write(sip())
        _, flow = await next_message(queue)
        client = writer.get_extra_info("sockname")
        assert await mgr.send_to(sip(b"back"), "tcp", "0:0::1", client[1]) == flow
        assert await reader.readexactly(len(sip(b"back"))) == sip(b"back")
        with pytest.raises(NoListenerError):  # local given: only that listener's flows
            await mgr.send_to(sip(), "tcp", "::1", client[1], local=("::1", 1))
        writer.close()
        await mgr.close()

    run(main())


@pytest.mark.parametrize("host", HOSTS)
def test_tcp_connect_refused(run: Runner, host: str) -> None:
    async def main() -> None:
        mgr, _ = manager()
        with pytest.raises(ConnectError):
            await mgr.send_to(sip(), "tcp", host, free_port(host))
        assert mgr.connections() == []
        await mgr.close()

    run(main())


def test_unsupported_transports(run: Runner) -> None:
    async def main() -> None:
        mgr, _ = manager()
        with pytest.raises(TransportError):
            await mgr.start_listener("sctp", "127.0.0.1", 0)
        with pytest.raises(TransportError):
            await mgr.send_to(sip(), "ws", "127.0.0.1", 80)
        with pytest.raises(ValueError):
            await mgr.start_listener("tcp", "localhost", 0)
        await mgr.close()

    run(main())


# -- shutdown ---------------------------------------------------------------------------


def test_close_releases_everything(run: Runner) -> None:
    async def main() -> None:
        mgr, queue = manager()
        tcp = await mgr.start_listener("tcp", "127.0.0.1", 0)
        udp = await mgr.start_listener("udp", "::1", 0)
        reader, writer = await asyncio.open_connection(*tcp)
        writer.write(sip())
        _, flow = await next_message(queue)
        mgr.send(sip(b"last words"), flow)
        await mgr.close()
        assert await read_eof(reader) == sip(b"last words")  # flushed, then closed
        assert mgr.connections() == [] and mgr.listeners() == []
        assert not mgr.send(sip(), flow)
        with pytest.raises(TransportError):
            await mgr.send_to(sip(), "udp", "::1", 5060)
        for kind, addr in ((socket.SOCK_STREAM, tcp), (socket.SOCK_DGRAM, udp)):
            family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
            with socket.socket(family, kind) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(addr)  # the port is free again
        await mgr.close()  # idempotent
        writer.close()

    run(main())
