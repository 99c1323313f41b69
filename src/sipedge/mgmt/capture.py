"""A bounded in-memory capture of recent SIP messages, for the dashboard's call view.

The engine hands every message in and out to :meth:`Capture.add`: the entry keeps a
reference to the bytes and the flow, nothing is copied or parsed there. The ring is bounded
by message count and by bytes; the oldest entries go first. The Call-ID index is built
lazily: entries added since the last query are scanned (first line and Call-ID header
only) when someone asks, so the cost falls on the dashboard, not on the SIP path.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ..transport.base import Address, Flow

__all__ = ["Capture", "CapturedCall", "CapturedMessage", "call_id_of", "first_line_of"]

_FIRST_LINE_MAX = 300


def first_line_of(data: bytes) -> str:
    """The start line of a SIP message (request or status line), decoded leniently."""
    end = data.find(b"\r\n", 0, _FIRST_LINE_MAX)
    line = data[:end] if end >= 0 else data[:_FIRST_LINE_MAX]
    return line.decode("utf-8", "replace")


def call_id_of(data: bytes) -> str:
    """The Call-ID of a SIP message (long or compact form ``i``, RFC 3261 §20.8), or ""."""
    end = data.find(b"\r\n\r\n")
    head = data if end < 0 else data[:end]
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() in (b"call-id", b"i"):
            return value.strip().decode("utf-8", "replace")
    return ""


_Entry = tuple[int, float, bool, Flow, bytes]  # seq, time, inbound, flow, data


@dataclass(slots=True)
class CapturedMessage:
    """One message as it crossed the wire; ``inbound`` is from the peer to us."""

    seq: int
    time: float
    inbound: bool
    flow: Flow
    data: bytes
    call_id: str | None = None  # filled in when the index catches up

    @property
    def src(self) -> Address:
        """Sender (ip, port)."""
        return self.flow.remote if self.inbound else self.flow.local

    @property
    def dst(self) -> Address:
        """Receiver (ip, port)."""
        return self.flow.local if self.inbound else self.flow.remote

    @property
    def first_line(self) -> str:
        """Request line or status line."""
        return first_line_of(self.data)

    @property
    def text(self) -> str:
        """The whole message, decoded leniently."""
        return self.data.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class CapturedCall:
    """What the capture holds of one Call-ID."""

    call_id: str
    first: float
    last: float
    messages: int
    first_line: str


class Capture:
    """The ring of recent messages; ``max_messages == 0`` turns capture off."""

    def __init__(
        self, max_messages: int, max_bytes: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._clock = clock
        # Entries are plain tuples (no object per message on the SIP path); the oldest
        # len(self._cids) of them are indexed, _cids holding their Call-IDs in order.
        self._ring: deque[_Entry] = deque()
        self._cids: deque[str] = deque()
        self._index: dict[str, deque[_Entry]] = {}
        self._bytes = 0
        self._seq = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._ring)

    @property
    def size(self) -> int:
        """Bytes of message data held."""
        return self._bytes

    def add(self, inbound: bool, flow: Flow, data: bytes) -> None:
        """Keep a reference to ``data`` (the hot path: no parsing, no copy)."""
        if self.max_messages <= 0:
            return
        self._seq += 1
        ring = self._ring
        ring.append((self._seq, self._clock(), inbound, flow, data))
        self._bytes += len(data)
        while ring and (len(ring) > self.max_messages or self._bytes > self.max_bytes):
            self._evict()

    def _evict(self) -> None:
        old = self._ring.popleft()
        self._bytes -= len(old[4])
        self.evicted += 1
        if not self._cids:
            return  # not indexed yet
        cid = self._cids.popleft()
        chain = self._index[cid]
        chain.popleft()
        if not chain:
            del self._index[cid]

    def _catch_up(self) -> None:
        index = self._index
        cids = self._cids
        for entry in itertools.islice(self._ring, len(cids), None):
            cid = call_id_of(entry[4])
            cids.append(cid)
            chain = index.get(cid)
            if chain is None:
                chain = index[cid] = deque()
            chain.append(entry)

    def messages(self, call_id: str) -> list[CapturedMessage]:
        """The messages of ``call_id`` still held, oldest first."""
        self._catch_up()
        return [CapturedMessage(*e, call_id) for e in self._index.get(call_id, ())]

    def calls(self, limit: int = 100, query: str = "") -> list[CapturedCall]:
        """The Call-IDs held, most recently active first; ``query`` filters by substring of
        the Call-ID or of the first message's start line."""
        self._catch_up()
        out: list[CapturedCall] = []
        for cid, chain in self._index.items():
            if not cid or not chain:
                continue
            line = first_line_of(chain[0][4])
            if query and query not in cid and query not in line:
                continue
            out.append(CapturedCall(cid, chain[0][1], chain[-1][1], len(chain), line))
        out.sort(key=lambda c: c.last, reverse=True)
        return out[: max(0, limit)]
