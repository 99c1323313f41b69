"""The message capture ring: bounds by count and bytes, the lazy Call-ID index."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sipedge.mgmt.capture import Capture, call_id_of, first_line_of
from sipedge.transport.base import Flow

FLOW = Flow("udp", ("127.0.0.1", 5060), ("192.0.2.1", 5080))


def msg(call_id: str, line: str = "OPTIONS sip:x@example.com SIP/2.0", pad: int = 0) -> bytes:
    return (
        f"{line}\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nCall-ID: {call_id}\r\n"
        f"X-Pad: {'x' * pad}\r\nContent-Length: 0\r\n\r\n"
    ).encode()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_call_id_and_first_line_are_read_from_the_bytes() -> None:
    assert call_id_of(msg("abc@host")) == "abc@host"
    assert call_id_of(b"SIP/2.0 200 OK\r\ni:  compact@h \r\n\r\n") == "compact@h"  # RFC 3261 §7.3.3
    assert call_id_of(b"INVITE sip:x SIP/2.0\r\nCALL-ID: upper\r\n\r\nCall-ID: body") == "upper"
    assert call_id_of(b"garbage without headers") == ""
    assert call_id_of(b"X\r\n\r\nCall-ID: only-in-body") == ""
    assert first_line_of(msg("a")) == "OPTIONS sip:x@example.com SIP/2.0"
    assert first_line_of(b"\xff\xfe no line end") == "\ufffd\ufffd no line end"


def test_messages_of_a_call_in_order_with_direction_and_addresses() -> None:
    cap = Capture(100, 100_000, Clock())
    cap.add(True, FLOW, msg("c1", "INVITE sip:b@x SIP/2.0"))
    cap.add(False, FLOW, msg("c2"))
    cap.add(False, FLOW, msg("c1", "SIP/2.0 200 OK"))
    got = cap.messages("c1")
    assert [m.first_line for m in got] == ["INVITE sip:b@x SIP/2.0", "SIP/2.0 200 OK"]
    assert (got[0].src, got[0].dst) == (FLOW.remote, FLOW.local)
    assert (got[1].src, got[1].dst) == (FLOW.local, FLOW.remote)
    assert got[0].time < got[1].time
    assert cap.messages("nope") == []


def test_count_bound_evicts_oldest_indexed_or_not() -> None:
    cap = Capture(3, 1_000_000)
    for i in range(3):
        cap.add(True, FLOW, msg(f"c{i}"))
    assert [c.call_id for c in cap.calls()] and len(cap) == 3  # c0..c2 now indexed
    cap.add(True, FLOW, msg("c3"))  # evicts an indexed entry
    cap.add(True, FLOW, msg("c4"))
    assert len(cap) == 3 and cap.evicted == 2
    assert cap.messages("c0") == [] and cap.messages("c1") == []
    assert {c.call_id for c in cap.calls()} == {"c2", "c3", "c4"}
    for i in range(5, 9):  # evicts entries that were never indexed
        cap.add(True, FLOW, msg(f"c{i}"))
    assert {c.call_id for c in cap.calls()} == {"c6", "c7", "c8"}


def test_byte_bound_and_a_message_larger_than_the_bound() -> None:
    one = len(msg("c0", pad=100))
    cap = Capture(1000, 3 * one)
    for i in range(5):
        cap.add(True, FLOW, msg(f"c{i}", pad=100))
    assert len(cap) == 3 and cap.size == 3 * one
    cap.add(True, FLOW, msg("huge", pad=10 * one))
    assert len(cap) == 0 and cap.size == 0


def test_disabled_capture_keeps_nothing() -> None:
    cap = Capture(0, 1000)
    cap.add(True, FLOW, msg("c"))
    assert len(cap) == 0 and cap.calls() == []


def test_calls_are_most_recent_first_filtered_and_limited() -> None:
    cap = Capture(100, 100_000, Clock())
    cap.add(True, FLOW, msg("old", "INVITE sip:alice@x SIP/2.0"))
    cap.add(True, FLOW, msg("new", "REGISTER sip:x SIP/2.0"))
    cap.add(True, FLOW, msg("old", "BYE sip:alice@x SIP/2.0"))
    cap.add(True, FLOW, b"no call id at all\r\n\r\n")
    calls = cap.calls()
    assert [c.call_id for c in calls] == ["old", "new"]  # no "" entry
    assert calls[0].messages == 2 and calls[0].first_line.startswith("INVITE")
    assert [c.call_id for c in cap.calls(query="REGISTER")] == ["new"]
    assert [c.call_id for c in cap.calls(query="ew")] == ["new"]
    assert len(cap.calls(limit=1)) == 1


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 300), st.booleans()),
        max_size=60,
    ),
    st.integers(1, 10),
    st.integers(200, 3000),
)
def test_ring_matches_a_model(ops: list[tuple[str, int, bool]], max_n: int, max_b: int) -> None:
    cap = Capture(max_n, max_b)
    model: list[tuple[str, bytes]] = []
    for cid, pad, query in ops:
        data = msg(cid, pad=pad)
        cap.add(True, FLOW, data)
        model.append((cid, data))
        while model and (len(model) > max_n or sum(len(d) for _, d in model) > max_b):
            model.pop(0)
        if query:  # index part of the ring now, the rest later
            cap.calls()
        assert len(cap) == len(model) <= max_n
        assert cap.size == sum(len(d) for _, d in model) <= max_b
    for cid in "abcd":
        assert [m.data for m in cap.messages(cid)] == [d for c, d in model if c == cid]
