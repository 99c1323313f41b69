"""ng protocol, pure part: cookies, messages, tcp-ng splitting, matching, node specs, health."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipedge.media.ng import (
    CookieSource,
    NgMessage,
    NgStreamSplitter,
    NodeHealth,
    NodeSpec,
    RelayRejected,
    RelayUnavailable,
    ReplyMatcher,
    build_command,
    check_reply,
    encode_message,
    parse_message,
    parse_node_spec,
    pick_weighted,
)
from sipedge.sip.errors import LimitExceeded, ParseError, ProtocolError


def test_cookies_are_unique_and_come_from_the_injected_source() -> None:
    calls: list[int] = []

    def fixed(n: int) -> bytes:
        calls.append(n)
        return bytes(range(n))

    source = CookieSource(fixed)
    cookies = [source.next() for _ in range(1000)]
    assert calls == [6]
    assert cookies[0] == "000102030405_1" and cookies[-1] == "000102030405_1000"
    assert len(set(cookies)) == 1000
    other = CookieSource(random.Random(7).randbytes)
    assert other.next() != CookieSource(random.Random(8).randbytes).next()


def test_message_round_trip_keeps_the_cookie_and_the_order() -> None:
    data = encode_message("5323_1", {"command": "ping"})
    assert data == b"5323_1 d7:command4:pinge"
    assert parse_message(b"5323_1 d6:result4:ponge") == NgMessage("5323_1", {"result": "pong"})
    body = parse_message(b"c d1:z1:a1:a1:be").body
    assert list(body) == ["z", "a"]


@pytest.mark.parametrize(
    "data",
    [b"", b"nocookie", b" d1:ae", b"c ", b"c d1:ae trailing", b"c li1ee", b"c d1:a", b"x" * 200],
)
def test_parse_message_rejects_junk_with_parse_error(data: bytes) -> None:
    with pytest.raises(ParseError):
        parse_message(data)


def test_parse_message_size_limit_and_bad_cookies() -> None:
    with pytest.raises(LimitExceeded):
        parse_message(b"c d1:a" + b"1:b" * 10 + b"e", max_size=20)
    for cookie in ("", "a b", "x" * 200):
        with pytest.raises(ProtocolError):
            encode_message(cookie, {"command": "ping"})


def test_splitter_handles_back_to_back_messages_in_one_read() -> None:
    splitter = NgStreamSplitter()
    got = splitter.feed(b"c2 d6:result4:pongec3 d6:result4:ponge")
    assert [m.cookie for m in got] == ["c2", "c3"]
    assert splitter.buffered == 0


def test_splitter_keeps_a_leading_newline_in_the_cookie_as_rtpengine_does() -> None:
    got = NgStreamSplitter().feed(b"c6 d1:ai1ee\nc7 d1:ai2ee")
    assert [m.cookie for m in got] == ["c6", "\nc7"]


@given(st.lists(st.integers(0, 20), min_size=1, max_size=6), st.data())
def test_splitter_reassembles_any_chunking(sizes: list[int], data: st.DataObject) -> None:
    messages = [
        encode_message(f"k{i}", {"result": "ok", "sdp": "v=0\r\n" * n, "n": n})
        for i, n in enumerate(sizes)
    ]
    stream = b"".join(messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    splitter = NgStreamSplitter()
    got: list[NgMessage] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        got += splitter.feed(stream[start:end])
    assert [m.cookie for m in got] == [f"k{i}" for i in range(len(sizes))]
    assert [m.body["n"] for m in got] == sizes
    assert splitter.buffered == 0


def test_splitter_one_byte_at_a_time() -> None:
    stream = b"a1 d6:result4:pongeb2 d6:result2:ok3:sdp3:v=0e"
    splitter = NgStreamSplitter()
    got = [m for i in range(len(stream)) for m in splitter.feed(stream[i : i + 1])]
    assert [(m.cookie, m.body["result"]) for m in got] == [("a1", "pong"), ("b2", "ok")]


@pytest.mark.parametrize("junk", [b" d1:ae", b"c x", b"c li1ee", b"y" * 200])
def test_splitter_rejects_a_broken_stream(junk: bytes) -> None:
    with pytest.raises(ParseError):
        NgStreamSplitter().feed(junk)


def test_splitter_limit() -> None:
    splitter = NgStreamSplitter(max_message=100)
    with pytest.raises(LimitExceeded):
        splitter.feed(b"c d3:sdp5000:")


def test_reply_matcher() -> None:
    matcher: ReplyMatcher[str] = ReplyMatcher(limit=2)
    matcher.add("a", "waiter-a")
    matcher.add("b", "waiter-b")
    with pytest.raises(ProtocolError):
        matcher.add("a", "again")
    with pytest.raises(RelayUnavailable):
        matcher.add("c", "over the limit")
    assert matcher.match("b") == "waiter-b" and matcher.match("zz") is None
    matcher.discard("b")
    matcher.discard("b")
    assert matcher.match("b") is None and len(matcher) == 1 and list(matcher) == ["waiter-a"]


def test_build_command() -> None:
    body = build_command(
        "offer",
        {"call-id": "c", "from-tag": "f", "via-branch": None},
        flags=["trust-address"],
        options={"ICE": "remove", "flags": ["symmetric"], "unknown-key": "passed"},
    )
    assert body == {
        "command": "offer",
        "call-id": "c",
        "from-tag": "f",
        "ICE": "remove",
        "unknown-key": "passed",
        "flags": ["symmetric", "trust-address"],
    }
    assert list(body)[:3] == ["command", "call-id", "from-tag"]
    with pytest.raises(ProtocolError):
        build_command("offer", {"call-id": "c"}, options={"call-id": "other"})
    with pytest.raises(ProtocolError):
        build_command("offer", {}, options={"flags": "not-a-list"})


def test_check_reply() -> None:
    assert check_reply(NgMessage("c", {"result": "pong"})) == {"result": "pong"}
    ok = {"result": "ok", "warning": "Call-ID not found"}
    assert check_reply(NgMessage("c", dict(ok))) == ok
    with pytest.raises(RelayRejected) as info:
        check_reply(NgMessage("c", {"result": "error", "error-reason": "Unrecognized command"}))
    assert info.value.reason == "Unrecognized command"
    for body in ({}, {"result": "maybe"}, {"result": 1}):
        with pytest.raises(ParseError):
            check_reply(NgMessage("c", body))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "spec", "label"),
    [
        ("udp:127.0.0.1:22222", NodeSpec("udp", "127.0.0.1", 22222), "udp:127.0.0.1:22222"),
        ("udp:relay.example:2223=5", NodeSpec("udp", "relay.example", 2223, 5), None),
        ("udp6:[::1]:2223", NodeSpec("udp", "::1", 2223), "udp:[::1]:2223"),
        ("tcp:10.0.0.1:2224=2", NodeSpec("tcp", "10.0.0.1", 2224, 2), "tcp:10.0.0.1:2224"),
        ("ws://127.0.0.1:8080", NodeSpec("ws", "127.0.0.1", 8080), "ws://127.0.0.1:8080/"),
        ("wss://r.example:443/ng=3", NodeSpec("wss", "r.example", 443, 3, "/ng"), None),
    ],
)
def test_parse_node_spec(text: str, spec: NodeSpec, label: str | None) -> None:
    assert parse_node_spec(text) == spec
    if label is not None:
        assert spec.label == label
        assert parse_node_spec(label).label == label


@pytest.mark.parametrize(
    "text",
    ["", "udp:host", "sctp:h:1", "udp:h:0", "udp:h:70000", "udp:h:1=0", "http://h:1", "udp:h:1=x"],
)
def test_parse_node_spec_rejects(text: str) -> None:
    with pytest.raises(ParseError):
        parse_node_spec(text)


def test_node_health_with_probe() -> None:
    health = NodeHealth(disable_time=60.0, probe=True)
    assert health.available(0.0) and not health.disabled
    health.failed(10.0)
    assert not health.available(11.0)
    health.succeeded(20.0)  # a late reply inside the disabled time changes nothing
    assert not health.available(75.0)  # time is over, but no successful probe yet
    health.succeeded(71.0)
    assert health.available(71.0) and not health.disabled and health.failures == 1


def test_node_health_without_probe() -> None:
    health = NodeHealth(disable_time=5.0, probe=False)
    health.failed(1.0)
    assert not health.available(5.9)
    assert health.available(6.0)


def test_pick_weighted() -> None:
    assert pick_weighted([("a", 1)], 0.99) == "a"
    assert pick_weighted([("a", 1), ("b", 3)], 0.0) == "a"
    assert pick_weighted([("a", 1), ("b", 3)], 0.25) == "b"
    rng = random.Random(1)
    counts = Counter(pick_weighted([("a", 1), ("b", 3)], rng.random()) for _ in range(4000))
    assert 0.2 < counts["a"] / 4000 < 0.3
    with pytest.raises(ProtocolError):
        pick_weighted([], 0.5)
