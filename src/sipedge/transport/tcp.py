"""TCP listener and stream connections (TLS will reuse :class:`StreamConnection`).

A :class:`StreamConnection` frames the byte stream with the pure
:class:`~sipedge.sip.framing.StreamFramer` (Content-Length, RFC 3261 §18.3), answers CRLF
keepalive pings (RFC 5626 §4.4.1) and enforces two timeouts with a single timer handle that
is re-armed lazily: the idle timeout and the slow-message (slowloris) timeout.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any, cast

from ..sip.errors import ParseError
from ..sip.framing import MessageFramed, PingReceived, StreamFramer
from .base import (
    Address,
    ConnectError,
    ConnectionInfo,
    ConnectionOwner,
    Flow,
    TransportConfig,
    bound_socket,
    sock_address,
)

log = logging.getLogger(__name__)

_PONG = b"\r\n"  # RFC 5626 §4.4.1: a CRLFCRLF ping is answered with one CRLF

Accept = Callable[[asyncio.Transport], "StreamConnection | None"]


class StreamAdapter(asyncio.Protocol):
    """Thin asyncio adapter: builds the connection, forwards bytes, never raises."""

    def __init__(self, accept: Accept) -> None:
        self._accept = accept
        self.connection: StreamConnection | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = cast(asyncio.Transport, transport)
        try:
            self.connection = self._accept(stream)
        except Exception:
            log.exception("error accepting a stream connection")
        if self.connection is None:
            stream.abort()

    def data_received(self, data: bytes) -> None:
        if self.connection is None:
            return
        try:
            self.connection.data_received(data)
        except Exception:
            log.exception("%s: error handling received data", self.connection.flow)
            self.connection.abort()

    def eof_received(self) -> bool:
        return False  # the peer finished sending: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.connection is None:
            return
        try:
            self.connection.connection_lost(exc)
        except Exception:
            log.exception("%s: error closing", self.connection.flow)


class StreamConnection:
    """One stream connection: framing, keepalive answers, timeouts, writes."""

    def __init__(
        self,
        transport: asyncio.Transport,
        flow: Flow,
        *,
        inbound: bool,
        owner: ConnectionOwner,
        config: TransportConfig,
    ) -> None:
        self._transport = transport
        self._flow = flow
        self._inbound = inbound
        self._owner = owner
        self._config = config
        self._loop = asyncio.get_running_loop()
        self._framer = StreamFramer(config.max_message_size, config.max_header_size)
        self._sockname = sock_address(transport.get_extra_info("sockname"))
        self._created = self._last_activity = self._loop.time()
        # An accepted connection must deliver a first message within message_timeout
        # (a half-open connection that never speaks is closed like a slow message).
        self._awaiting_first = inbound
        self._message_started: float | None = self._created if inbound else None
        self._timer: asyncio.TimerHandle | None = None
        self._lost = False

    @property
    def flow(self) -> Flow:
        """The flow of this connection (carries its ``conn_id``)."""
        return self._flow

    @property
    def inbound(self) -> bool:
        """True if the peer opened the connection."""
        return self._inbound

    @property
    def is_closing(self) -> bool:
        """True once the connection is closing or closed; it accepts no more writes."""
        return self._lost or self._transport.is_closing()

    def info(self) -> ConnectionInfo:
        """A snapshot for listings."""
        return ConnectionInfo(
            self._flow, self._inbound, self._sockname, self._created, self._last_activity
        )

    def start(self) -> None:
        """Arm the timeouts; called once the owner has admitted the connection."""
        self._arm(self._deadline())

    def write(self, data: bytes) -> bool:
        """Queue bytes; False if closing, or if the peer stopped reading (then it aborts)."""
        if self.is_closing:
            return False
        self._transport.write(data)
        self._last_activity = self._loop.time()
        if self._transport.get_write_buffer_size() > self._config.max_write_buffer:
            log.warning("%s: peer is not reading, aborting", self._flow)
            self.abort()
            return False
        return True

    def close(self) -> None:
        """Close after flushing queued writes."""
        self._transport.close()

    def abort(self) -> None:
        """Close at once, discarding queued writes."""
        self._transport.abort()

    def data_received(self, data: bytes) -> None:
        """Frame received bytes and hand complete messages to the owner."""
        self._last_activity = now = self._loop.time()
        try:
            events = self._framer.feed(data)
        except ParseError as exc:
            log.info("%s: unframeable stream (%s), closing", self._flow, exc.reason)
            self.abort()
            return
        completed = False
        for event in events:
            if isinstance(event, MessageFramed):
                completed = True
                if event.content_length_missing:
                    log.debug("%s: message without Content-Length (RFC 3261 §18.3)", self._flow)
                self._owner.message_received(event.data, self._flow)
            elif isinstance(event, PingReceived):
                self.write(_PONG)
        if self._framer.error is not None:
            log.info("%s: unframeable stream (%s), closing", self._flow, self._framer.error)
            self.abort()
            return
        self._awaiting_first = self._awaiting_first and not completed
        if self._framer.in_message:
            if completed or self._message_started is None:
                self._message_started = now
                self._arm(self._deadline())
        elif not self._awaiting_first:
            self._message_started = None

    def connection_lost(self, exc: Exception | None) -> None:
        """Called by the adapter once; unregisters from the owner."""
        if self._lost:
            return
        self._lost = True
        if self._timer is not None:
            self._timer.cancel()
        if exc is not None:
            log.debug("%s: connection lost: %s", self._flow, exc)
        self._owner.connection_closed(self)

    def _deadline(self) -> float:
        deadline = self._last_activity + self._config.idle_timeout
        if self._message_started is not None:
            deadline = min(deadline, self._message_started + self._config.message_timeout)
        return deadline

    def _arm(self, when: float) -> None:
        """Make the timer fire no later than ``when`` (it is never pushed back early)."""
        if self._lost:
            return
        if self._timer is not None:
            if self._timer.when() <= when:
                return
            self._timer.cancel()
        self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        try:
            deadline = self._deadline()
            if self._loop.time() < deadline:
                self._arm(deadline)  # activity since the timer was set
                return
            if (
                self._message_started is not None
                and self._message_started + self._config.message_timeout <= self._loop.time()
            ):
                log.info("%s: message not completed in time, closing", self._flow)
                self.abort()
            elif self._transport.get_write_buffer_size():
                log.debug("%s: idle with unsent data, aborting", self._flow)
                self.abort()
            else:
                log.debug("%s: idle, closing", self._flow)
                self.close()
        except Exception:
            log.exception("%s: timer error", self._flow)
            self.abort()


class TCPListener:
    """A listening TCP socket."""

    def __init__(self, server: asyncio.Server, local: Address, name: str) -> None:
        self._server = server
        self._local = local
        self._name = name

    @property
    def transport(self) -> str:
        """``"tcp"`` (``"tls"`` for a TLS listener)."""
        return self._name

    @property
    def local(self) -> Address:
        """The bound (ip, port)."""
        return self._local

    def close(self) -> None:
        """Stop accepting connections (open ones are the manager's to close)."""
        self._server.close()

    async def wait_closed(self) -> None:
        """Wait until the listening socket is closed."""
        await self._server.wait_closed()


def _accept_factory(
    owner: ConnectionOwner,
    config: TransportConfig,
    name: str,
    local: Address | None,
    remote: Address | None,
    inbound: bool,
) -> Accept:
    """A callback making and registering a connection once its transport exists."""

    def accept(transport: asyncio.Transport) -> StreamConnection | None:
        peer: Any = transport.get_extra_info("peername")
        if peer is None:
            return None
        here = local or sock_address(transport.get_extra_info("sockname"))
        flow = Flow(name, here, remote or sock_address(peer), owner.new_conn_id())
        conn = StreamConnection(transport, flow, inbound=inbound, owner=owner, config=config)
        if not owner.connection_opened(conn):
            return None
        conn.start()
        return conn

    return accept


async def listen_tcp(
    host: str, port: int, config: TransportConfig, owner: ConnectionOwner, name: str = "tcp"
) -> TCPListener:
    """Bind a TCP listener on an IP literal (port 0: ephemeral) and start accepting."""
    sock = bound_socket(host, port, socket.SOCK_STREAM)
    local = sock_address(sock.getsockname())
    accept = _accept_factory(owner, config, name, local, None, inbound=True)
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(
            lambda: StreamAdapter(accept), sock=sock, backlog=config.tcp_backlog
        )
    except BaseException:
        sock.close()
        raise
    return TCPListener(server, local, name)


async def connect_tcp(
    remote: Address,
    config: TransportConfig,
    owner: ConnectionOwner,
    *,
    flow_local: Address | None,
    bind_ip: str | None,
) -> StreamConnection:
    """Open an outbound TCP connection within ``config.connect_timeout``.

    Raises :class:`ConnectError` when the connection fails, times out or is refused by
    the owner's limits.
    """
    accept = _accept_factory(owner, config, "tcp", flow_local, remote, inbound=False)
    loop = asyncio.get_running_loop()
    local_addr = (bind_ip, 0) if bind_ip is not None else None
    try:
        async with asyncio.timeout(config.connect_timeout):
            _, adapter = await loop.create_connection(
                lambda: StreamAdapter(accept), remote[0], remote[1], local_addr=local_addr
            )
    except (OSError, TimeoutError) as exc:
        raise ConnectError(f"cannot connect to {remote[0]}:{remote[1]}: {exc!r}") from exc
    conn = adapter.connection
    if conn is None or conn.is_closing:
        raise ConnectError(f"connection to {remote[0]}:{remote[1]} refused by limits")
    return conn
