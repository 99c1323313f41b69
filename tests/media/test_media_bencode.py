"""Bencode codec: round trips, key order, strictness, limits, and only BencodeError on junk."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipedge.media.bencode import (
    BencodeError,
    BencodeLimitExceeded,
    decode,
    decode_prefix,
    encode,
)
from sipedge.sip.errors import ParseError, ProtocolError

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
values: st.SearchStrategy[Any] = st.recursive(
    st.integers(min_value=-(10**30), max_value=10**30) | text,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(text, inner, max_size=5),
    max_leaves=30,
)


@given(values)
def test_round_trip(value: Any) -> None:
    data = encode(value)
    assert decode(data) == value
    assert encode(decode(data)) == data  # byte-exact, order included


@given(st.binary(max_size=50))
def test_any_bytes_survive_a_round_trip(raw: bytes) -> None:
    data = encode({"sdp": raw})
    decoded = decode(data)
    assert isinstance(decoded, dict)
    assert encode(decoded) == data  # surrogateescape keeps non-UTF-8 bytes


@given(st.lists(text, unique=True, min_size=2, max_size=8))
def test_key_order_is_kept_both_ways(keys: list[str]) -> None:
    keys = sorted(keys, reverse=True)  # deliberately not bencode's sorted order
    data = encode({k: 1 for k in keys})
    decoded = decode(data)
    assert isinstance(decoded, dict)
    assert list(decoded) == keys
    assert encode(decoded) == data


def test_unsorted_rtpengine_reply() -> None:
    data = b"d7:warning5:oops!6:result2:oke"
    assert list(decode(data)) == ["warning", "result"]  # type: ignore[arg-type]


def test_known_encodings() -> None:
    assert encode({"command": "ping"}) == b"d7:command4:pinge"
    assert encode([0, -1, b"", "\u00e9"]) == b"li0ei-1e0:2:\xc3\xa9e"
    assert encode((1, 2)) == b"li1ei2ee"
    assert encode({b"k": bytearray(b"v")}) == b"d1:k1:ve"


@pytest.mark.parametrize("bad", [True, 1.5, None, {1: "x"}, {"a": object()}, "\ud800"])
def test_encode_refuses_what_bencode_cannot_carry(bad: Any) -> None:
    with pytest.raises(ProtocolError):
        encode(bad)


MALFORMED = [
    b"",
    b"i",
    b"ie",
    b"i-e",
    b"i-0e",
    b"i01e",
    b"i1x2e",
    b"i" + b"9" * 40 + b"e",
    b"01:a",
    b"2:a",
    b"-1:a",
    b"1a:x",
    b"99999999999:x",
    b"l",
    b"li1e",
    b"d",
    b"d1:a",
    b"d1:ae",
    b"di1ei2ee",
    b"dli1ee1:ae",
    b"d1:a1:b1:a1:ce",
    b"x",
    b"i1ei2e",
    b"4:spam ",
    b"e",
]


@pytest.mark.parametrize("bad", MALFORMED)
def test_malformed_input_raises_bencode_error(bad: bytes) -> None:
    with pytest.raises(BencodeError) as info:
        decode(bad)
    assert isinstance(info.value, ParseError)
    assert info.value.reason.startswith("bencode: ")


def test_limits() -> None:
    with pytest.raises(BencodeLimitExceeded):
        decode(b"l" * 40 + b"e" * 40)  # deeper than the default 32
    assert decode(b"l" * 31 + b"e" * 31) is not None
    with pytest.raises(BencodeLimitExceeded):
        decode(b"5:hello", max_size=6)
    with pytest.raises(BencodeLimitExceeded):
        decode(b"d1:a5:helloe", max_size=12, max_depth=0)


@settings(max_examples=300)
@given(st.binary(max_size=60))
def test_random_bytes_raise_only_the_codec_error(data: bytes) -> None:
    with contextlib.suppress(BencodeError):
        decode(data)


@settings(max_examples=300)
@given(values, st.data())
def test_mutated_encodings_raise_only_the_codec_error(value: Any, data: st.DataObject) -> None:
    raw = bytearray(encode(value))
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(0, len(raw)))
        if op == "cut":
            del raw[pos:]
        elif op == "insert":
            raw.insert(pos, data.draw(st.sampled_from(b"ield:-0123456789x")))
        elif pos < len(raw):
            raw[pos] = data.draw(st.integers(0, 255))
    with contextlib.suppress(BencodeError):
        decode(bytes(raw))
    with contextlib.suppress(BencodeError):
        decode_prefix(bytes(raw))


def test_decode_prefix_tells_incomplete_from_malformed() -> None:
    assert decode_prefix(b"d6:result4:po") is None
    assert decode_prefix(b"d6:result4:ponge c2 d") == ({"result": "pong"}, 16)
    assert decode_prefix(b"xx1:a", 2) == ("a", 5)
    assert decode_prefix(b"i12") is None
    assert decode_prefix(b"123") is None
    with pytest.raises(BencodeError):
        decode_prefix(b"d6:result4:pongx")
    with pytest.raises(BencodeLimitExceeded):
        decode_prefix(b"100000:abc", max_size=1000)  # refused before the bytes arrive
    with pytest.raises(BencodeLimitExceeded):
        decode_prefix(b"l" + b"i1e" * 400, max_size=1000)


@given(values)
def test_every_proper_prefix_is_incomplete(value: Any) -> None:
    data = encode(value)
    for cut in range(len(data)):
        assert decode_prefix(data[:cut]) is None
    assert decode_prefix(data) == (value, len(data))
