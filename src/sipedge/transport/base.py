"""Types shared by every transport: flows, limits, errors and the connection interface.

A :class:`Flow` names the path a message came on. A response goes back over the
connection its request came on (RFC 3261 §18.2.2), and later requests reach a client
behind NAT only over its own live connection (RFC 5626 §5.3), so a stream flow carries the
id of its connection and never matches a newer connection to the same address.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Protocol

Address = tuple[str, int]
"""An (ip, port) pair; IPv6 addresses without brackets."""

DATAGRAM_TRANSPORTS = frozenset({"udp"})
STREAM_TRANSPORTS = frozenset({"tcp", "tls", "ws", "wss"})


@dataclass(frozen=True, slots=True)
class Flow:
    """Where a message came from or goes to.

    ``transport`` is ``"udp"``, ``"tcp"``, ``"tls"``, ``"ws"`` or ``"wss"``;
    ``local`` is the (ip, port) of our listener (for an outbound connection: the listener of
    that transport and family, else the socket's own address); ``remote`` the peer's
    (ip, port); ``conn_id`` identifies the connection of a stream flow and is None for UDP.
    """

    transport: str
    local: Address
    remote: Address
    conn_id: int | None = None

    @property
    def is_stream(self) -> bool:
        """True for a connection-oriented flow (it dies with its connection)."""
        return self.conn_id is not None


@dataclass(frozen=True, slots=True)
class TransportConfig:
    """Limits and timeouts of the transport layer; times in seconds, sizes in bytes.

    ``message_timeout`` closes a stream connection whose current message has not been
    completed that long after its first byte arrived (slowloris), and an accepted one that
    has not completed a first message that long after it was opened (half-open);
    ``idle_timeout`` closes one on which nothing was received or sent for that long (a
    CRLF keepalive counts). ``max_connections_per_ip`` limits accepted connections only.
    """

    max_message_size: int = 65535
    max_header_size: int = 16384
    max_connections: int = 10000
    max_connections_per_ip: int = 100
    idle_timeout: float = 600.0
    message_timeout: float = 10.0
    connect_timeout: float = 5.0
    close_timeout: float = 2.0
    max_write_buffer: int = 1 << 20
    udp_recv_buffer: int = 4 << 20
    tcp_backlog: int = 1024

    def __post_init__(self) -> None:
        for field in fields(self):
            if getattr(self, field.name) <= 0:
                raise ValueError(f"TransportConfig.{field.name} must be positive")


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """A snapshot of one stream connection; times are event-loop times (``loop.time()``)."""

    flow: Flow
    inbound: bool
    sockname: Address
    created: float
    last_activity: float


class TransportError(Exception):
    """A send or listen request the transport layer cannot carry out."""


class ConnectError(TransportError):
    """An outbound connection could not be opened (refused, unreachable, timed out)."""


class NoListenerError(TransportError):
    """No listener of the requested transport, family or local address exists."""


class Connection(Protocol):
    """A live stream connection as the manager sees it (TCP, TLS, WS or WSS).

    ``profile`` is the TLS client profile an outbound TLS connection was opened with
    (None for inbound and non-TLS connections); it is part of the reuse key.
    """

    @property
    def flow(self) -> Flow: ...

    @property
    def inbound(self) -> bool: ...

    @property
    def profile(self) -> str | None: ...

    @property
    def is_closing(self) -> bool: ...

    def write(self, data: bytes) -> bool: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...

    def info(self) -> ConnectionInfo: ...


class ConnectionOwner(Protocol):
    """What a connection reports to (implemented by the transport manager)."""

    def new_conn_id(self) -> int: ...

    def connection_opened(self, conn: Connection) -> bool: ...

    def connection_closed(self, conn: Connection) -> None: ...

    def message_received(self, data: bytes, flow: Flow) -> None: ...


class Listener(Protocol):
    """A bound listening socket of one transport."""

    @property
    def transport(self) -> str: ...

    @property
    def local(self) -> Address: ...

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


@functools.lru_cache(maxsize=8192)
def normalize_ip(ip: str) -> str:
    """The canonical text of an IP literal (``0:0::1`` -> ``::1``); ValueError otherwise.

    Cached: the same few peer addresses come back on every message.
    """
    return str(ipaddress.ip_address(ip))


@functools.lru_cache(maxsize=8192)
def ip_family(ip: str) -> socket.AddressFamily:
    """AF_INET or AF_INET6 for an IP literal; ValueError for anything else (cached)."""
    version = ipaddress.ip_address(ip).version
    return socket.AF_INET6 if version == 6 else socket.AF_INET


def is_wildcard(ip: str) -> bool:
    """True for 0.0.0.0 and ::."""
    return ipaddress.ip_address(ip).is_unspecified


def sock_address(raw: Any) -> Address:
    """(ip, port) from a socket-level address (IPv6 ones have four elements)."""
    return (str(raw[0]), int(raw[1]))


def bound_socket(
    host: str, port: int, kind: socket.SocketKind, rcvbuf: int | None = None
) -> socket.socket:
    """A non-blocking socket bound to an IP literal (IPv6 sockets are IPv6-only)."""
    sock = socket.socket(ip_family(host), kind)
    try:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf is not None:
            # RFC 3261 §18.1.1: datagrams up to 65,535 bytes must be accepted; leave room
            # for bursts of them (the kernel caps this at net.core.rmem_max).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def rearm(
    loop: asyncio.AbstractEventLoop,
    timer: asyncio.TimerHandle | None,
    when: float,
    callback: Callable[[], None],
) -> asyncio.TimerHandle:
    """A timer that fires no later than ``when``: the current one when it is due as early
    (a lazily re-armed timer is never pushed back), else a new one replacing it."""
    if timer is not None:
        if timer.when() <= when:
            return timer
        timer.cancel()
    return loop.call_at(when, callback)
