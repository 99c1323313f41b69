"""TCP and TLS listeners and stream connections (TLS reuses :class:`StreamConnection`).

A :class:`StreamConnection` frames the byte stream with the pure
:class:`~sipedge.sip.framing.StreamFramer` (Content-Length, RFC 3261 §18.3), answers CRLF
keepalive pings (RFC 5626 §4.4.1) and enforces two timeouts with a single timer handle that
is re-armed lazily: the idle timeout and the slow-message (slowloris) timeout.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any, Protocol, cast

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
    rearm,
    sock_address,
)

log = logging.getLogger(__name__)

_PONG = b"\r\n"  # RFC 5626 §4.4.1: a CRLFCRLF ping is answered with one CRLF


class StreamHandler(Protocol):
    """What :class:`StreamAdapter` drives: a SIP stream connection (TCP/TLS or WebSocket)."""

    @property
    def flow(self) -> Flow: ...

    def data_received(self, data: bytes) -> None: ...

    def connection_lost(self, exc: Exception | None) -> None: ...

    def abort(self) -> None: ...


Accept = Callable[[asyncio.Transport], StreamHandler | None]


class StreamAdapter(asyncio.Protocol):
    """Thin asyncio adapter: builds the connection, forwards bytes, never raises."""

    def __init__(self, accept: Accept) -> None:
        self._accept = accept
        self.connection: StreamHandler | None = None

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
        profile: str | None = None,
    ) -> None:
        self._transport = transport
        self._flow = flow
        self._inbound = inbound
        self._profile = profile
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
    def profile(self) -> str | None:
        """The TLS client profile an outbound TLS connection was opened with, else None."""
        return self._profile

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
        if not self._lost:
            self._timer = rearm(self._loop, self._timer, when, self._on_timer)

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
    """A listening stream socket (TCP, TLS, WS or WSS)."""

    def __init__(self, server: asyncio.Server, local: Address, name: str) -> None:
        self._server = server
        self._local = local
        self._name = name

    @property
    def transport(self) -> str:
        """``"tcp"``, ``"tls"``, ``"ws"`` or ``"wss"``."""
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
    profile: str | None = None,
) -> Accept:
    """A callback making and registering a connection once its transport exists."""

    def accept(transport: asyncio.Transport) -> StreamConnection | None:
        peer: Any = transport.get_extra_info("peername")
        if peer is None:
            return None
        here = local or sock_address(transport.get_extra_info("sockname"))
        flow = Flow(name, here, remote or sock_address(peer), owner.new_conn_id())
        conn = StreamConnection(
            transport, flow, inbound=inbound, owner=owner, config=config, profile=profile
        )
        if not owner.connection_opened(conn):
            return None
        conn.start()
        return conn

    return accept


async def listen_stream(
    host: str,
    port: int,
    config: TransportConfig,
    accept_for: Callable[[Address], Accept],
    name: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    handshake_timeout: float | None = None,
) -> TCPListener:
    """Bind a stream listener (port 0: ephemeral); ``accept_for(local)`` makes connections.

    With ``ssl_context`` the TLS handshake must finish within ``handshake_timeout``
    before a connection is made; it counts against no limit until then.
    """
    sock = bound_socket(host, port, socket.SOCK_STREAM)
    local = sock_address(sock.getsockname())
    accept = accept_for(local)
    extra: dict[str, Any] = {}
    if ssl_context is not None:
        extra = {
            "ssl": ssl_context,
            "ssl_handshake_timeout": handshake_timeout or config.message_timeout,
            "ssl_shutdown_timeout": config.close_timeout,
        }
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(
            lambda: StreamAdapter(accept), sock=sock, backlog=config.tcp_backlog, **extra
        )
    except BaseException:
        sock.close()
        raise
    return TCPListener(server, local, name)


async def listen_tcp(
    host: str,
    port: int,
    config: TransportConfig,
    owner: ConnectionOwner,
    name: str = "tcp",
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> TCPListener:
    """Bind a TCP listener, or a TLS one with ``ssl_context`` (RFC 3261 §26.2), and accept.

    A TLS handshake must complete within ``config.message_timeout``.
    """

    def accept_for(local: Address) -> Accept:
        return _accept_factory(owner, config, name, local, None, inbound=True)

    return await listen_stream(host, port, config, accept_for, name, ssl_context=ssl_context)


async def connect_tcp(
    remote: Address,
    config: TransportConfig,
    owner: ConnectionOwner,
    *,
    flow_local: Address | None,
    bind_ip: str | None,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    profile: str | None = None,
) -> StreamConnection:
    """Open an outbound TCP connection, or a TLS one with ``ssl_context``.

    Connecting (and the TLS handshake, which verifies the peer against
    ``server_hostname`` when the context says so) must finish within
    ``config.connect_timeout``. Raises :class:`ConnectError` when the connection fails,
    times out, the peer certificate is not accepted, or the owner's limits refuse it.
    """
    name = "tcp" if ssl_context is None else "tls"
    accept = _accept_factory(owner, config, name, flow_local, remote, False, profile)
    loop = asyncio.get_running_loop()
    local_addr = (bind_ip, 0) if bind_ip is not None else None
    extra: dict[str, Any] = {}
    if ssl_context is not None:
        extra = {
            "ssl": ssl_context,
            "server_hostname": server_hostname or remote[0],
            "ssl_handshake_timeout": config.connect_timeout,
            "ssl_shutdown_timeout": config.close_timeout,
        }
    try:
        async with asyncio.timeout(config.connect_timeout):
            _, adapter = await loop.create_connection(
                lambda: StreamAdapter(accept), remote[0], remote[1], local_addr=local_addr, **extra
            )
    except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
        raise ConnectError(f"cannot connect to {remote[0]}:{remote[1]}: {exc!r}") from exc
    conn = adapter.connection
    if not isinstance(conn, StreamConnection) or conn.is_closing:
        raise ConnectError(f"connection to {remote[0]}:{remote[1]} refused by limits")
    return conn
