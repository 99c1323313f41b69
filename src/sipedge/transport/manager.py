"""The transport manager: listeners, the stream connection table, sending.

Messages go up through one callback, ``on_message(data, flow)``. Going down there are two
verbs: :meth:`TransportManager.send` over a known flow (a response over the connection its
request came on, RFC 3261 §18.2.2; never a new connection, RFC 5626 §5.3) and
:meth:`TransportManager.send_to` towards a (transport, ip, port) target, which reuses a live
connection to that remote (RFC 3261 §18.1.1) or opens one. UDP always leaves from a
listener socket, so the peer sees our listening port.

TLS listeners take a :class:`~.tls.ServerTls` (SNI, reload); outbound TLS connections are
opened with a named client profile (:meth:`TransportManager.add_tls_profile`) and
verify the peer. A connection is reused only for the same (transport, remote, local
listener, TLS profile): one opened with a client certificate is never lent to another
profile (OpenSIPS issue #1651). WS and WSS are accepted only (RFC 7118 §5).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
from collections import Counter
from collections.abc import Callable

from .base import (
    Address,
    Connection,
    ConnectionInfo,
    Flow,
    Listener,
    NoListenerError,
    TransportConfig,
    TransportError,
    ip_family,
    is_wildcard,
    normalize_ip,
)
from .tcp import TCPListener, connect_tcp, listen_tcp
from .tls import ClientTls, ServerTls, TlsClientConfig, TlsServerConfig
from .udp import UDPListener, listen_udp
from .ws import WsConfig, listen_ws

log = logging.getLogger(__name__)

_ConnKey = tuple[str, Address, str | None]  # (transport, remote, TLS profile)
# (transport, remote, local, TLS profile, server name)
_PendingKey = tuple[str, Address, Address | None, str | None, str | None]
ServerTlsLike = TlsServerConfig | ServerTls | ssl.SSLContext
"""What a TLS or WSS listener accepts: a configuration, a built ServerTls, or a context."""


class TransportManager:
    """Owns every listener and stream connection of one proxy instance.

    Must be used from within a running event loop (asyncio or uvloop). Callbacks never
    raise into the loop: an exception from ``on_message`` is logged and dropped.
    """

    def __init__(
        self,
        on_message: Callable[[bytes, Flow], None],
        config: TransportConfig | None = None,
    ) -> None:
        self._on_message = on_message
        self._config = config or TransportConfig()
        self._udp: dict[Address, UDPListener] = {}
        self._streams: dict[tuple[str, Address], TCPListener] = {}
        self._conns: dict[int, Connection] = {}
        self._by_remote: dict[_ConnKey, dict[int, Connection]] = {}
        self._per_ip: Counter[str] = Counter()
        self._pending: dict[_PendingKey, asyncio.Task[Connection]] = {}
        self._server_tls: list[ServerTls] = []
        self._client_tls: dict[str | None, ClientTls] = {}
        self._ids = itertools.count(1)
        self._closing = False
        self._drained: asyncio.Event | None = None

    @property
    def config(self) -> TransportConfig:
        """The limits in force."""
        return self._config

    # -- listeners ----------------------------------------------------------------------

    async def start_listener(
        self,
        transport: str,
        host: str,
        port: int,
        *,
        tls: ServerTlsLike | None = None,
        ws: WsConfig | None = None,
    ) -> Address:
        """Listen on ``host`` (an IPv4 or IPv6 literal) and ``port`` (0: ephemeral).

        ``transport`` is ``"udp"``, ``"tcp"``, ``"tls"``, ``"ws"`` or ``"wss"``; ``"tls"``
        and ``"wss"`` need ``tls``; ``ws`` configures WS and WSS (defaults otherwise).
        Returns the bound (ip, port). Raises ValueError for a host that is not an IP
        literal, :class:`TransportError` for an unsupported transport or a missing or
        unloadable TLS configuration (:class:`~.tls.TlsError`), OSError if the address
        cannot be bound.
        """
        if self._closing:
            raise TransportError("transport manager is closed")
        if transport == "udp":
            udp = await listen_udp(host, port, self._config, self.message_received)
            self._udp[udp.local] = udp
            return udp.local
        if transport not in ("tcp", "tls", "ws", "wss"):
            raise TransportError(f"transport {transport!r} is not supported")
        context = self._server_context(transport, tls)
        if transport in ("tcp", "tls"):
            listener = await listen_tcp(
                host, port, self._config, self, transport, ssl_context=context
            )
        else:
            ws = ws or WsConfig()
            listener = await listen_ws(host, port, self._config, ws, self, ssl_context=context)
        self._streams[(transport, listener.local)] = listener
        return listener.local

    def _server_context(self, transport: str, tls: ServerTlsLike | None) -> ssl.SSLContext | None:
        if transport in ("tcp", "ws"):
            if tls is not None:
                raise TransportError(f"a {transport} listener takes no TLS configuration")
            return None
        if tls is None:
            raise TransportError(f"a {transport} listener needs a TLS configuration")
        if isinstance(tls, ssl.SSLContext):
            return tls
        server_tls = ServerTls(tls) if isinstance(tls, TlsServerConfig) else tls
        if server_tls not in self._server_tls:
            self._server_tls.append(server_tls)
        return server_tls.context

    def add_tls_profile(self, name: str | None, config: TlsClientConfig) -> None:
        """Define (or replace) an outbound TLS profile; ``None`` names the default one.

        Without a default profile, outbound TLS verifies against the system CA store.
        Raises :class:`~.tls.TlsError` when its files cannot be loaded.
        """
        self._client_tls[name] = ClientTls(config)

    def reload_tls(self) -> None:
        """Re-read the certificate files of every TLS/WSS listener and client profile.

        New connections use the new files; open ones keep theirs. Raises
        :class:`~.tls.TlsError` at the first file that cannot be loaded (that listener
        or profile keeps its previous certificates).
        """
        for server_tls in self._server_tls:
            server_tls.reload()
        for client_tls in self._client_tls.values():
            client_tls.reload()

    def listeners(self) -> list[tuple[str, Address]]:
        """(transport, bound address) of every listener."""
        return [("udp", a) for a in self._udp] + list(self._streams)

    # -- sending ------------------------------------------------------------------------

    def send(self, data: bytes, flow: Flow) -> bool:
        """Send over an existing flow; never opens a connection.

        Returns False when the flow is dead: its connection is gone or closing, or its
        listener is closed. The caller then treats the target as failed (RFC 3261 §18.2.2
        lets a server fall back to the Via address for responses: use :meth:`send_to`).
        """
        if flow.conn_id is None:
            listener = self._udp.get(flow.local) if flow.transport == "udp" else None
            return listener is not None and listener.sendto(data, flow.remote)
        conn = self._conns.get(flow.conn_id)
        if conn is None or conn.flow != flow:
            return False
        return conn.write(data)

    async def send_to(
        self,
        data: bytes,
        transport: str,
        ip: str,
        port: int,
        local: Address | None = None,
        *,
        server_name: str | None = None,
        tls_profile: str | None = None,
    ) -> Flow:
        """Send to a target and return the flow used.

        UDP leaves from the listener at ``local`` or else the first one of the target's
        family. TCP and TLS reuse a live connection to (ip, port) (and to ``local``, when
        given; for TLS, made with the same ``tls_profile``) or open one within
        ``config.connect_timeout``. A new TLS connection uses the client profile
        ``tls_profile`` (None: the default) and verifies the peer certificate for
        ``server_name`` (else the profile's ``server_name``, else ``ip``). WS and WSS only
        reuse a live connection: they cannot be opened (RFC 7118 §5). Raises ValueError for
        a non-IP ``ip``, :class:`NoListenerError` when no listener fits,
        :class:`ConnectError` when a connection cannot be opened or the peer is not
        verified, :class:`TransportError` when sending fails.
        """
        if self._closing:
            raise TransportError("transport manager is closed")
        remote = (normalize_ip(ip), port)
        if transport == "udp":
            udp = self._pick_udp(remote[0], local)
            if not udp.sendto(data, remote):
                raise TransportError(f"UDP listener {udp.local} is closed")
            return Flow("udp", udp.local, remote)
        profile = tls_profile if transport == "tls" else None
        if profile is not None and profile not in self._client_tls:
            raise TransportError(f"unknown TLS profile {profile!r}")
        conn = self._reusable(transport, remote, local, profile)
        if conn is None:
            conn = await self._connect(transport, remote, local, profile, server_name)
        if not conn.write(data):
            raise TransportError(f"connection to {remote} closed while sending")
        return conn.flow

    def flow_alive(self, flow: Flow) -> bool:
        """True if :meth:`send` over this flow can still succeed."""
        if flow.conn_id is None:
            return flow.transport == "udp" and flow.local in self._udp
        conn = self._conns.get(flow.conn_id)
        return conn is not None and conn.flow == flow and not conn.is_closing

    def connections(self) -> list[ConnectionInfo]:
        """A snapshot of the stream connection table."""
        return [conn.info() for conn in self._conns.values()]

    def _pick_udp(self, ip: str, local: Address | None) -> UDPListener:
        if local is not None:
            udp = self._udp.get(local)
            if udp is None or ip_family(local[0]) != ip_family(ip):
                raise NoListenerError(f"no UDP listener at {local} for {ip}")
            return udp
        family = ip_family(ip)
        for addr, udp in self._udp.items():
            if ip_family(addr[0]) == family:
                return udp
        raise NoListenerError(f"no UDP listener of the family of {ip}")

    def _reusable(
        self, transport: str, remote: Address, local: Address | None, profile: str | None
    ) -> Connection | None:
        conns = self._by_remote.get((transport, remote, profile))
        if not conns:
            return None
        for conn in reversed(conns.values()):  # newest first
            if not conn.is_closing and (local is None or conn.flow.local == local):
                return conn
        return None

    async def _connect(
        self,
        transport: str,
        remote: Address,
        local: Address | None,
        profile: str | None,
        server_name: str | None,
    ) -> Connection:
        """Open a connection, sharing one attempt among concurrent senders."""
        key = (transport, remote, local, profile, server_name)
        task = self._pending.get(key)
        if task is None:
            opening = self._open(transport, remote, local, profile, server_name)
            task = asyncio.get_running_loop().create_task(opening)
            self._pending[key] = task
            task.add_done_callback(lambda done: self._connect_done(key, done))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and current is not None and not current.cancelling():
                raise TransportError("transport manager closed while connecting") from None
            raise

    def _connect_done(self, key: _PendingKey, task: asyncio.Task[Connection]) -> None:
        self._pending.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here even if every waiter was cancelled

    async def _open(
        self,
        transport: str,
        remote: Address,
        local: Address | None,
        profile: str | None,
        server_name: str | None,
    ) -> Connection:
        if transport in ("ws", "wss"):
            raise TransportError(f"cannot open {transport} connections: clients connect to us")
        if transport not in ("tcp", "tls"):
            raise TransportError(f"cannot open {transport!r} connections")
        listener = self._stream_listener(transport, remote[0], local)
        flow_local = listener.local if listener is not None else None
        bind_ip = None
        if flow_local is not None and not is_wildcard(flow_local[0]):
            bind_ip = flow_local[0]
        if transport == "tcp":
            return await connect_tcp(
                remote, self._config, self, flow_local=flow_local, bind_ip=bind_ip
            )
        client = self._client_profile(profile)
        return await connect_tcp(
            remote,
            self._config,
            self,
            flow_local=flow_local,
            bind_ip=bind_ip,
            ssl_context=client.context,
            server_hostname=server_name or client.config.server_name or remote[0],
            profile=profile,
        )

    def _client_profile(self, profile: str | None) -> ClientTls:
        client = self._client_tls.get(profile)
        if client is None:
            if profile is not None:
                raise TransportError(f"unknown TLS profile {profile!r}")
            client = self._client_tls[None] = ClientTls(TlsClientConfig())
        return client

    def _stream_listener(
        self, transport: str, ip: str, local: Address | None
    ) -> TCPListener | None:
        if local is not None:
            listener = self._streams.get((transport, local))
            if listener is None or ip_family(local[0]) != ip_family(ip):
                raise NoListenerError(f"no {transport} listener at {local} for {ip}")
            return listener
        family = ip_family(ip)
        for (name, addr), listener in self._streams.items():
            if name == transport and ip_family(addr[0]) == family:
                return listener
        return None

    # -- ConnectionOwner: called by the connections -------------------------------------

    def new_conn_id(self) -> int:
        """A connection id unique within this manager."""
        return next(self._ids)

    def connection_opened(self, conn: Connection) -> bool:
        """Admit a new connection into the table; False refuses it (limits, closing)."""
        flow = conn.flow
        if self._closing:
            return False
        if len(self._conns) >= self._config.max_connections:
            log.warning("refusing %s: %d connections open", flow, len(self._conns))
            return False
        ip = flow.remote[0]
        if conn.inbound:
            if self._per_ip[ip] >= self._config.max_connections_per_ip:
                log.warning("refusing %s: too many connections from %s", flow, ip)
                return False
            self._per_ip[ip] += 1
        assert flow.conn_id is not None
        self._conns[flow.conn_id] = conn
        key = (flow.transport, flow.remote, conn.profile)
        self._by_remote.setdefault(key, {})[flow.conn_id] = conn
        return True

    def connection_closed(self, conn: Connection) -> None:
        """Remove a closed connection from the table."""
        flow = conn.flow
        if flow.conn_id is None or self._conns.pop(flow.conn_id, None) is None:
            return
        key = (flow.transport, flow.remote, conn.profile)
        same_remote = self._by_remote.get(key, {})
        same_remote.pop(flow.conn_id, None)
        if not same_remote:
            self._by_remote.pop(key, None)
        if conn.inbound:
            self._per_ip[flow.remote[0]] -= 1
            if self._per_ip[flow.remote[0]] <= 0:
                del self._per_ip[flow.remote[0]]
        if not self._conns and self._drained is not None:
            self._drained.set()

    def message_received(self, data: bytes, flow: Flow) -> None:
        """Hand a complete message up; an exception from the callback is logged only."""
        try:
            self._on_message(data, flow)
        except Exception:
            log.exception("on_message failed for a message from %s", flow)

    # -- shutdown -----------------------------------------------------------------------

    async def close(self) -> None:
        """Stop listening, close connections (flushing within ``close_timeout``), finish."""
        if self._closing:
            return
        self._closing = True
        self._drained = asyncio.Event()
        listeners: list[Listener] = [*self._udp.values(), *self._streams.values()]
        for listener in listeners:
            listener.close()
        for task in list(self._pending.values()):
            task.cancel()
        for conn in list(self._conns.values()):
            conn.close()
        await self._wait_drained()
        for conn in list(self._conns.values()):
            conn.abort()
        await self._wait_drained()
        for listener in listeners:
            await listener.wait_closed()
        self._udp.clear()
        self._streams.clear()

    async def _wait_drained(self) -> None:
        assert self._drained is not None
        if self._conns:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), self._config.close_timeout)
