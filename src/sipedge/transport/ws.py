"""SIP over WebSocket (RFC 7118) on the ``websockets`` sans-I/O server protocol (RFC 6455).

A :class:`WsConnection` carries one SIP message per WebSocket message, text or binary
(RFC 7118 §5); no Content-Length framing is done here. The upgrade is accepted only when
the client offers the ``sip`` subprotocol (RFC 7118 §4.1); without it the handshake is
refused with **HTTP 400**. An Origin outside :attr:`WsConfig.origins` gets **HTTP 403**
(RFC 6455 §4.2.2, §10.2).

Timers, one handle re-armed lazily: the upgrade must complete within
``handshake_timeout`` after the TCP (or TLS) connection is made; a partly received frame
or fragmented message must complete within ``TransportConfig.message_timeout``; a ping is
sent every ``ping_interval`` and the connection fails with 1011 if its pong does not come
within ``ping_timeout``; a connection from which nothing (no frame, not even a pong) was
received for ``TransportConfig.idle_timeout`` is closed; a close we started must finish
within ``TransportConfig.close_timeout`` or the TCP connection is aborted.

WebSocket clients are only ever accepted: a proxy reaches a WebSocket client only over the
connection the client opened (RFC 7118 §5).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import OPEN, State
from websockets.server import ServerProtocol
from websockets.typing import Origin, Subprotocol

from .base import (
    Address,
    ConnectionInfo,
    ConnectionOwner,
    Flow,
    TransportConfig,
    rearm,
    sock_address,
)
from .tcp import Accept, TCPListener, listen_stream

log = logging.getLogger(__name__)

SIP_SUBPROTOCOL = Subprotocol("sip")  # RFC 7118 §4.1
_KEEPALIVE_PING = b"\r\n\r\n"  # CRLF keepalive some clients send as a WS message
_KEEPALIVE_PONG = b"\r\n"


@dataclass(frozen=True, slots=True)
class WsConfig:
    """WebSocket options of a WS or WSS listener; times in seconds.

    ``origins``: allowed ``Origin`` values (``"https://app.example.com"``); empty allows
    any. ``allow_missing_origin``: with a non-empty list, whether a client sending no
    Origin (not a browser) is accepted. ``ping_interval`` None sends no pings.
    ``max_message_size`` None uses ``TransportConfig.max_message_size``.
    """

    origins: tuple[str, ...] = ()
    allow_missing_origin: bool = True
    handshake_timeout: float = 5.0
    ping_interval: float | None = 30.0
    ping_timeout: float = 10.0
    max_message_size: int | None = None

    def __post_init__(self) -> None:
        for name in ("handshake_timeout", "ping_interval", "ping_timeout", "max_message_size"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"WsConfig.{name} must be positive")
        if isinstance(self.origins, str):
            raise ValueError("WsConfig.origins must be a sequence of origins, not a string")


class _LibraryLog(logging.LoggerAdapter[logging.Logger]):
    """The library's per-connection INFO lines ("connection open") logged at DEBUG."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        super().log(logging.DEBUG if level == logging.INFO else level, msg, *args, **kwargs)


def _origins(ws: WsConfig) -> Sequence[Origin | None] | None:
    if not ws.origins:
        return None
    allowed: list[Origin | None] = [Origin(origin) for origin in ws.origins]
    if ws.allow_missing_origin:
        allowed.append(None)
    return allowed


class WsConnection:
    """One accepted WebSocket connection carrying SIP (RFC 7118)."""

    def __init__(
        self,
        transport: asyncio.Transport,
        flow: Flow,
        *,
        owner: ConnectionOwner,
        config: TransportConfig,
        ws: WsConfig,
        library_log: logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        self._transport = transport
        self._flow = flow
        self._owner = owner
        self._config = config
        self._ws = ws
        self._loop = asyncio.get_running_loop()
        self._proto = ServerProtocol(
            origins=_origins(ws),
            subprotocols=[SIP_SUBPROTOCOL],
            max_size=ws.max_message_size or config.max_message_size,
            logger=library_log or _LibraryLog(log.getChild("protocol")),
        )
        self._sockname = sock_address(transport.get_extra_info("sockname"))
        self._created = self._last_activity = self._last_received = self._loop.time()
        self._parts: list[bytes] = []  # fragments of the message being received
        self._parts_text = False
        self._message_started: float | None = None
        self._next_ping: float | None = None
        self._ping_payload: bytes | None = None  # the unanswered ping, if any
        self._ping_deadline = 0.0
        self._pings = 0
        self._closing_since: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._lost = False

    @property
    def flow(self) -> Flow:
        """The flow of this connection (``"ws"`` or ``"wss"``, with its ``conn_id``)."""
        return self._flow

    @property
    def inbound(self) -> bool:
        """Always True: WebSocket clients connect to us."""
        return True

    @property
    def profile(self) -> str | None:
        """Always None (no outbound TLS profile)."""
        return None

    @property
    def is_open(self) -> bool:
        """True once the upgrade succeeded and until a close starts."""
        return not self._lost and self._proto.state is OPEN and not self._transport.is_closing()

    @property
    def is_closing(self) -> bool:
        """True when the connection accepts no writes (still upgrading, closing or closed)."""
        return not self.is_open

    def info(self) -> ConnectionInfo:
        """A snapshot for listings."""
        return ConnectionInfo(self._flow, True, self._sockname, self._created, self._last_activity)

    def start(self) -> None:
        """Arm the handshake timer; called once the owner has admitted the connection."""
        self._arm(self._created + self._ws.handshake_timeout)

    def write(self, data: bytes) -> bool:
        """Send ``data`` as one WebSocket message: text if valid UTF-8, else binary.

        False if the connection is not open, or if the peer stopped reading (then it aborts).
        """
        if not self.is_open:
            return False
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            self._proto.send_binary(data)
        else:
            self._proto.send_text(data)
        self._last_activity = self._loop.time()
        self._flush()
        if self._transport.get_write_buffer_size() > self._config.max_write_buffer:
            log.warning("%s: peer is not reading, aborting", self._flow)
            self.abort()
            return False
        return True

    def close(self) -> None:
        """Start the closing handshake (1000), or close at once if not upgraded yet."""
        if self._lost:
            return
        if self._proto.state is OPEN:
            self._proto.send_close(CloseCode.NORMAL_CLOSURE)
            self._flush()
        else:
            self._transport.close()
        self._closing()

    def abort(self) -> None:
        """Close the TCP connection at once, discarding queued writes."""
        self._transport.abort()

    def data_received(self, data: bytes) -> None:
        """Feed received bytes to the protocol and act on its events."""
        self._last_activity = self._last_received = now = self._loop.time()
        self._proto.receive_data(data)
        for event in self._proto.events_received():
            if isinstance(event, Frame):
                self._on_frame(event)
            elif isinstance(event, Request):
                self._on_request(event)
        self._flush()
        if self._proto.state is not OPEN:
            return
        if self._parts or self._proto.reader.buffer:  # a frame or message is incomplete
            if self._message_started is None:
                self._message_started = now
                self._arm(now + self._config.message_timeout)
        else:
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

    # -- protocol events -----------------------------------------------------------------

    def _on_request(self, request: Request) -> None:
        """The HTTP upgrade request (RFC 6455 §4.2.1; subprotocol per RFC 7118 §4.1)."""
        response = self._proto.accept(request)
        self._proto.send_response(response)
        if response.status_code == 101:
            log.debug("%s: WebSocket open (%s)", self._flow, request.path)
            if self._ws.ping_interval is not None:
                self._next_ping = self._loop.time() + self._ws.ping_interval
            self._arm(self._deadline())
        else:
            log.info(
                "%s: WebSocket upgrade refused with %d: %s",
                self._flow,
                response.status_code,
                self._proto.handshake_exc,
            )

    def _on_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                self._deliver(bytes(frame.data), opcode is Opcode.TEXT)
            else:
                self._parts = [bytes(frame.data)]
                self._parts_text = opcode is Opcode.TEXT
        elif opcode is Opcode.CONT:
            self._parts.append(bytes(frame.data))
            if frame.fin:
                data, self._parts = b"".join(self._parts), []
                self._deliver(data, self._parts_text)
        elif opcode is Opcode.PONG and bytes(frame.data) == self._ping_payload:
            self._ping_payload = None  # our ping was answered
            self._arm(self._deadline())  # the next ping may be due before the pong deadline
        # PING is answered and CLOSE echoed by the protocol itself (RFC 6455 §5.5).

    def _deliver(self, data: bytes, text: bool) -> None:
        """One WebSocket message is one SIP message (RFC 7118 §5)."""
        if text:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:  # RFC 6455 §8.1: fail with 1007
                self._proto.fail(CloseCode.INVALID_DATA, "invalid UTF-8 in a text message")
                return
        if not data.strip(b"\r\n"):
            if data == _KEEPALIVE_PING and self.is_open:  # RFC 5626 §4.4.1 style keepalive
                self._proto.send_text(_KEEPALIVE_PONG)
            return
        self._owner.message_received(data, self._flow)

    def _flush(self) -> None:
        """Write what the protocol produced; its end-of-stream marker closes the socket."""
        for chunk in self._proto.data_to_send():
            if chunk:
                self._transport.write(chunk)
            else:  # RFC 6455 §7.1.1: the server closes the TCP connection first
                self._transport.close()
                self._closing()
        if self._proto.state is not OPEN and self._proto.state is not State.CONNECTING:
            self._closing()

    def _closing(self) -> None:
        if self._closing_since is None and not self._lost:
            self._closing_since = self._loop.time()
            self._arm(self._closing_since + self._config.close_timeout)

    # -- timers --------------------------------------------------------------------------

    def _deadline(self) -> float:
        if self._closing_since is not None:
            return self._closing_since + self._config.close_timeout
        if self._proto.state is State.CONNECTING:
            return self._created + self._ws.handshake_timeout
        deadline = self._last_received + self._config.idle_timeout
        if self._message_started is not None:
            deadline = min(deadline, self._message_started + self._config.message_timeout)
        if self._ping_payload is not None:
            deadline = min(deadline, self._ping_deadline)
        elif self._next_ping is not None:
            deadline = min(deadline, self._next_ping)
        return deadline

    def _arm(self, when: float) -> None:
        """Make the timer fire no later than ``when`` (it is never pushed back early)."""
        if not self._lost:
            self._timer = rearm(self._loop, self._timer, when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        try:
            now = self._loop.time()
            if now >= self._deadline():
                self._expire(now)
            self._arm(self._deadline())
        except Exception:
            log.exception("%s: timer error", self._flow)
            self.abort()

    def _expire(self, now: float) -> None:
        """Act on whichever deadline has passed."""
        if self._closing_since is not None:
            log.debug("%s: close not completed in time, aborting", self._flow)
            self.abort()
        elif self._proto.state is State.CONNECTING:
            log.info("%s: WebSocket upgrade not completed in time, closing", self._flow)
            self.abort()
        elif self._message_started is not None and (
            now >= self._message_started + self._config.message_timeout
        ):
            log.info("%s: message not completed in time, closing", self._flow)
            self._fail(CloseCode.POLICY_VIOLATION, "message too slow")
        elif self._ping_payload is not None and now >= self._ping_deadline:
            log.info("%s: no pong within %.1fs, closing", self._flow, self._ws.ping_timeout)
            self._fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
        elif now >= self._last_received + self._config.idle_timeout:
            log.debug("%s: idle, closing", self._flow)
            self.close()
        elif self._next_ping is not None and now >= self._next_ping:
            self._ping(now)

    def _ping(self, now: float) -> None:
        """Send a keepalive ping (RFC 6455 §5.5.2) and expect its pong in time."""
        assert self._ws.ping_interval is not None
        self._pings += 1
        self._ping_payload = self._pings.to_bytes(4, "big")
        self._ping_deadline = now + self._ws.ping_timeout
        self._next_ping = now + self._ws.ping_interval
        self._proto.send_ping(self._ping_payload)
        self._flush()

    def _fail(self, code: CloseCode, reason: str) -> None:
        self._proto.fail(code, reason)
        self._flush()
        self._closing()


def _ws_accept(
    owner: ConnectionOwner, config: TransportConfig, ws: WsConfig, name: str, local: Address
) -> Accept:
    library_log = _LibraryLog(log.getChild("protocol"))

    def accept(transport: asyncio.Transport) -> WsConnection | None:
        peer: Any = transport.get_extra_info("peername")
        if peer is None:
            return None
        flow = Flow(name, local, sock_address(peer), owner.new_conn_id())
        conn = WsConnection(
            transport, flow, owner=owner, config=config, ws=ws, library_log=library_log
        )
        if not owner.connection_opened(conn):
            return None
        conn.start()
        return conn

    return accept


async def listen_ws(
    host: str,
    port: int,
    config: TransportConfig,
    ws: WsConfig,
    owner: ConnectionOwner,
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> TCPListener:
    """Bind a WS listener, or a WSS one with ``ssl_context``, and accept upgrades.

    With TLS, the TLS handshake and then the upgrade must each complete within
    ``ws.handshake_timeout``.
    """
    name = "ws" if ssl_context is None else "wss"

    def accept_for(local: Address) -> Accept:
        return _ws_accept(owner, config, ws, name, local)

    return await listen_stream(
        host,
        port,
        config,
        accept_for,
        name,
        ssl_context=ssl_context,
        handshake_timeout=ws.handshake_timeout,
    )
