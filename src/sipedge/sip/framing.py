"""Cut a byte stream (TCP, TLS) into SIP messages; recognise CRLF keepalives.

On a stream transport the end of a message is found by its ``Content-Length`` header
(RFC 3261 §18.3): the header section ends at the first empty line (CRLFCRLF) and the body
is exactly ``Content-Length`` octets long. The header is mandatory on streams (RFC 3261
§20.14); when it is missing the body is taken as empty and the message is flagged
(:attr:`MessageFramed.content_length_missing`) so the caller can see it.

Between messages a peer may send keepalives (RFC 5626 §3.5.1, §4.4.1): a *ping* is CRLFCRLF,
to be answered with a single CRLF, the *pong*. CRLFs before a start line are otherwise
ignored (RFC 3261 §7.5). A run of ``k`` CRLFs between messages therefore yields ``k // 2``
:class:`PingReceived` events; an odd CRLF left over is a :class:`PongReceived`. Because a
lone CRLF at the end of the data fed so far may be a pong, it is reported at once; if the
next CRLF then arrives it completes a ping as well. So however the stream is split, the
messages and the number of pings are the same; only the number of pongs may vary.

The framer only frames: it does not parse the start line or other headers. Work is linear
in the bytes fed, also when they arrive one at a time: the search for the end of the header
section resumes where the previous one stopped, and the buffer is compacted only after a
message or keepalive was consumed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .errors import LimitExceeded, ParseError

_CR = 0x0D
_LF = 0x0A
_END_OF_HEADERS = b"\r\n\r\n"
_CONTENT_LENGTH_NAMES = (b"content-length", b"l")  # RFC 3261 §7.3.3 compact form "l"
_MAX_LENGTH_DIGITS = 10


@dataclass(frozen=True, slots=True)
class MessageFramed:
    """A complete SIP message: start line, headers, empty line and body, byte for byte.

    ``content_length_missing`` is true when the message had no Content-Length header and
    the body was taken as empty (RFC 3261 §18.3 requires the header on streams).
    """

    data: bytes
    content_length_missing: bool = False


@dataclass(frozen=True, slots=True)
class PingReceived:
    """A CRLFCRLF keepalive ping between messages; answer it with one CRLF (RFC 5626 §4.4.1)."""


@dataclass(frozen=True, slots=True)
class PongReceived:
    """A lone CRLF between messages: a keepalive pong (RFC 5626 §4.4.1) or a stray CRLF
    before a start line (RFC 3261 §7.5). A server may ignore it."""


FramingEvent = MessageFramed | PingReceived | PongReceived
"""What :meth:`StreamFramer.feed` returns, in stream order."""


class _State(Enum):
    BETWEEN = "between messages"
    HEADERS = "in the header section"
    BODY = "in the body"


class StreamFramer:
    """Incremental framer for one stream connection.

    ``max_message_size`` bounds a whole message (headers and body), ``max_header_size``
    the header section including the empty line. A message over either limit raises
    :class:`LimitExceeded` (status hint 513) as soon as that is known, before its body is
    buffered. Input that cannot be framed raises :class:`ParseError`. Either way the stream
    cannot be resynchronised: the caller closes the connection.
    """

    def __init__(self, max_message_size: int = 65535, max_header_size: int = 16384) -> None:
        if max_message_size <= 0 or max_header_size <= 0:
            raise ValueError("framer limits must be positive")
        self._max_message = max_message_size
        self._max_header = min(max_header_size, max_message_size)
        self._buf = bytearray()
        self._pos = 0  # start of unconsumed data; the message start outside BETWEEN
        self._state = _State.BETWEEN
        self._half_ping = False  # one CRLF seen between messages, awaiting a second
        self._half_reported = False  # ... and already reported as a pong
        self._scan_from = 0  # where the search for CRLFCRLF resumes
        self._msg_end = 0  # end of the current message, in BODY
        self._cl_missing = False
        self._error: ParseError | None = None

    @property
    def in_message(self) -> bool:
        """True while part of a message (not only keepalive CRLFs) is buffered.

        A transport uses it for the slow-message (slowloris) timeout.
        """
        return self._state is not _State.BETWEEN

    @property
    def buffered(self) -> int:
        """Number of bytes received but not yet returned as part of an event."""
        return len(self._buf) - self._pos

    @property
    def error(self) -> ParseError | None:
        """The framing error met so far, if any; once set the framer accepts no more data."""
        return self._error

    def feed(self, data: bytes) -> list[FramingEvent]:
        """Add received bytes; return the events they complete, in stream order.

        Raises :class:`ParseError`/:class:`LimitExceeded` on unframeable input. If events
        were completed earlier in the same call they are returned first and the error is
        kept in :attr:`error` and raised by the next call (``feed(b"")`` will do). After an
        error every call raises it again.
        """
        if self._error is not None:
            raise self._error
        self._buf += data
        events: list[FramingEvent] = []
        try:
            self._run(events)
        except ParseError as exc:
            self._error = exc
            if not events:
                raise
        self._compact()
        return events

    def _run(self, events: list[FramingEvent]) -> None:
        progressing = True
        while progressing:
            if self._state is _State.BETWEEN:
                progressing = self._between(events)
            elif self._state is _State.HEADERS:
                progressing = self._headers()
            else:
                progressing = self._body(events)

    def _between(self, events: list[FramingEvent]) -> bool:
        """Consume CRLFs between messages; True when a message starts."""
        buf = self._buf
        i = self._pos
        n = len(buf)
        while i < n:
            byte = buf[i]
            if byte == _LF:
                raise ParseError("bare LF between messages")
            if byte != _CR:
                self._end_crlf_run(events)
                self._pos = self._scan_from = i
                self._state = _State.HEADERS
                return True
            if i + 1 == n:
                break  # a CR alone: wait for its LF
            if buf[i + 1] != _LF:
                raise ParseError("CR not followed by LF between messages")
            i += 2
            if self._half_ping:  # RFC 5626 §4.4.1: CRLFCRLF is a ping
                events.append(PingReceived())
                self._half_ping = False
            else:
                self._half_ping = True
                self._half_reported = False
        self._pos = i
        if self._half_ping and not self._half_reported:
            events.append(PongReceived())
            self._half_reported = True
        return False

    def _end_crlf_run(self, events: list[FramingEvent]) -> None:
        if self._half_ping and not self._half_reported:
            events.append(PongReceived())
        self._half_ping = False

    def _headers(self) -> bool:
        """Look for the end of the header section; True when it was found."""
        buf = self._buf
        start = self._pos
        idx = buf.find(_END_OF_HEADERS, self._scan_from)
        if idx < 0:
            if len(buf) - start > self._max_header:
                raise LimitExceeded(f"header section over {self._max_header} bytes")
            self._scan_from = max(start, len(buf) - 3)
            return False
        body_start = idx + 4
        if body_start - start > self._max_header:
            raise LimitExceeded(f"header section over {self._max_header} bytes")
        length = _content_length(bytes(buf[start:idx]))
        self._cl_missing = length is None
        size = body_start - start + (length or 0)
        if size > self._max_message:
            raise LimitExceeded(f"message of {size} bytes over {self._max_message}")
        self._msg_end = body_start + (length or 0)
        self._state = _State.BODY
        return True

    def _body(self, events: list[FramingEvent]) -> bool:
        """Wait for the whole body; True when the message was emitted."""
        if len(self._buf) < self._msg_end:
            return False
        data = bytes(self._buf[self._pos : self._msg_end])
        events.append(MessageFramed(data, self._cl_missing))
        self._pos = self._msg_end
        self._state = _State.BETWEEN
        return True

    def _compact(self) -> None:
        """Drop consumed bytes. Runs only after progress, so each byte moves O(1) times."""
        pos = self._pos
        if pos == 0:
            return
        del self._buf[:pos]
        self._pos = 0
        self._scan_from = max(0, self._scan_from - pos)
        self._msg_end -= pos


def _content_length(head: bytes) -> int | None:
    """The Content-Length of a header section (start line first, no final CRLFCRLF).

    Names are case-insensitive and may be compact (``l``); whitespace may precede the colon
    and a value may be folded onto continuation lines (RFC 3261 §7.3.1). Repeated headers
    must agree. Returns None when there is none.
    """
    found: int | None = None
    for name, value in _header_fields(head):
        if name.rstrip(b" \t").lower() not in _CONTENT_LENGTH_NAMES:
            continue
        length = _parse_length(value)
        if found is not None and found != length:
            raise ParseError("conflicting Content-Length headers")
        found = length
    return found


def _header_fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """(name, value) of each header field, folded continuation lines joined."""
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n")[1:]:
        if line[:1] in (b" ", b"\t"):
            if fields:
                name, value = fields[-1]
                fields[-1] = (name, value + b" " + line)
            continue
        name, colon, value = line.partition(b":")
        if colon:
            fields.append((name, value))
    return fields


def _parse_length(value: bytes) -> int:
    """Content-Length = 1*DIGIT (RFC 3261 §20.14), surrounding whitespace allowed."""
    digits = value.strip(b" \t\r\n")
    if not digits or not digits.isdigit():
        raise ParseError("invalid Content-Length value")
    significant = digits.lstrip(b"0")
    if len(significant) > _MAX_LENGTH_DIGITS:
        raise LimitExceeded("Content-Length value too large")
    return int(significant or b"0")
