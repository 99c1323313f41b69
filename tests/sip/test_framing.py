"""Tests of the pure stream framer (RFC 3261 §18.3 framing, RFC 5626 §3.5.1 keepalives)."""

from __future__ import annotations

import pathlib
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipedge.sip.errors import LimitExceeded, ParseError
from sipedge.sip.framing import (
    FramingEvent,
    MessageFramed,
    PingReceived,
    PongReceived,
    StreamFramer,
)

DATA = pathlib.Path(__file__).parent.parent / "data" / "rfc4475"
PING = PingReceived()
PONG = PongReceived()


def msg(body: bytes = b"", cl_header: str | None = "Content-Length", extra: str = "") -> bytes:
    """A small request; ``cl_header=None`` leaves Content-Length out."""
    head = (
        "OPTIONS sip:bob@example.com SIP/2.0\r\n"
        "Via: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK1\r\n"
        "Call-ID: abc\r\n" + extra
    )
    if cl_header is not None:
        head += f"{cl_header}: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def feed_all(framer: StreamFramer, chunks: list[bytes]) -> list[FramingEvent]:
    events: list[FramingEvent] = []
    for chunk in chunks:
        events += framer.feed(chunk)
    return events


def messages(events: list[FramingEvent]) -> list[bytes]:
    return [e.data for e in events if isinstance(e, MessageFramed)]


# -- Content-Length framing -------------------------------------------------------------


def test_single_message_with_body() -> None:
    m = msg(b"v=0\r\n\r\nhello")  # a CRLFCRLF inside the body does not end the message
    assert StreamFramer().feed(m) == [MessageFramed(m)]


@pytest.mark.parametrize(
    "name", ["Content-Length", "content-length", "CONTENT-LENGTH", "l", "L", "Content-Length  "]
)
def test_content_length_name_forms(name: str) -> None:
    m = msg(b"0123456789", cl_header=name)
    assert StreamFramer().feed(m + m) == [MessageFramed(m), MessageFramed(m)]


def test_folded_content_length_value() -> None:
    m = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length:\r\n   3\r\nCall-ID: x\r\n\r\nabc"
    assert StreamFramer().feed(m + b"NEXT") == [MessageFramed(m)]


def test_leading_zeros_and_whitespace_in_value() -> None:
    m = b"OPTIONS sip:a@b SIP/2.0\r\nl:  0003 \r\n\r\nabc"
    assert StreamFramer().feed(m) == [MessageFramed(m)]


def test_missing_content_length_means_empty_body_and_is_flagged() -> None:
    m = msg(cl_header=None)
    assert StreamFramer().feed(m + m) == [MessageFramed(m, True), MessageFramed(m, True)]


def test_rfc2543_message_without_content_length() -> None:
    data = (DATA / "inv2543.dat").read_bytes()
    framer = StreamFramer()
    [event] = framer.feed(data)
    assert isinstance(event, MessageFramed) and event.content_length_missing
    assert data.startswith(event.data) and event.data.endswith(b"\r\n\r\n")
    assert framer.in_message  # the unannounced body now looks like the next message


def test_identical_repeated_content_length_is_accepted() -> None:
    m = msg(b"abc", extra="l: 3\r\n")
    assert StreamFramer().feed(m) == [MessageFramed(m)]


@pytest.mark.parametrize("name", ["mcl01", "ncl"])
def test_rfc4475_unframeable(name: str) -> None:
    with pytest.raises(ParseError):
        StreamFramer().feed((DATA / f"{name}.dat").read_bytes())


def test_rfc4475_well_framed_messages_come_out_whole() -> None:
    skip = {"mcl01", "ncl", "inv2543", "clerr", "dblreq"}
    files = [p for p in sorted(DATA.glob("*.dat")) if p.stem not in skip]
    assert len(files) > 40
    stream = b"".join(p.read_bytes() for p in files)
    events = feed_all(StreamFramer(), [stream[i : i + 7] for i in range(0, len(stream), 7)])
    assert messages(events) == [p.read_bytes() for p in files]


def test_clerr_waits_for_the_announced_body() -> None:
    framer = StreamFramer()
    assert framer.feed((DATA / "clerr.dat").read_bytes()) == []
    assert framer.in_message and framer.buffered > 0


@pytest.mark.parametrize("value", [b"-5", b"abc", b"", b"1 2", b"0x10", b"\xd9\xa3"])
def test_invalid_content_length_values(value: bytes) -> None:
    data = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: " + value + b"\r\n\r\n"
    with pytest.raises(ParseError) as info:
        StreamFramer().feed(data)
    assert info.value.status_hint == 400


def test_huge_content_length_digits_are_a_limit_not_a_crash() -> None:
    data = b"OPTIONS sip:a@b SIP/2.0\r\nl: " + b"9" * 5000 + b"\r\n\r\n"
    with pytest.raises(LimitExceeded) as info:
        StreamFramer().feed(data)
    assert info.value.status_hint == 513


# -- limits -----------------------------------------------------------------------------


def test_oversized_message_rejected_before_its_body_arrives() -> None:
    framer = StreamFramer(max_message_size=1000)
    head = b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 5000\r\n\r\n"
    with pytest.raises(LimitExceeded):
        framer.feed(head)


def test_message_exactly_at_the_size_limit_passes() -> None:
    m = msg(b"x" * 100)
    assert StreamFramer(max_message_size=len(m)).feed(m) == [MessageFramed(m)]
    with pytest.raises(LimitExceeded):
        StreamFramer(max_message_size=len(m) - 1).feed(m)


def test_endless_header_section_hits_the_header_limit() -> None:
    framer = StreamFramer(max_header_size=200)
    framer.feed(b"INVITE sip:a@b SIP/2.0\r\n")
    line = b"X-Filler: 0123456789\r\n"
    fed = 0
    with pytest.raises(LimitExceeded):
        while fed < 1000:
            framer.feed(line)
            fed += len(line)
    assert 150 < fed <= 220  # raised as soon as the limit was passed, not later


def test_error_after_completed_message_is_deferred() -> None:
    framer = StreamFramer()
    m = msg()
    assert framer.feed(m + b"\r\x00") == [MessageFramed(m)]
    assert isinstance(framer.error, ParseError)
    with pytest.raises(ParseError):
        framer.feed(b"")
    with pytest.raises(ParseError):
        framer.feed(m)  # a failed framer stays failed


@pytest.mark.parametrize("junk", [b"\n", b"\r\x00", b"\r\r\n"])
def test_bad_line_ends_between_messages(junk: bytes) -> None:
    with pytest.raises(ParseError):
        StreamFramer().feed(junk + msg())


def test_rejects_nonpositive_limits() -> None:
    with pytest.raises(ValueError):
        StreamFramer(max_message_size=0)


# -- keepalives (RFC 5626 §3.5.1) -------------------------------------------------------


def test_ping_between_messages() -> None:
    m = msg(b"x")
    assert StreamFramer().feed(m + b"\r\n\r\n" + m) == [MessageFramed(m), PING, MessageFramed(m)]


def test_lone_ping_and_pong() -> None:
    assert StreamFramer().feed(b"\r\n\r\n") == [PING]
    assert StreamFramer().feed(b"\r\n") == [PONG]
    assert StreamFramer().feed(b"\r\n\r\n\r\n\r\n\r\n") == [PING, PING, PONG]


def test_leading_crlf_before_a_message_is_skipped() -> None:
    m = msg()
    assert StreamFramer().feed(b"\r\n" + m) == [PONG, MessageFramed(m)]


def test_split_ping_reports_the_pong_early_and_still_the_ping() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r") == []
    assert framer.feed(b"\n") == [PONG]
    assert framer.feed(b"\r") == []
    assert framer.feed(b"\n") == [PING]
    assert not framer.in_message and framer.buffered == 0


def test_in_message_tracks_partial_messages() -> None:
    framer = StreamFramer()
    m = msg(b"body")
    framer.feed(m[:10])
    assert framer.in_message
    framer.feed(m[10:])
    assert not framer.in_message and framer.buffered == 0


# -- any split of a stream gives the same messages (Hypothesis) -------------------------

_names = st.sampled_from(["Content-Length", "content-length", "l", "L", "CONTENT-length "])
_bodies = st.binary(max_size=60) | st.sampled_from([b"\r\n\r\n", b"a\r\n\r\nb", b"\r\n"])
_messages = st.builds(lambda body, name: msg(body, cl_header=name), _bodies, _names)
_items = st.lists(st.one_of(_messages, st.integers(min_value=0, max_value=5)), max_size=8)


def _expected(items: list[bytes | int]) -> list[FramingEvent]:
    """Messages and pings, no pongs: a run of k CRLFs between messages is k // 2 pings."""
    out: list[FramingEvent] = []
    run = 0
    for item in [*items, b""]:
        if isinstance(item, int):
            run += item
            continue
        out += [PING] * (run // 2)
        run = 0
        if item:
            out.append(MessageFramed(item))
    return out


@settings(max_examples=300, deadline=None)
@given(items=_items, cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12))
def test_any_split_yields_the_same_messages_and_pings(
    items: list[bytes | int], cuts: list[int]
) -> None:
    stream = b"".join(b"\r\n" * i if isinstance(i, int) else i for i in items)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    framer = StreamFramer()
    events = feed_all(framer, chunks)
    assert [e for e in events if not isinstance(e, PongReceived)] == _expected(items)
    assert framer.buffered == 0 and not framer.in_message


@settings(max_examples=50, deadline=None)
@given(items=_items)
def test_byte_at_a_time_equals_all_at_once(items: list[bytes | int]) -> None:
    stream = b"".join(b"\r\n" * i if isinstance(i, int) else i for i in items)
    whole = StreamFramer().feed(stream)
    single = feed_all(StreamFramer(), [stream[i : i + 1] for i in range(len(stream))])
    assert messages(single) == messages(whole)


# -- linear time ------------------------------------------------------------------------


def test_linear_in_small_chunks() -> None:
    """2 MiB in 16-byte chunks: rescanning the buffer on each feed would take many seconds."""
    headers = b"".join(b"X-H%07d: %s\r\n" % (i, b"v" * 48) for i in range(16_000))
    body = b"b" * (1 << 20)
    m = b"MESSAGE sip:a@b SIP/2.0\r\n" + headers + b"l: %d\r\n\r\n" % len(body) + body
    framer = StreamFramer(max_message_size=4 << 20, max_header_size=2 << 20)
    started = time.perf_counter()
    events = feed_all(framer, [m[i : i + 16] for i in range(0, len(m), 16)])
    elapsed = time.perf_counter() - started
    assert events == [MessageFramed(m)]
    assert elapsed < 3.0, elapsed
