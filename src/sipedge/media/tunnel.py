"""UDP-over-TCP tunnel for ng control traffic: both ends and the framing between them.

Theory of operation. ``TunnelClient`` runs on the proxy host: it listens on UDP, gives each
UDP source address a client id and carries every datagram as one frame over a single
persistent TCP connection (TLS optional) to ``TunnelServer`` beside rtpengine. The server
keeps, per connection and client id, a UDP socket towards the target and frames every
reply back; the client sends it from its UDP socket to the original source. Each datagram
stays one datagram, whatever its size (up to 64 KiB) and however many are in flight, which
is exactly what a byte-stream relay such as socat gets wrong (it truncates at its buffer
size and merges back-to-back datagrams).

A frame is ``!IBI``: length N of what follows the length field, a type byte, the client id,
then N - 5 bytes of payload. Types: DATA (a datagram), PING/PONG (keepalive; a connection
silent for ``dead_after`` seconds is closed), CLOSE (the client id expired). Queues and
client maps are bounded; datagrams that do not fit are dropped and counted; idle client
ids expire; the client reconnects with exponential backoff and sends what it queued while
the connection was down. Empty datagrams are not carried (asyncio never sends them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sipedge.sip.errors import LimitExceeded, ParseError

log = logging.getLogger("sipedge.tunnel")

__all__ = [
    "CLOSE",
    "DATA",
    "MAX_DATAGRAM",
    "PING",
    "PONG",
    "Address",
    "Frame",
    "FrameReader",
    "TunnelClient",
    "TunnelConfig",
    "TunnelServer",
    "TunnelStats",
    "encode_frame",
    "parse_hostport",
]

DATA, PING, PONG, CLOSE = 0, 1, 2, 3
MAX_DATAGRAM = 65535
_HEADER = struct.Struct("!IBI")
_AFTER_LENGTH = _HEADER.size - 4

Address = tuple[str, int]


# -- framing (pure) -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Frame:
    """One tunnel frame: its type, client id and payload."""

    kind: int
    cid: int
    payload: bytes = b""


def encode_frame(kind: int, cid: int, payload: bytes = b"") -> bytes:
    """The bytes of one frame; raises :class:`LimitExceeded` over 64 KiB of payload."""
    if len(payload) > MAX_DATAGRAM:
        raise LimitExceeded(f"tunnel: datagram of {len(payload)} bytes is over {MAX_DATAGRAM}")
    return _HEADER.pack(len(payload) + _AFTER_LENGTH, kind, cid) + payload


class FrameReader:
    """Cuts the TCP byte stream into frames; raises :class:`ParseError` on a bad frame."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        """Add ``data``; return every frame now complete."""
        self._buffer += data
        frames: list[Frame] = []
        pos = 0
        while len(self._buffer) - pos >= _HEADER.size:
            length, kind, cid = _HEADER.unpack_from(self._buffer, pos)
            if not _AFTER_LENGTH <= length <= MAX_DATAGRAM + _AFTER_LENGTH:
                raise ParseError(f"tunnel: bad frame length {length}")
            if kind > CLOSE:
                raise ParseError(f"tunnel: unknown frame type {kind}")
            end = pos + 4 + length
            if end > len(self._buffer):
                break
            frames.append(Frame(kind, cid, bytes(self._buffer[pos + _HEADER.size : end])))
            pos = end
        del self._buffer[:pos]
        return frames


def parse_hostport(text: str) -> Address:
    """``HOST:PORT`` or ``[IPv6]:PORT``; raises :class:`ParseError` naming the fault."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ParseError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


# -- shared pieces -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TunnelConfig:
    """Settings of both ends; every limit has a safe default.

    ``keepalive``: seconds between pings; ``dead_after``: a silent connection is closed;
    ``idle_timeout``: a client id unused this long is forgotten on both ends;
    ``max_clients``: client ids per end (per connection on the server); ``max_queue``:
    datagrams the client holds while the connection is down or busy;
    ``max_write_buffer``: bytes buffered on the TCP socket before datagrams are dropped;
    ``udp_buffer``: SO_RCVBUF/SO_SNDBUF of the UDP sockets; ``tls`` is a client or server
    :class:`ssl.SSLContext` (``None``: plain TCP); ``server_hostname`` overrides the name
    the client checks in the server certificate.
    """

    keepalive: float = 10.0
    dead_after: float = 30.0
    idle_timeout: float = 300.0
    max_clients: int = 4096
    max_queue: int = 1024
    max_write_buffer: int = 4 << 20
    udp_buffer: int = 1 << 20
    reconnect_min: float = 0.1
    reconnect_max: float = 5.0
    connect_timeout: float = 5.0
    tls: ssl.SSLContext | None = field(default=None, compare=False)
    server_hostname: str | None = None


@dataclass(slots=True)
class TunnelStats:
    """Counters of one end (mutable; read them, do not write them)."""

    datagrams_in: int = 0
    datagrams_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    dropped: int = 0
    connects: int = 0
    disconnects: int = 0
    clients_expired: int = 0
    bad_frames: int = 0

    def summary(self) -> str:
        """One line for logs."""
        return " ".join(f"{name}={getattr(self, name)}" for name in self.__slots__)


class _Datagrams(asyncio.DatagramProtocol):
    """Thin adapter: hands each datagram and its source to a callback."""

    def __init__(self, on_datagram: Callable[[bytes, Address], None]) -> None:
        self._on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._on_datagram(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        log.debug("tunnel UDP error: %s", exc)


def _enlarge_buffers(transport: asyncio.BaseTransport, size: int) -> None:
    """Room for bursts of large datagrams (the kernel caps it at net.core.*mem_max)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and size > 0:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _Pump:
    """One TCP connection: reads frames, sends keepalives, closes when silent too long."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        config: TunnelConfig,
        stats: TunnelStats,
        on_frame: Callable[[Frame], None],
    ) -> None:
        self.reader, self.writer = reader, writer
        self._config, self._stats, self._on_frame = config, stats, on_frame
        self._last_heard = asyncio.get_running_loop().time()
        _nodelay(writer)

    def send(self, frame: bytes) -> bool:
        """Queue ``frame`` on the socket; False (dropped) when the write buffer is full."""
        transport = self.writer.transport
        if transport.is_closing() or (
            transport.get_write_buffer_size() > self._config.max_write_buffer
        ):
            self._stats.dropped += 1
            return False
        self.writer.write(frame)
        return True

    async def run(self) -> None:
        """Read until the peer closes, goes silent or sends a bad frame."""
        keepalive = asyncio.create_task(self._keepalive())
        frames = FrameReader()
        try:
            while data := await self.reader.read(1 << 16):
                self._last_heard = asyncio.get_running_loop().time()
                for frame in frames.feed(data):
                    self._handle(frame)
        except ParseError as exc:
            self._stats.bad_frames += 1
            log.warning("tunnel: closing connection: %s", exc)
        except (OSError, ssl.SSLError) as exc:
            log.info("tunnel: connection lost: %s", exc)
        finally:
            keepalive.cancel()
            await self.close()

    def _handle(self, frame: Frame) -> None:
        if frame.kind == PING:
            self.send(encode_frame(PONG, 0))
        elif frame.kind != PONG:
            self._on_frame(frame)

    async def _keepalive(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._config.keepalive)
            if loop.time() - self._last_heard > self._config.dead_after:
                log.warning("tunnel: peer silent for %.0f s; closing", self._config.dead_after)
                self.writer.transport.abort()
                return
            self.send(encode_frame(PING, 0))

    async def close(self) -> None:
        """Close the connection (quietly if it is already gone)."""
        self.writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await self.writer.wait_closed()


# -- client end (proxy host) ---------------------------------------------------------------


class TunnelClient:
    """UDP listener on the proxy host; one persistent TCP connection to the server."""

    def __init__(self, udp: Address, tcp: Address, config: TunnelConfig | None = None) -> None:
        self._udp_address, self._tcp_address = udp, tcp
        self.config = config or TunnelConfig()
        self.stats = TunnelStats()
        self._by_addr: dict[Address, int] = {}
        self._by_cid: dict[int, tuple[Address, float]] = {}
        self._next_cid = 0
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(self.config.max_queue)
        self._udp: asyncio.DatagramTransport | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.connected = asyncio.Event()

    @property
    def clients(self) -> int:
        """Client ids (UDP source addresses) currently mapped."""
        return len(self._by_cid)

    @property
    def udp_address(self) -> Address:
        """The bound UDP address (useful with port 0)."""
        assert self._udp is not None
        host, port = self._udp.get_extra_info("sockname")[:2]
        return host, port

    async def start(self) -> None:
        """Bind the UDP socket and start connecting."""
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(
            lambda: _Datagrams(self._from_udp), local_addr=self._udp_address
        )
        _enlarge_buffers(self._udp, self.config.udp_buffer)
        self._tasks = [
            asyncio.create_task(self._connect_loop()),
            asyncio.create_task(self._expire()),
        ]

    async def close(self) -> None:
        """Stop everything."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._udp is not None:
            self._udp.close()

    def _from_udp(self, data: bytes, addr: Address) -> None:
        cid = self._cid_for(addr)
        if cid is None or len(data) > MAX_DATAGRAM:
            self.stats.dropped += 1
            return
        self._by_cid[cid] = (addr, asyncio.get_running_loop().time())
        try:
            self._queue.put_nowait(encode_frame(DATA, cid, data))
        except asyncio.QueueFull:
            self.stats.dropped += 1
            return
        self.stats.datagrams_in += 1
        self.stats.bytes_in += len(data)

    def _cid_for(self, addr: Address) -> int | None:
        cid = self._by_addr.get(addr)
        if cid is None:
            if len(self._by_addr) >= self.config.max_clients:
                return None
            self._next_cid = (self._next_cid + 1) & 0xFFFFFFFF
            cid = self._by_addr[addr] = self._next_cid
        return cid

    def _from_tcp(self, frame: Frame) -> None:
        entry = self._by_cid.get(frame.cid)
        if frame.kind != DATA or entry is None or self._udp is None:
            return
        self._udp.sendto(frame.payload, entry[0])
        self.stats.datagrams_out += 1
        self.stats.bytes_out += len(frame.payload)

    async def _connect_loop(self) -> None:
        delay = self.config.reconnect_min
        while True:
            try:
                async with asyncio.timeout(self.config.connect_timeout):
                    reader, writer = await asyncio.open_connection(
                        *self._tcp_address,
                        ssl=self.config.tls,
                        server_hostname=self.config.server_hostname if self.config.tls else None,
                    )
            except (OSError, TimeoutError, ssl.SSLError) as exc:
                log.info(
                    "tunnel: cannot connect to %s: %s; retry in %.1f s",
                    self._tcp_address,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.config.reconnect_max)
                continue
            delay = self.config.reconnect_min
            await self._serve(_Pump(reader, writer, self.config, self.stats, self._from_tcp))

    async def _serve(self, pump: _Pump) -> None:
        self.stats.connects += 1
        log.info("tunnel: connected to %s", self._tcp_address)
        writer = asyncio.create_task(self._drain_queue(pump))
        self.connected.set()
        try:
            await pump.run()
        finally:
            self.connected.clear()
            writer.cancel()
            self.stats.disconnects += 1

    async def _drain_queue(self, pump: _Pump) -> None:
        while True:
            frame = await self._queue.get()
            if not pump.send(frame):
                await asyncio.sleep(0.01)

    async def _expire(self) -> None:
        while True:
            await asyncio.sleep(min(self.config.idle_timeout / 4, 30.0))
            limit = asyncio.get_running_loop().time() - self.config.idle_timeout
            for cid, (addr, seen) in list(self._by_cid.items()):
                if seen < limit:
                    del self._by_cid[cid]
                    self._by_addr.pop(addr, None)
                    self.stats.clients_expired += 1
                    with contextlib.suppress(asyncio.QueueFull):
                        self._queue.put_nowait(encode_frame(CLOSE, cid))


# -- server end (beside rtpengine) ---------------------------------------------------------


class _Session:
    """One TCP connection on the server: a UDP socket to the target per client id."""

    def __init__(self, target: Address, config: TunnelConfig, stats: TunnelStats) -> None:
        self._target, self._config, self._stats = target, config, stats
        self._sockets: dict[int, tuple[asyncio.DatagramTransport, list[float]]] = {}
        self._opening: dict[int, list[bytes]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.pump: _Pump | None = None

    def on_frame(self, frame: Frame) -> None:
        if frame.kind == CLOSE:
            self._drop(frame.cid)
        elif frame.kind == DATA:
            self._stats.datagrams_in += 1
            self._stats.bytes_in += len(frame.payload)
            self._to_target(frame.cid, frame.payload)

    def _to_target(self, cid: int, payload: bytes) -> None:
        entry = self._sockets.get(cid)
        if entry is not None:
            entry[1][0] = asyncio.get_running_loop().time()
            entry[0].sendto(payload)
        elif cid in self._opening:
            self._opening[cid].append(payload)
        elif len(self._sockets) + len(self._opening) >= self._config.max_clients:
            self._stats.dropped += 1
        else:
            self._opening[cid] = [payload]
            task = asyncio.get_running_loop().create_task(self._open(cid))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _open(self, cid: int) -> None:
        loop = asyncio.get_running_loop()
        try:
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(lambda data, _addr: self._reply(cid, data)),
                remote_addr=self._target,
            )
            _enlarge_buffers(udp, self._config.udp_buffer)
        except OSError as exc:
            log.warning("tunnel: cannot open UDP to %s: %s", self._target, exc)
            self._stats.dropped += len(self._opening.pop(cid, []))
            return
        waiting = self._opening.pop(cid, [])
        if self._closed:
            udp.close()
            return
        self._sockets[cid] = (udp, [loop.time()])
        for payload in waiting:
            udp.sendto(payload)

    def _reply(self, cid: int, data: bytes) -> None:
        if self.pump is not None and self.pump.send(encode_frame(DATA, cid, data)):
            self._stats.datagrams_out += 1
            self._stats.bytes_out += len(data)

    def _drop(self, cid: int) -> None:
        entry = self._sockets.pop(cid, None)
        if entry is not None:
            entry[0].close()

    @property
    def clients(self) -> int:
        return len(self._sockets)

    def expire(self, limit: float) -> None:
        for cid, (_, seen) in list(self._sockets.items()):
            if seen[0] < limit:
                self._drop(cid)
                self._stats.clients_expired += 1

    def close(self) -> None:
        self._closed = True
        for cid in list(self._sockets):
            self._drop(cid)


class TunnelServer:
    """TCP listener beside rtpengine; relays each client id's datagrams to ``target``."""

    def __init__(self, tcp: Address, target: Address, config: TunnelConfig | None = None) -> None:
        self._tcp_address, self._target = tcp, target
        self.config = config or TunnelConfig()
        self.stats = TunnelStats()
        self._server: asyncio.Server | None = None
        self._sessions: set[_Session] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._handlers: set[asyncio.Task[Any]] = set()

    @property
    def clients(self) -> int:
        """UDP sockets towards the target currently open, over all connections."""
        return sum(session.clients for session in self._sessions)

    @property
    def tcp_address(self) -> Address:
        """The bound TCP address (useful with port 0)."""
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    async def start(self) -> None:
        """Start listening."""
        self._server = await asyncio.start_server(
            self._accept, *self._tcp_address, ssl=self.config.tls
        )
        self._spawn(self._expire())

    async def close(self) -> None:
        """Stop listening and close every connection and UDP socket."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for session in list(self._sessions):
            if session.pump is not None:  # the handler then returns by itself
                session.pump.writer.transport.abort()
        await asyncio.gather(*self._tasks, *self._handlers, return_exceptions=True)

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:  # awaited by close(), never cancelled (asyncio logs that)
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        session = _Session(self._target, self.config, self.stats)
        session.pump = _Pump(reader, writer, self.config, self.stats, session.on_frame)
        self._sessions.add(session)
        self.stats.connects += 1
        log.info("tunnel: connection from %s", writer.get_extra_info("peername"))
        try:
            await session.pump.run()
        finally:
            self._sessions.discard(session)
            session.close()
            self.stats.disconnects += 1

    async def _expire(self) -> None:
        while True:
            await asyncio.sleep(min(self.config.idle_timeout / 4, 30.0))
            limit = asyncio.get_running_loop().time() - self.config.idle_timeout
            for session in list(self._sessions):
                session.expire(limit)
