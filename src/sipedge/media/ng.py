"""rtpengine ng control protocol, the pure part: messages, cookies, matching, framing.

Theory of operation. Every ng message is ``<cookie> SP <bencode dictionary>``. A request
carries ``command``; the reply echoes the cookie and carries ``result`` (``ok``, ``pong`` or
``error`` with ``error-reason``; ``ok`` may carry ``warning``). The cookie is unique for each
new command and is *reused* when the same command is retransmitted: rtpengine keeps a cookie
cache and replays the cached reply instead of running the command twice.

Over UDP one datagram is one message. Over TCP ("tcp-ng") there is no length prefix or
delimiter: messages follow each other back to back and a reader finds the boundaries by
parsing one complete bencode value after the first space (:class:`NgStreamSplitter`). Over
WebSocket (subprotocol ``ng.rtpengine.com``) one frame is one message.

This module also holds the other pure pieces of the client: node specs
(``udp:host:port=weight``), per-node health state with an injected clock, and weighted
choice with an injected random number. No I/O, no clock, no global random.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from sipedge.sip.errors import LimitExceeded, ParseError, ProtocolError

from .bencode import DEFAULT_MAX_DEPTH, Decoded, Encodable, decode, decode_prefix, encode

__all__ = [
    "NG_SUBPROTOCOL",
    "CookieSource",
    "NgMessage",
    "NgStreamSplitter",
    "NodeHealth",
    "NodeSpec",
    "RelayError",
    "RelayRejected",
    "RelayTimeout",
    "RelayUnavailable",
    "ReplyMatcher",
    "build_command",
    "check_reply",
    "encode_message",
    "parse_message",
    "parse_node_spec",
    "pick_weighted",
]

NG_SUBPROTOCOL = "ng.rtpengine.com"
"""WebSocket subprotocol of ng with cookies (rtpengine ``--listen-http``)."""

DEFAULT_MAX_MESSAGE = 1 << 20
MAX_COOKIE = 128
TRANSPORTS = ("udp", "tcp", "ws", "wss")

T = TypeVar("T")


class RelayError(Exception):
    """Base of the errors a media relay command can end with."""


class RelayTimeout(RelayError):
    """No reply within the command's timeout (the node is then disabled for a while)."""


class RelayUnavailable(RelayError):
    """No node could take the command: all disabled, unreachable or over their limits."""


class RelayRejected(RelayError):
    """rtpengine answered ``result: error``; ``reason`` is its ``error-reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- messages -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NgMessage:
    """One ng message: its cookie and its dictionary (keys in wire order)."""

    cookie: str
    body: dict[str, Decoded]


class CookieSource:
    """Makes cookies unique per command: a random prefix from ``randbytes`` and a counter.

    ``randbytes(n)`` returns ``n`` random bytes (``os.urandom`` or ``random.Random.randbytes``
    in tests). The prefix changes with every instance, so a restarted client never reuses a
    cookie rtpengine still holds in its cache.
    """

    def __init__(self, randbytes: Callable[[int], bytes], prefix_bytes: int = 6) -> None:
        self._prefix = randbytes(prefix_bytes).hex()
        self._counter = 0

    def next(self) -> str:
        """A cookie never returned before by this source."""
        self._counter += 1
        return f"{self._prefix}_{self._counter}"


def encode_message(cookie: str, body: Mapping[str, Encodable]) -> bytes:
    """``cookie SP bencode(body)``; raises :class:`ProtocolError` for an unusable cookie."""
    raw = cookie.encode("utf-8", "surrogateescape")
    if not raw or len(raw) > MAX_COOKIE or b" " in raw:
        raise ProtocolError(f"ng: unusable cookie {cookie!r}")
    return raw + b" " + encode(body)


def parse_message(data: bytes, *, max_size: int = DEFAULT_MAX_MESSAGE) -> NgMessage:
    """Parse one whole message (a UDP datagram or a WebSocket frame).

    Raises :class:`ParseError` naming the fault, :class:`LimitExceeded` over ``max_size``.
    """
    if len(data) > max_size:
        raise LimitExceeded(f"ng: message of {len(data)} bytes is over the {max_size} limit")
    cookie = _cookie_of(data)
    body = decode(data[len(cookie) + 1 :], max_size=max_size, max_depth=DEFAULT_MAX_DEPTH)
    return _message(cookie, body)


def _cookie_of(data: bytes) -> bytes:
    space = data.find(b" ", 0, MAX_COOKIE + 1)
    if space < 0:
        if len(data) > MAX_COOKIE:
            raise ParseError("ng: no cookie (no space in the first bytes)")
        raise ParseError("ng: message has no space after the cookie")
    if space == 0:
        raise ParseError("ng: empty cookie")
    return data[:space]


def _message(cookie: bytes, body: Decoded) -> NgMessage:
    if not isinstance(body, dict):
        raise ParseError("ng: message body is not a dictionary")
    return NgMessage(cookie.decode("utf-8", "surrogateescape"), body)


class NgStreamSplitter:
    """Cuts a tcp-ng byte stream into messages by parsing (tcp-ng has no length prefix).

    :meth:`feed` takes bytes as they arrive and returns the complete messages; a partial
    message stays buffered. Raises :class:`ParseError` on a malformed stream (the connection
    cannot be resynchronised and should be closed) and :class:`LimitExceeded` once a message
    is longer than ``max_message`` bytes.
    """

    def __init__(self, max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        self._buffer = bytearray()
        self._max = max_message

    def feed(self, data: bytes) -> list[NgMessage]:
        """Add ``data``; return every message now complete, in order."""
        self._buffer += data
        buffer = bytes(self._buffer)
        out: list[NgMessage] = []
        pos = 0
        while pos < len(buffer):
            found = self._take_at(buffer, pos)
            if found is None:
                break
            message, pos = found
            out.append(message)
        del self._buffer[:pos]
        return out

    def _take_at(self, buffer: bytes, pos: int) -> tuple[NgMessage, int] | None:
        space = buffer.find(b" ", pos, pos + MAX_COOKIE + 1)
        if space < 0:
            if len(buffer) - pos > MAX_COOKIE:
                raise ParseError("ng: no cookie in the stream")
            return None
        if space == pos:
            raise ParseError("ng: empty cookie in the stream")
        found = decode_prefix(buffer, space + 1, max_size=self._max)
        if found is None:
            return None
        body, end = found
        return _message(buffer[pos:space], body), end

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete message."""
        return len(self._buffer)


class ReplyMatcher(Generic[T]):
    """Pending commands by cookie; a reply is matched to its command by its cookie alone."""

    def __init__(self, limit: int) -> None:
        self._pending: dict[str, T] = {}
        self._limit = limit

    def add(self, cookie: str, waiter: T) -> None:
        """Remember ``waiter`` for ``cookie``; raises :class:`RelayUnavailable` when full."""
        if cookie in self._pending:
            raise ProtocolError(f"ng: cookie {cookie!r} is already pending")
        if len(self._pending) >= self._limit:
            raise RelayUnavailable(f"too many pending commands ({self._limit})")
        self._pending[cookie] = waiter

    def match(self, cookie: str) -> T | None:
        """The waiter of ``cookie``, or ``None`` (late reply, duplicate, or unknown)."""
        return self._pending.get(cookie)

    def discard(self, cookie: str) -> None:
        """Forget ``cookie`` (answered, timed out or cancelled)."""
        self._pending.pop(cookie, None)

    def __len__(self) -> int:
        return len(self._pending)

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._pending.values()))


def build_command(
    command: str,
    fixed: Mapping[str, Encodable | None],
    *,
    flags: Sequence[str] = (),
    options: Mapping[str, Encodable] | None = None,
) -> dict[str, Encodable]:
    """The dictionary of one command: ``command``, the ``fixed`` keys, then ``options``.

    ``None`` values in ``fixed`` are left out. ``options`` are passed through untouched
    (unknown keys included, as rtpengine's own modules do); they may not replace ``command``
    or a ``fixed`` key. ``flags`` are appended to any ``flags`` list in ``options``.
    """
    body: dict[str, Encodable] = {"command": command}
    body.update({k: v for k, v in fixed.items() if v is not None})
    extra = dict(options or {})
    clash = sorted(k for k in extra if k in body)
    if clash:
        raise ProtocolError(f"ng: options may not replace {', '.join(clash)}")
    merged = _as_list(extra.pop("flags", [])) + list(flags)
    body.update(extra)
    if merged:
        body["flags"] = merged
    return body


def _as_list(value: Encodable) -> list[Encodable]:
    if isinstance(value, list | tuple):
        return list(value)
    raise ProtocolError("ng: options['flags'] must be a list of strings")


def check_reply(message: NgMessage) -> dict[str, Decoded]:
    """The reply body when ``result`` is ``ok`` or ``pong``.

    Raises :class:`RelayRejected` for ``result: error`` and :class:`ParseError` for a
    reply without a usable ``result``.
    """
    result = message.body.get("result")
    if result in ("ok", "pong"):
        return message.body
    if result == "error":
        reason = message.body.get("error-reason", "unspecified error")
        raise RelayRejected(reason if isinstance(reason, str) else repr(reason))
    raise ParseError(f"ng: reply has no valid result ({result!r})")


# -- nodes ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One rtpengine node: ``udp:host:port``, ``tcp:host:port`` or ``ws[s]://host:port/path``.

    ``weight`` (``=N`` suffix, default 1) sets its share of new calls within its set.
    """

    transport: str
    host: str
    port: int
    weight: int = 1
    path: str = "/"

    @property
    def label(self) -> str:
        """The spec without its weight, used as the node's name."""
        if self.transport in ("ws", "wss"):
            return f"{self.transport}://{_host_text(self.host)}:{self.port}{self.path}"
        return f"{self.transport}:{_host_text(self.host)}:{self.port}"


_SPEC = re.compile(
    r"^(?:(?P<t>udp6?|tcp6?):(?P<h>\[[0-9A-Fa-f:.]+\]|[^:\[\]/=\s]+):(?P<p>\d{1,5})"
    r"|(?P<w>wss?)://(?P<wh>\[[0-9A-Fa-f:.]+\]|[^:\[\]/=\s]+):(?P<wp>\d{1,5})(?P<path>/[^\s=]*)?)"
    r"(?:=(?P<weight>\d{1,6}))?$"
)


def parse_node_spec(text: str) -> NodeSpec:
    """Parse ``udp:10.0.0.5:22222=2``, ``tcp:[::1]:22223``, ``ws://relay:8080/ng``.

    ``udp6``/``tcp6`` are accepted as aliases (Kamailio spelling). Raises
    :class:`ParseError` naming the fault.
    """
    m = _SPEC.match(text.strip())
    if m is None:
        raise ParseError(f"bad rtpengine node {text!r}: want udp:HOST:PORT, tcp:HOST:PORT or ws://")
    transport = (m["t"] or m["w"]).rstrip("6")
    host = (m["h"] or m["wh"]).strip("[]")
    port = int(m["p"] or m["wp"])
    weight = int(m["weight"]) if m["weight"] else 1
    if not 0 < port < 65536:
        raise ParseError(f"bad rtpengine node {text!r}: port out of range")
    if weight < 1:
        raise ParseError(f"bad rtpengine node {text!r}: weight must be at least 1")
    return NodeSpec(transport, host, port, weight, m["path"] or "/")


def _host_text(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class NodeHealth:
    """Whether a node may take new calls, from its recent failures; times come as ``now``.

    A failure (timeout, connection refused) disables the node for ``disable_time`` seconds.
    When that time is over the node is *probing*: with ``probe`` set it stays out of new
    calls until a health ping succeeds; without it the node is used again at once.
    """

    def __init__(self, disable_time: float, probe: bool = True) -> None:
        self._disable_time = disable_time
        self._probe = probe
        self._disabled_until: float | None = None
        self.failures = 0

    def failed(self, now: float) -> None:
        """Record a failure: the node is disabled for ``disable_time`` from ``now``."""
        self.failures += 1
        self._disabled_until = now + self._disable_time

    def succeeded(self, now: float) -> None:
        """Record a reply; re-enables the node once its disabled time is over."""
        if self._disabled_until is not None and now >= self._disabled_until:
            self._disabled_until = None

    def available(self, now: float) -> bool:
        """May the node take a new call at ``now``?"""
        if self._disabled_until is None:
            return True
        return not self._probe and now >= self._disabled_until

    @property
    def disabled(self) -> bool:
        """True from a failure until the node is back (see the class text)."""
        return self._disabled_until is not None


def pick_weighted(candidates: Sequence[tuple[T, int]], rand: float) -> T:
    """The candidate that ``rand`` (uniform in [0, 1)) falls on, each by its weight."""
    if not candidates:
        raise ProtocolError("pick_weighted: no candidates")
    total = sum(weight for _, weight in candidates)
    point = rand * total
    for item, weight in candidates:
        if point < weight:
            return item
        point -= weight
    return candidates[-1][0]
