"""Bencode codec as rtpengine's ng protocol uses it (pure, no I/O).

Bencode (BitTorrent BEP 3) has four types: byte strings ``<len>:<bytes>``, integers
``i<n>e``, lists ``l...e`` and dictionaries ``d<key><value>...e``. rtpengine neither sorts
dictionary keys nor requires them sorted, so this codec keeps keys in arrival order on both
sides: ``encode`` writes a mapping in its iteration order and ``decode`` returns a dict in
wire order.

Byte strings decode to ``str`` through UTF-8 with ``surrogateescape``: text (SDP, tags,
Call-IDs) reads naturally, and any other bytes survive a round trip unchanged, because
``encode`` writes ``str`` back with the same error handler.

The decoder is strict and bounded: no leading zeros, no ``-0``, no duplicate keys, keys must
be strings, input size and nesting depth are limited, and every fault raises
:class:`BencodeError` (a :class:`~sipedge.sip.errors.ParseError`), never anything else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sipedge.sip.errors import LimitExceeded, ParseError, ProtocolError

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_SIZE",
    "BencodeError",
    "BencodeLimitExceeded",
    "Decoded",
    "Encodable",
    "decode",
    "decode_prefix",
    "encode",
]

DEFAULT_MAX_SIZE = 1 << 20
DEFAULT_MAX_DEPTH = 32
_MAX_INT_DIGITS = 32
_MAX_LEN_DIGITS = 10
_DIGITS = frozenset(b"0123456789")

Decoded = str | int | list["Decoded"] | dict[str, "Decoded"]
"""What :func:`decode` returns: strings, integers, lists and ordered dicts."""

Encodable = (
    str
    | bytes
    | bytearray
    | int
    | Sequence["Encodable"]
    | Mapping[str, "Encodable"]
    | Mapping[bytes, "Encodable"]
)
"""What :func:`encode` accepts (``bool`` and ``float`` are refused)."""


class BencodeError(ParseError):
    """Malformed bencode from the peer; ``reason`` names the fault and its offset."""


class BencodeLimitExceeded(LimitExceeded, BencodeError):
    """The input is over the size or nesting limit."""


class _Incomplete(Exception):
    """Internal: the data ends before the value does."""


def encode(value: Encodable) -> bytes:
    """Encode ``value``; mappings keep their iteration order.

    Raises :class:`ProtocolError` for a type bencode cannot carry (``bool``, ``float``,
    ``None``, non-string keys) or a ``str`` that is not encodable.
    """
    out: list[bytes] = []
    _encode_into(value, out, 0)
    return b"".join(out)


def _encode_into(value: Encodable, out: list[bytes], depth: int) -> None:
    if depth > 256:
        raise ProtocolError("bencode: value nested too deeply")
    if isinstance(value, str):
        value = _str_bytes(value)
    if isinstance(value, bytes | bytearray):
        out.append(b"%d:" % len(value))
        out.append(bytes(value))
    elif isinstance(value, bool):
        raise ProtocolError("bencode: bool is not encodable; use an int or a string")
    elif isinstance(value, int):
        out.append(b"i%de" % value)
    elif isinstance(value, Mapping):
        out.append(b"d")
        for key, item in value.items():
            if not isinstance(key, str | bytes):
                raise ProtocolError(f"bencode: dictionary key {key!r} is not a string")
            _encode_into(key, out, depth + 1)
            _encode_into(item, out, depth + 1)
        out.append(b"e")
    elif isinstance(value, Sequence):
        out.append(b"l")
        for item in value:
            _encode_into(item, out, depth + 1)
        out.append(b"e")
    else:
        raise ProtocolError(f"bencode: {type(value).__name__} is not encodable")


def _str_bytes(value: str) -> bytes:
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:
        raise ProtocolError(f"bencode: string not encodable as UTF-8: {exc.reason}") from None


def decode(
    data: bytes, *, max_size: int = DEFAULT_MAX_SIZE, max_depth: int = DEFAULT_MAX_DEPTH
) -> Decoded:
    """Decode exactly one bencoded value filling all of ``data``.

    Raises :class:`BencodeError` on malformed, truncated or trailing input and
    :class:`BencodeLimitExceeded` when ``data`` is over ``max_size`` bytes or nests deeper
    than ``max_depth``.
    """
    if len(data) > max_size:
        raise BencodeLimitExceeded(f"bencode: {len(data)} bytes is over the {max_size} limit")
    try:
        value, end = _Parser(bytes(data), max_depth, max_size).value(0, 0)
    except _Incomplete:
        raise BencodeError("bencode: truncated value") from None
    if end != len(data):
        raise BencodeError(f"bencode: trailing data at offset {end}")
    return value


def decode_prefix(
    data: bytes,
    start: int = 0,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> tuple[Decoded, int] | None:
    """Decode the one value that starts at ``data[start]``; return it and its end offset.

    Returns ``None`` when ``data`` ends before the value does (read more and call again),
    which is how a stream reader finds message boundaries. Raises :class:`BencodeError` as
    soon as the bytes seen cannot start a valid value, and :class:`BencodeLimitExceeded`
    when the value is, or would be, longer than ``max_size`` bytes.
    """
    parser = _Parser(bytes(data[start : start + max_size + 1]), max_depth, max_size)
    try:
        value, end = parser.value(0, 0)
    except _Incomplete:
        if len(parser.data) > max_size:
            raise BencodeLimitExceeded(f"bencode: value over the {max_size} byte limit") from None
        return None
    return value, start + end


class _Parser:
    """Recursive-descent parser over one buffer; positions are explicit."""

    __slots__ = ("data", "max_depth", "max_size")

    def __init__(self, data: bytes, max_depth: int, max_size: int) -> None:
        self.data = data
        self.max_depth = max_depth
        self.max_size = max_size

    def value(self, pos: int, depth: int) -> tuple[Decoded, int]:
        data = self.data
        if pos >= len(data):
            raise _Incomplete
        lead = data[pos]
        if lead in _DIGITS:
            return self.string(pos)
        if lead == 0x69:  # i
            return self.integer(pos)
        if depth >= self.max_depth:
            raise BencodeLimitExceeded(f"bencode: nesting deeper than {self.max_depth}")
        if lead == 0x6C:  # l
            return self.list(pos + 1, depth + 1)
        if lead == 0x64:  # d
            return self.dict(pos + 1, depth + 1)
        raise BencodeError(f"bencode: unexpected byte {bytes([lead])!r} at offset {pos}")

    def string(self, pos: int) -> tuple[str, int]:
        data = self.data
        span = pos + _MAX_LEN_DIGITS
        colon = data.find(b":", pos, span + 1)
        if colon < 0:
            self._check_digits(pos, min(len(data), span), "length")
            if len(data) > span:
                raise BencodeError(f"bencode: string length too long at offset {pos}")
            raise _Incomplete
        self._check_digits(pos, colon, "length")
        length = int(data[pos:colon])
        end = colon + 1 + length
        if end > self.max_size:
            raise BencodeLimitExceeded(f"bencode: string at offset {pos} is over the size limit")
        if end > len(data):
            raise _Incomplete
        return data[colon + 1 : end].decode("utf-8", "surrogateescape"), end

    def integer(self, pos: int) -> tuple[int, int]:
        data = self.data
        first = pos + 1
        span = first + _MAX_INT_DIGITS + 1  # sign and digits
        stop = data.find(b"e", first, span + 1)
        digits_start = first + 1 if data[first : first + 1] == b"-" else first
        if stop < 0:
            self._check_digits(digits_start, min(len(data), span), "integer", allow_empty=True)
            if len(data) > span:
                raise BencodeError(f"bencode: integer too long at offset {pos}")
            raise _Incomplete
        self._check_digits(digits_start, stop, "integer")
        if data[first:stop] == b"-0":
            raise BencodeError(f"bencode: negative zero at offset {pos}")
        return int(data[first:stop]), stop + 1

    def _check_digits(self, start: int, stop: int, what: str, allow_empty: bool = False) -> None:
        digits = self.data[start:stop]
        if not digits and not allow_empty:
            raise BencodeError(f"bencode: empty {what} at offset {start}")
        if any(c not in _DIGITS for c in digits):
            raise BencodeError(f"bencode: bad {what} digits at offset {start}")
        if len(digits) > 1 and digits[0] == 0x30:
            raise BencodeError(f"bencode: leading zero in {what} at offset {start}")

    def list(self, pos: int, depth: int) -> tuple[list[Decoded], int]:
        items: list[Decoded] = []
        while True:
            if pos >= len(self.data):
                raise _Incomplete
            if self.data[pos] == 0x65:  # e
                return items, pos + 1
            item, pos = self.value(pos, depth)
            items.append(item)

    def dict(self, pos: int, depth: int) -> tuple[dict[str, Decoded], int]:
        items: dict[str, Decoded] = {}
        while True:
            if pos >= len(self.data):
                raise _Incomplete
            lead = self.data[pos]
            if lead == 0x65:  # e
                return items, pos + 1
            if lead not in _DIGITS:
                raise BencodeError(f"bencode: dictionary key is not a string at offset {pos}")
            key, pos = self.string(pos)
            if key in items:
                raise BencodeError(f"bencode: duplicate key {key!r}")
            items[key], pos = self.value(pos, depth)
