"""UDP listener: one socket per (ip, port), used both to receive and to send.

Every datagram is one message (RFC 3261 §18.3); keepalive datagrams (CRLFs, the 4-byte
zero packets some NAT helpers send, STUN binding requests of RFC 5626 §4.4.2) are dropped
here. Requests leave from the listener socket so the peer sees our advertised port.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

from .base import Address, Flow, TransportConfig, bound_socket, sock_address

log = logging.getLogger(__name__)

_STUN_MAGIC_COOKIE = b"\x21\x12\xa4\x42"  # RFC 5389 §6
_KEEPALIVE_BYTES = b"\r\n\t \x00"


def is_keepalive(data: bytes) -> bool:
    """True for a datagram that carries no SIP message: blank, zeros or STUN."""
    if not data.strip(_KEEPALIVE_BYTES):
        return True
    return len(data) >= 20 and data[0] < 4 and data[4:8] == _STUN_MAGIC_COOKIE


class _DatagramAdapter(asyncio.DatagramProtocol):
    """Thin asyncio adapter: forwards to the listener; exceptions never reach the loop."""

    def __init__(self, listener: UDPListener) -> None:
        self._listener = listener

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            self._listener.datagram_received(data, sock_address(addr))
        except Exception:
            log.exception("error handling a UDP datagram from %r", addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable, message too big) of an earlier sendto.
        log.debug("UDP error on %s: %s", self._listener.local, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._listener.connection_lost()


class UDPListener:
    """A bound UDP socket; delivers datagrams with their flow and sends from the socket."""

    def __init__(
        self, local: Address, deliver: Callable[[bytes, Flow], None], config: TransportConfig
    ) -> None:
        self._local = local
        self._deliver = deliver
        self._max_size = config.max_message_size
        self._transport: asyncio.DatagramTransport | None = None
        self._closed = asyncio.get_running_loop().create_future()

    @property
    def transport(self) -> str:
        """Always ``"udp"``."""
        return "udp"

    @property
    def local(self) -> Address:
        """The bound (ip, port)."""
        return self._local

    def datagram_received(self, data: bytes, remote: Address) -> None:
        """Deliver one datagram as a message unless it is a keepalive or too large."""
        if len(data) > self._max_size:
            log.warning("dropping %d-byte UDP datagram from %s", len(data), remote)
            return
        if is_keepalive(data):
            return
        self._deliver(data, Flow("udp", self._local, remote))

    def sendto(self, data: bytes, remote: Address) -> bool:
        """Send one datagram; False if the listener is closed."""
        if self._transport is None or self._transport.is_closing():
            return False
        self._transport.sendto(data, remote)
        return True

    def close(self) -> None:
        """Close the socket (idempotent)."""
        if self._transport is not None:
            self._transport.close()

    async def wait_closed(self) -> None:
        """Wait until the socket is closed."""
        if self._transport is not None:
            await self._closed

    def connection_lost(self) -> None:
        """Called by the adapter when the socket is closed."""
        if not self._closed.done():
            self._closed.set_result(None)

    async def start(self, sock: socket.socket) -> None:
        """Attach the event loop to an already bound socket."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _DatagramAdapter(self), sock=sock
        )
        self._transport = transport


async def listen_udp(
    host: str, port: int, config: TransportConfig, deliver: Callable[[bytes, Flow], None]
) -> UDPListener:
    """Bind a UDP listener on an IP literal (port 0: ephemeral) and start receiving."""
    sock = bound_socket(host, port, socket.SOCK_DGRAM, config.udp_recv_buffer)
    try:
        listener = UDPListener(sock_address(sock.getsockname()), deliver, config)
        await listener.start(sock)
    except BaseException:
        sock.close()
        raise
    return listener
