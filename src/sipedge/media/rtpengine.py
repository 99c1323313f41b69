"""Async rtpengine ng client: one link per node (UDP, TCP or WebSocket), node sets, health.

Theory of operation. A :class:`RtpEngine` owns weighted node sets. Each node has one
persistent *link*, opened on first use and reopened with exponential backoff after a
failure. A command gets a fresh cookie (:class:`~sipedge.media.ng.CookieSource`) and waits
for the reply with that cookie until its deadline; over UDP it is resent with the *same*
cookie every ``retransmit`` seconds (rtpengine replays its cached reply), over TCP and
WebSocket it is resent on the new connection if the old one dropped. Every command runs in
the caller's task with its own deadline, so a slow or dead node never delays another.

A timeout or a refused connection disables the node for ``disable_time`` seconds; new calls
then go to the other nodes of the set, and an offer that fails that way is tried once on
each remaining node. A call stays on the node of its first successful offer (call-id map)
for answer, query and delete. A failed delete is retried in the background, a bounded
number of times. Health pings, every ``ping_interval`` seconds, bring disabled nodes back.
Over WebSocket one command is in flight per node at a time (``ws_inflight``): rtpengine
garbles replies to WS commands it handles concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import ssl
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException
from websockets.typing import Subprotocol

from sipedge.sip.errors import ParseError, ProtocolError

from .bencode import Decoded, Encodable
from .ng import (
    DEFAULT_MAX_MESSAGE,
    NG_SUBPROTOCOL,
    CookieSource,
    NgMessage,
    NgStreamSplitter,
    NodeHealth,
    NodeSpec,
    RelayError,
    RelayRejected,
    RelayTimeout,
    RelayUnavailable,
    ReplyMatcher,
    build_command,
    check_reply,
    encode_message,
    parse_message,
    parse_node_spec,
    pick_weighted,
)

log = logging.getLogger("sipedge.media")

Reply = dict[str, Decoded]

__all__ = ["MediaRelay", "NodeStatus", "RelayConfig", "RelayUnreachable", "Reply", "RtpEngine"]


class RelayUnreachable(RelayUnavailable):
    """The node's link could not be opened (refused, reset, TLS or handshake failure)."""


@dataclass(frozen=True, slots=True)
class RelayConfig:
    """Typed, frozen settings of the client; every limit has a safe default.

    ``sets`` maps a set name to node specs (``udp:h:p``, ``tcp:h:p``, ``ws://h:p/``, each
    with an optional ``=weight``); ``default_set`` is used when a call names none.
    ``timeout``: seconds one command may take, resends included; ``retransmit``: UDP resend
    interval (same cookie); ``disable_time``: seconds a failed node gets no new calls;
    ``ping_interval``: health pings (0: none, and a disabled node is used again as soon as
    its time is over); ``reconnect_min``/``reconnect_max``: TCP/WS reconnect backoff;
    ``max_pending``: commands waiting per node; ``ws_inflight``: WS commands in flight per
    node; ``max_message``: bytes; ``max_calls``: call-id map size (oldest dropped);
    ``delete_retries``, ``delete_retry_delay`` (doubling) and ``max_background_deletes``
    bound the background deletes; ``tls_cafile``/``tls_verify`` apply to ``wss://``.
    """

    sets: Mapping[str, Sequence[str]] = field(default_factory=dict)
    default_set: str = "default"
    timeout: float = 2.0
    retransmit: float = 0.5
    connect_timeout: float = 1.0
    disable_time: float = 60.0
    ping_interval: float = 10.0
    reconnect_min: float = 0.05
    reconnect_max: float = 5.0
    max_pending: int = 1024
    ws_inflight: int = 1
    max_message: int = DEFAULT_MAX_MESSAGE
    max_calls: int = 100_000
    delete_retries: int = 4
    delete_retry_delay: float = 1.0
    max_background_deletes: int = 256
    tls_cafile: str | None = None
    tls_verify: bool = True


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """A snapshot of one node for metrics and the CLI."""

    label: str
    weight: int
    available: bool
    pending: int
    commands: int
    timeouts: int
    failures: int
    retransmits: int
    #: Smoothed round-trip time of answered commands, seconds (None before the first).
    rtt: float | None = None


class MediaRelay(Protocol):
    """What the proxy needs from a media relay (the feature boundary); see :class:`RtpEngine`."""

    async def offer(
        self,
        call_id: str,
        from_tag: str,
        sdp: str,
        *,
        flags: Sequence[str] = (),
        options: Mapping[str, Encodable] | None = None,
        via_branch: str | None = None,
        node_set: str | None = None,
    ) -> Reply: ...

    async def answer(
        self,
        call_id: str,
        from_tag: str,
        to_tag: str,
        sdp: str,
        *,
        flags: Sequence[str] = (),
        options: Mapping[str, Encodable] | None = None,
        via_branch: str | None = None,
    ) -> Reply: ...

    async def delete(self, call_id: str, from_tag: str, to_tag: str | None = None) -> Reply: ...

    async def query(self, call_id: str, from_tag: str | None = None) -> Reply: ...

    def node_of(self, call_id: str) -> str | None: ...


# -- links ----------------------------------------------------------------------------------


class _Conn:
    """One open connection of a link: ``send`` and a future done when it is closed."""

    def __init__(
        self,
        send: Callable[[bytes], Coroutine[Any, Any, None]],
        stop: Callable[[], Coroutine[Any, Any, None]],
    ) -> None:
        self.send = send
        self.stop = stop
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def mark_closed(self) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, link: _Link) -> None:
        self.link = link
        self.conn: _Conn | None = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.link.received(data)

    def error_received(self, exc: Exception) -> None:
        log.debug("rtpengine %s: %s", self.link.spec.label, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None:
            self.conn.mark_closed()


class _Stream(asyncio.Protocol):
    def __init__(self, link: _Link) -> None:
        self.link = link
        self.conn: _Conn | None = None
        self.splitter = NgStreamSplitter(link.config.max_message)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            messages = self.splitter.feed(data)
        except ParseError as exc:
            log.warning("rtpengine %s: bad tcp-ng stream (%s); reconnecting", self.link, exc)
            if self.transport is not None:
                self.transport.close()
            return
        for message in messages:
            self.link.deliver(message)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None:
            self.conn.mark_closed()


class _Link:
    """A persistent link to one node with cookie matching, resending and reconnection."""

    def __init__(self, spec: NodeSpec, config: RelayConfig) -> None:
        self.spec = spec
        self.config = config
        self.matcher: ReplyMatcher[asyncio.Future[NgMessage]] = ReplyMatcher(config.max_pending)
        self.retransmits = 0
        self._conn: _Conn | None = None
        self._lock = asyncio.Lock()
        self._backoff = config.reconnect_min
        self._retry_at = 0.0
        self._resend = config.retransmit if spec.transport == "udp" else None
        # rtpengine's WebSocket ng garbles replies to commands it handles concurrently on one
        # connection (sipwise/rtpengine#1943, #1950; kamailio#2862), so WS runs them in turn.
        ws = spec.transport in ("ws", "wss")
        self._turns = asyncio.Semaphore(config.ws_inflight) if ws else None

    def __str__(self) -> str:
        return self.spec.label

    async def exchange(self, cookie: str, data: bytes, deadline: float) -> NgMessage:
        """Send ``data`` and wait for the reply with ``cookie`` until ``deadline``."""
        fut: asyncio.Future[NgMessage] = asyncio.get_running_loop().create_future()
        self.matcher.add(cookie, fut)
        try:
            async with asyncio.timeout_at(deadline):
                if self._turns is None:
                    return await self._send_until_answered(fut, data)
                async with self._turns:
                    return await self._send_until_answered(fut, data)
        except TimeoutError:
            raise RelayTimeout(f"rtpengine {self}: no reply to {cookie}") from None
        finally:
            self.matcher.discard(cookie)

    async def _send_until_answered(self, fut: asyncio.Future[NgMessage], data: bytes) -> NgMessage:
        sent = False
        while True:
            conn = await self._connected()
            if sent:
                self.retransmits += 1
            await conn.send(data)
            sent = True
            await asyncio.wait(
                (fut, conn.closed), timeout=self._resend, return_when=asyncio.FIRST_COMPLETED
            )
            if fut.done():
                return fut.result()

    def received(self, data: bytes) -> None:
        """A whole message (datagram or WebSocket frame) from the node."""
        try:
            message = parse_message(data, max_size=self.config.max_message)
        except ParseError as exc:
            log.warning("rtpengine %s: dropping bad reply: %s", self, exc)
            return
        self.deliver(message)

    def deliver(self, message: NgMessage) -> None:
        """Complete the command waiting for this cookie; late or unknown replies are dropped."""
        fut = self.matcher.match(message.cookie)
        if fut is not None and not fut.done():
            fut.set_result(message)

    async def _connected(self) -> _Conn:
        if self._conn is not None and not self._conn.closed.done():
            return self._conn
        async with self._lock:
            if self._conn is not None and not self._conn.closed.done():
                return self._conn
            loop = asyncio.get_running_loop()
            await asyncio.sleep(max(0.0, self._retry_at - loop.time()))
            try:
                async with asyncio.timeout(self.config.connect_timeout):
                    self._conn = await self._open()
            except (OSError, TimeoutError, WebSocketException) as exc:
                self._retry_at = loop.time() + self._backoff
                self._backoff = min(self._backoff * 2, self.config.reconnect_max)
                raise RelayUnreachable(f"rtpengine {self}: cannot connect: {exc!r}") from None
            self._backoff = self.config.reconnect_min
            return self._conn

    async def _open(self) -> _Conn:
        loop = asyncio.get_running_loop()
        host, port = self.spec.host, self.spec.port
        if self.spec.transport == "udp":
            udp, dproto = await loop.create_datagram_endpoint(
                lambda: _Datagrams(self), remote_addr=(host, port)
            )
            return self._attach(dproto, _Conn(_sync(udp.sendto), _sync(udp.close)))
        if self.spec.transport == "tcp":
            tcp, sproto = await loop.create_connection(lambda: _Stream(self), host, port)
            return self._attach(sproto, _Conn(_sync(tcp.write), _sync(tcp.close)))
        return await self._open_ws()

    @staticmethod
    def _attach(proto: _Datagrams | _Stream, conn: _Conn) -> _Conn:
        proto.conn = conn
        return conn

    async def _open_ws(self) -> _Conn:
        scheme, host = self.spec.transport, self.spec.host
        url = f"{scheme}://{f'[{host}]' if ':' in host else host}:{self.spec.port}{self.spec.path}"
        ws = await connect(
            url,
            subprotocols=[Subprotocol(NG_SUBPROTOCOL)],
            ssl=self._tls() if scheme == "wss" else None,
            compression=None,
            proxy=None,
            open_timeout=None,
            close_timeout=1.0,
            max_size=self.config.max_message,
        )
        if ws.subprotocol != NG_SUBPROTOCOL:
            await ws.close()
            raise OSError(f"server did not accept subprotocol {NG_SUBPROTOCOL}")

        async def send(data: bytes) -> None:
            with contextlib.suppress(WebSocketException):
                await ws.send(data)

        async def stop() -> None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

        conn = _Conn(send, stop)
        reader = asyncio.create_task(self._read_ws(ws, conn))
        return conn

    async def _read_ws(self, ws: ClientConnection, conn: _Conn) -> None:
        try:
            async for frame in ws:
                self.received(frame.encode("utf-8") if isinstance(frame, str) else frame)
        except WebSocketException as exc:
            log.info("rtpengine %s: WebSocket closed: %s", self, exc)
        finally:
            conn.mark_closed()
            await ws.close()

    def _tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.config.tls_cafile)
        if not self.config.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def close(self) -> None:
        """Close the connection and fail every pending command."""
        if self._conn is not None:
            await self._conn.stop()
            self._conn.mark_closed()
        for fut in self.matcher:
            if not fut.done():
                fut.set_exception(RelayUnavailable(f"rtpengine {self}: client closed"))
                fut.exception()  # marks it retrieved: its waiter may be cancelled already


def _sync(call: Callable[..., None]) -> Callable[..., Coroutine[Any, Any, None]]:
    async def run(*args: Any) -> None:
        call(*args)

    return run


# -- nodes and the relay ----------------------------------------------------------------------


class _Node:
    """One rtpengine: its link, its health and counters."""

    def __init__(self, spec: NodeSpec, config: RelayConfig, cookies: CookieSource) -> None:
        self.spec = spec
        self.link = _Link(spec, config)
        self.health = NodeHealth(config.disable_time, probe=config.ping_interval > 0)
        self.commands = 0
        self.timeouts = 0
        self.rtt: float | None = None
        self._cookies = cookies
        self._timeout = config.timeout

    async def command(self, body: Mapping[str, Encodable]) -> Reply:
        """Run one command; a timeout or unreachable node marks the node failed."""
        loop = asyncio.get_running_loop()
        cookie = self._cookies.next()
        self.commands += 1
        started = loop.time()
        try:
            message = await self.link.exchange(
                cookie, encode_message(cookie, body), loop.time() + self._timeout
            )
        except (RelayTimeout, RelayUnreachable) as exc:
            self.timeouts += isinstance(exc, RelayTimeout)
            if not self.health.disabled:
                log.warning("rtpengine %s disabled: %s", self.spec.label, exc)
            self.health.failed(loop.time())
            raise
        now = loop.time()
        self.health.succeeded(now)
        sample = now - started  # RFC 6298-style smoothing, alpha 1/8
        self.rtt = sample if self.rtt is None else self.rtt + (sample - self.rtt) / 8
        try:
            return check_reply(message)
        except ParseError as exc:  # no usable result: treated like an error result
            raise RelayRejected(f"invalid reply: {exc.reason}") from exc

    def status(self, now: float) -> NodeStatus:
        return NodeStatus(
            self.spec.label,
            self.spec.weight,
            self.health.available(now),
            len(self.link.matcher),
            self.commands,
            self.timeouts,
            self.health.failures,
            self.link.retransmits,
            self.rtt,
        )


class RtpEngine:
    """rtpengine client over weighted node sets; see the module text for the behaviour.

    ``randbytes`` seeds cookies, ``rng`` picks nodes (inject seeded ones in tests). Use as
    ``async with RtpEngine(config) as relay:`` or call :meth:`start` and :meth:`close`.
    """

    def __init__(
        self,
        config: RelayConfig,
        *,
        randbytes: Callable[[int], bytes] = os.urandom,
        rng: random.Random | None = None,
    ) -> None:
        if config.default_set not in config.sets:
            raise ProtocolError(f"rtpengine: no node set named {config.default_set!r}")
        self.config = config
        self._rng = rng or random.Random()
        cookies = CookieSource(randbytes)
        self._nodes: dict[str, _Node] = {}
        self._sets: dict[str, list[_Node]] = {}
        for name, specs in config.sets.items():
            members = [self._node(parse_node_spec(s), cookies) for s in specs]
            if not members:
                raise ProtocolError(f"rtpengine: node set {name!r} is empty")
            self._sets[name] = members
        self._calls: dict[str, _Node] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._background = 0
        self.deletes_dropped = 0

    def _node(self, spec: NodeSpec, cookies: CookieSource) -> _Node:
        node = self._nodes.get(spec.label)
        if node is None:
            node = self._nodes[spec.label] = _Node(spec, self.config, cookies)
        return node

    async def __aenter__(self) -> RtpEngine:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start the health pings (when ``ping_interval`` > 0)."""
        if self.config.ping_interval > 0:
            for node in self._nodes.values():
                self._spawn(self._health_loop(node))

    async def close(self) -> None:
        """Stop the background tasks and close every link."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for node in self._nodes.values():
            await node.link.close()

    # -- commands --------------------------------------------------------------------------

    async def ping(self, node: str) -> Reply:
        """Ping the node labelled ``node`` (e.g. ``udp:127.0.0.1:22222``)."""
        return await self._by_label(node).command({"command": "ping"})

    async def offer(
        self,
        call_id: str,
        from_tag: str,
        sdp: str,
        *,
        flags: Sequence[str] = (),
        options: Mapping[str, Encodable] | None = None,
        via_branch: str | None = None,
        node_set: str | None = None,
    ) -> Reply:
        """Send ``offer``; returns the reply (``reply["sdp"]`` is the rewritten SDP).

        ``flags`` go to the ng ``flags`` list; ``options`` are further ng keys passed through
        as given (``{"ICE": "remove", "replace": ["origin"]}``). A new call picks a node of
        ``node_set`` by weight; a re-offer goes to the call's node.
        """
        fixed = {"call-id": call_id, "from-tag": from_tag, "sdp": sdp, "via-branch": via_branch}
        body = build_command("offer", fixed, flags=flags, options=options)
        known = self._calls.get(call_id)
        if known is not None:
            return await known.command(body)
        return await self._first_available(body, node_set, call_id)

    async def answer(
        self,
        call_id: str,
        from_tag: str,
        to_tag: str,
        sdp: str,
        *,
        flags: Sequence[str] = (),
        options: Mapping[str, Encodable] | None = None,
        via_branch: str | None = None,
    ) -> Reply:
        """Send ``answer`` to the call's node (the SDP of the 18x/2xx)."""
        fixed: dict[str, Encodable | None] = {"call-id": call_id, "from-tag": from_tag}
        fixed.update({"to-tag": to_tag, "sdp": sdp, "via-branch": via_branch})
        body = build_command("answer", fixed, flags=flags, options=options)
        known = self._calls.get(call_id)
        if known is not None:
            return await known.command(body)
        return await self._first_available(body, None, call_id)

    async def delete(
        self,
        call_id: str,
        from_tag: str,
        to_tag: str | None = None,
        *,
        fast: bool = True,
        delay: int | None = None,
        flags: Sequence[str] = (),
        options: Mapping[str, Encodable] | None = None,
        retry: bool = True,
    ) -> Reply:
        """Send ``delete``; ``fast`` adds the ``fast`` flag: no statistics in the reply, so a
        small one (rtpengine releases that know the flag; 10.5 ignores it).

        ``delay`` sets ``delete delay`` (0: free the ports at once). On a timeout or an
        unreachable node the delete is retried in the background (``retry``) and the error
        is raised. An unknown call is deleted on every node of every set.
        """
        fixed: dict[str, Encodable | None] = {"call-id": call_id, "from-tag": from_tag}
        fixed.update({"to-tag": to_tag, "delete delay": delay})
        body = build_command(
            "delete", fixed, flags=[*flags, *(["fast"] if fast else [])], options=options
        )
        node = self._calls.pop(call_id, None)
        if node is None:
            return await self._delete_everywhere(body)
        try:
            return await node.command(body)
        except (RelayTimeout, RelayUnreachable):
            if retry:
                self._retry_in_background(node, body)
            raise

    async def query(self, call_id: str, from_tag: str | None = None) -> Reply:
        """Send ``query`` (per-call statistics) to the call's node."""
        body = build_command("query", {"call-id": call_id, "from-tag": from_tag})
        known = self._calls.get(call_id)
        return await (known or self._pick(self.config.default_set, set())).command(body)

    async def list_calls(self, node: str, limit: int | None = None) -> list[str]:
        """The Call-IDs the node labelled ``node`` holds (ng ``list``)."""
        reply = await self._by_label(node).command(build_command("list", {"limit": limit}))
        calls = reply.get("calls", [])
        return [c for c in calls if isinstance(c, str)] if isinstance(calls, list) else []

    # -- state -----------------------------------------------------------------------------

    def node_of(self, call_id: str) -> str | None:
        """The label of the node holding ``call_id``, if the call is known."""
        node = self._calls.get(call_id)
        return node.spec.label if node else None

    def forget(self, call_id: str) -> None:
        """Drop the call-id -> node entry (the dialog ended without a delete)."""
        self._calls.pop(call_id, None)

    def status(self) -> list[NodeStatus]:
        """A snapshot of every node."""
        now = asyncio.get_running_loop().time()
        return [node.status(now) for node in self._nodes.values()]

    # -- internals ---------------------------------------------------------------------------

    def _by_label(self, label: str) -> _Node:
        node = self._nodes.get(parse_node_spec(label).label)
        if node is None:
            raise ProtocolError(f"rtpengine: no node {label!r}")
        return node

    def _pick(self, set_name: str, tried: set[str]) -> _Node:
        members = self._sets.get(set_name)
        if members is None:
            raise ProtocolError(f"rtpengine: no node set named {set_name!r}")
        now = asyncio.get_running_loop().time()
        ready = [(n, n.spec.weight) for n in members if n.spec.label not in tried]
        ready = [(n, w) for n, w in ready if n.health.available(now)]
        if not ready:
            raise RelayUnavailable(f"rtpengine: no available node in set {set_name!r}")
        return pick_weighted(ready, self._rng.random())

    async def _first_available(
        self, body: Mapping[str, Encodable], set_name: str | None, call_id: str
    ) -> Reply:
        tried: set[str] = set()
        while True:
            node = self._pick(set_name or self.config.default_set, tried)
            tried.add(node.spec.label)
            try:
                reply = await node.command(body)
            except (RelayTimeout, RelayUnreachable) as exc:
                log.info("rtpengine: %s failed (%s); trying another node", body["command"], exc)
                continue
            self._remember(call_id, node)
            return reply

    def _remember(self, call_id: str, node: _Node) -> None:
        self._calls.pop(call_id, None)
        self._calls[call_id] = node
        while len(self._calls) > self.config.max_calls:
            del self._calls[next(iter(self._calls))]

    async def _delete_everywhere(self, body: Mapping[str, Encodable]) -> Reply:
        now = asyncio.get_running_loop().time()
        nodes = [n for n in self._nodes.values() if n.health.available(now)]
        nodes = nodes or list(self._nodes.values())
        results = await asyncio.gather(*(n.command(body) for n in nodes), return_exceptions=True)
        replies = [r for r in results if isinstance(r, dict)]
        for reply in replies:
            if "warning" not in reply:
                return reply
        if replies:
            return replies[0]
        errors = [r for r in results if isinstance(r, BaseException)]
        rejected = [e for e in errors if isinstance(e, RelayRejected)]
        raise (
            rejected[0] if rejected else RelayUnavailable("rtpengine: delete failed on every node")
        )

    def _retry_in_background(self, node: _Node, body: Mapping[str, Encodable]) -> None:
        if self._background >= self.config.max_background_deletes:
            self.deletes_dropped += 1
            log.error("rtpengine: too many deletes being retried; dropping %s", body["call-id"])
            return
        self._background += 1  # counted now: the task may start after the next failure
        self._spawn(self._retry_delete(node, body))

    async def _retry_delete(self, node: _Node, body: Mapping[str, Encodable]) -> None:
        try:
            delay = self.config.delete_retry_delay
            for _ in range(self.config.delete_retries):
                await asyncio.sleep(delay)
                delay *= 2
                with contextlib.suppress(RelayTimeout, RelayUnreachable):
                    await node.command(body)
                    return
            log.error(
                "rtpengine %s: delete of %s failed for good", node.spec.label, body["call-id"]
            )
        except RelayError as exc:
            log.warning("rtpengine %s: background delete: %s", node.spec.label, exc)
        finally:
            self._background -= 1

    async def _health_loop(self, node: _Node) -> None:
        while True:
            await asyncio.sleep(self.config.ping_interval)
            try:
                await node.command({"command": "ping"})
            except RelayError:
                pass  # already recorded in the node's health
            except Exception:
                log.exception("rtpengine %s: health ping", node.spec.label)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


if TYPE_CHECKING:
    _IS_A_MEDIA_RELAY: type[MediaRelay] = RtpEngine
