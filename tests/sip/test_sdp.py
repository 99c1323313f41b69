"""Tests for sipedge.sip.sdp (RFC 8866 / RFC 4566 and the ICE/DTLS/SDES attributes)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipedge.sip.errors import ParseError, ProtocolError
from sipedge.sip.sdp import (
    Attribute,
    Candidate,
    Connection,
    Crypto,
    Fingerprint,
    Group,
    Media,
    Origin,
    Rtcp,
    SessionDescription,
    parse_sdp,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "rfc4475"


def crlf(*lines: str) -> bytes:
    return "".join(f"{ln}\r\n" for ln in lines).encode()


AUDIO_OFFER = crlf(
    "v=0",
    "o=alice 2890844526 2890844526 IN IP4 192.0.2.10",
    "s=-",
    "c=IN IP4 192.0.2.10",
    "t=0 0",
    "m=audio 49170 RTP/AVP 0 8 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-15",
    "a=ptime:20",
    "a=sendrecv",
    "a=rtcp:49171 IN IP4 192.0.2.10",
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 "
    "inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32;inline:QUJD|2^20|2:32 "
    "KDR=1 UNENCRYPTED_SRTCP",
    "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20",
)

FINGERPRINT = (
    "sha-256 19:E2:1C:3B:4B:9F:81:E6:B8:5C:F4:A5:A8:D8:73:04:"
    "BB:05:2F:70:9F:04:A9:0E:05:E9:26:33:E8:70:88:A2"
)

WEBRTC_OFFER = crlf(
    "v=0",
    "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0 1 2",
    "a=extmap-allow-mixed",
    "a=msid-semantic: WMS 5y2K5i6jDqQnK6z3",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
    "c=IN IP4 0.0.0.0",
    "a=rtcp:9 IN IP4 0.0.0.0",
    "a=candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 10.0.0.5 "
    "rport 46154 generation 0 ufrag EsAw network-cost 999",
    "a=candidate:1467250027 1 udp 2122260223 10.0.0.5 46154 typ host generation 0",
    "a=candidate:2999745851 1 tcp 1518280447 10.0.0.5 9 typ host tcptype active generation 0",
    "a=ice-ufrag:EsAw",
    "a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y",
    "a=ice-options:trickle",
    f"a=fingerprint:{FINGERPRINT}",
    "a=setup:actpass",
    "a=mid:0",
    "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "a=sendrecv",
    "a=msid:5y2K5i6jDqQnK6z3 0c6b7e40-1d6f-4a8e-9b8e-1f2a3b4c5d6e",
    "a=rtcp-mux",
    "a=rtpmap:111 opus/48000/2",
    "a=rtcp-fb:111 transport-cc",
    "a=fmtp:111 minptime=10;useinbandfec=1",
    "a=rtpmap:126 telephone-event/8000",
    "a=ssrc:3735928559 cname:4TOk42mSjXCkVIa6",
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97",
    "c=IN IP4 0.0.0.0",
    "a=rtcp:9 IN IP4 0.0.0.0",
    "a=ice-ufrag:EsAw",
    "a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y",
    "a=ice-options:trickle",
    f"a=fingerprint:{FINGERPRINT}",
    "a=setup:actpass",
    "a=mid:1",
    "a=recvonly",
    "a=rtcp-mux",
    "a=rtcp-rsize",
    "a=rtpmap:96 VP8/90000",
    "a=rtpmap:97 rtx/90000",
    "a=fmtp:97 apt=96",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "c=IN IP4 0.0.0.0",
    "a=ice-ufrag:EsAw",
    "a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y",
    "a=ice-options:trickle",
    f"a=fingerprint:{FINGERPRINT}",
    "a=setup:actpass",
    "a=mid:2",
    "a=sctp-port:5000",
    "a=max-message-size:262144",
)


def sdp01_body() -> bytes:
    message = (DATA / "sdp01.dat").read_bytes()
    return message.split(b"\r\n\r\n", 1)[1]


# --- parsing what real peers send ---------------------------------------------------


def test_audio_offer() -> None:
    sd = parse_sdp(AUDIO_OFFER)
    assert sd.to_bytes() == AUDIO_OFFER
    assert bytes(sd) == AUDIO_OFFER
    assert sd.origin == Origin("alice", "2890844526", "2890844526", "IN", "IP4", "192.0.2.10")
    assert sd.connection == Connection("IN", "IP4", "192.0.2.10")
    (m,) = sd.media
    assert m.media == Media("audio", 49170, None, "RTP/AVP", ("0", "8", "101"))
    assert m.connection is None
    assert m.effective_connection == Connection("IN", "IP4", "192.0.2.10")
    assert m.direction == "sendrecv"
    assert m.rtcp == Rtcp(49171, "IN", "IP4", "192.0.2.10")
    assert not m.rtcp_mux
    assert m.attribute_values("rtpmap") == [
        "0 PCMU/8000",
        "8 PCMA/8000",
        "101 telephone-event/8000",
    ]
    assert m.attribute("ptime") == "20"
    assert m.attribute("sendrecv") == ""
    assert m.attribute("nope") is None
    assert m.attributes()[0] == Attribute("rtpmap", "0 PCMU/8000")
    first, second = m.crypto()
    assert first == Crypto(
        1,
        "AES_CM_128_HMAC_SHA1_80",
        ("inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32", "inline:QUJD|2^20|2:32"),
        ("KDR=1", "UNENCRYPTED_SRTCP"),
    )
    assert second.tag == 2 and second.session_params == ()
    assert m.ice_ufrag is None and m.candidates() == [] and m.setup is None


def test_webrtc_offer() -> None:
    sd = parse_sdp(WEBRTC_OFFER)
    assert sd.to_bytes() == WEBRTC_OFFER
    assert sd.connection is None
    assert sd.groups() == [Group("BUNDLE", ("0", "1", "2"))]
    assert sd.bundle_mids() == ("0", "1", "2")
    assert sd.attribute("msid-semantic") == " WMS 5y2K5i6jDqQnK6z3"
    audio, video, data = sd.media
    assert [m.mid for m in sd.media] == ["0", "1", "2"]
    assert sd.media_by_mid("1") is video and sd.media_by_mid("9") is None
    assert data.media == Media("application", 9, None, "UDP/DTLS/SCTP", ("webrtc-datachannel",))
    assert audio.ice_ufrag == "EsAw" and audio.ice_pwd == "bP+XJMM09aR8AiX1jdukzR6Y"
    assert audio.setup == "actpass"
    assert audio.fingerprints() == [Fingerprint("sha-256", FINGERPRINT.split()[1])]
    assert audio.rtcp_mux and audio.rtcp == Rtcp(9, "IN", "IP4", "0.0.0.0")
    assert audio.direction == "sendrecv" and video.direction == "recvonly"
    assert data.direction == "sendrecv"
    srflx, host, tcp = audio.candidates()
    assert srflx == Candidate(
        "842163049",
        1,
        "udp",
        1677729535,
        "203.0.113.7",
        46154,
        "srflx",
        "10.0.0.5",
        46154,
        (("generation", "0"), ("ufrag", "EsAw"), ("network-cost", "999")),
    )
    assert host.raddr is None and host.extensions == (("generation", "0"),)
    assert tcp.transport == "tcp" and dict(tcp.extensions)["tcptype"] == "active"
    for m in sd.media:
        for c in m.candidates():
            assert f"a=candidate:{c.to_value()}\r\n".encode() in WEBRTC_OFFER
    assert not sd.ice_lite


def test_rfc4475_sdp01_body() -> None:
    body = sdp01_body()
    sd = parse_sdp(body)
    assert sd.to_bytes() == body
    assert sd.origin.address == "192.0.2.5"
    assert [(m.media.media, m.media.port, m.media.formats) for m in sd.media] == [
        ("audio", 49217, ("0", "12")),
        ("video", 3227, ("31",)),
    ]
    assert sd.media[1].attribute("rtpmap") == "31 LPC"
    assert sd.media[0].effective_connection == Connection("IN", "IP4", "192.0.2.5")


def test_session_level_fallbacks() -> None:
    sd = parse_sdp(
        crlf(
            "v=0",
            "o=- 1 1 IN IP6 2001:db8::1",
            "s=x",
            "c=IN IP6 2001:db8::1",
            "t=0 0",
            "a=ice-lite",
            "a=ice-ufrag:sess",
            "a=ice-pwd:sesspwd",
            "a=fingerprint:SHA-1 AA:BB",
            "a=setup:passive",
            "a=sendonly",
            "m=audio 5004/2 RTP/AVP 0",
            "a=ice-ufrag:media",
            "m=audio 5006 RTP/AVP 0",
            "a=inactive",
            "a=fingerprint:sha-256 CC:DD",
        )
    )
    first, second = sd.media
    assert sd.ice_lite
    assert first.media.port_count == 2
    assert first.ice_ufrag == "media" and first.ice_pwd == "sesspwd"
    assert second.ice_ufrag == "sess"
    assert first.effective_fingerprints() == [Fingerprint("sha-1", "AA:BB")]
    assert second.effective_fingerprints() == [Fingerprint("sha-256", "CC:DD")]
    assert first.setup == "passive"
    assert first.direction == "sendonly" and second.direction == "inactive"
    assert first.effective_connection == Connection("IN", "IP6", "2001:db8::1")


def test_multicast_connection_and_unknown_lines_kept() -> None:
    data = crlf(
        "v=0",
        "o=jdoe 3724394400 3724394405 IN IP4 198.51.100.1",
        "s=Call to John Smith",
        "i=SDP Offer #1",
        "u=http://www.jdoe.example.com/home.html",
        "e=Jane Doe <jane@jdoe.example.com>",
        "p=+1 617 555-6011",
        "c=IN IP4 233.252.0.1/127/3",
        "b=AS:2000",
        "t=3724394400 3724398000",
        "r=7d 1h 0 25h",
        "z=2882844526 -1h 2898848070 0",
        "k=prompt",
        "x=unknown line type kept",
        "a=recvonly",
        "m=audio 49170 RTP/AVP 0",
        "i=media title",
        "b=TIAS:64000",
        "m=video 51372 RTP/AVP 99 100",
        "a=rtpmap:99 h263-1998/90000",
    )
    sd = parse_sdp(data)
    assert sd.to_bytes() == data
    assert sd.connection == Connection("IN", "IP4", "233.252.0.1", "/127/3")
    assert sd.connection.to_value() == "IN IP4 233.252.0.1/127/3"
    assert [ln.kind for ln in sd.lines][-3:] == ["k", "x", "a"]


def test_bare_lf_and_missing_final_newline_are_tolerated() -> None:
    lf = AUDIO_OFFER.replace(b"\r\n", b"\n")
    assert parse_sdp(lf).to_bytes() == AUDIO_OFFER
    assert parse_sdp(AUDIO_OFFER[:-2]).to_bytes() == AUDIO_OFFER
    assert parse_sdp(AUDIO_OFFER + b"\r\n\r\n").to_bytes() == AUDIO_OFFER
    assert parse_sdp(AUDIO_OFFER.decode()).to_bytes() == AUDIO_OFFER


def test_non_utf8_bytes_survive() -> None:
    data = crlf("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "t=0 0").replace(
        b"s=-", b"s=caf\xe9 \xff"
    )
    assert parse_sdp(data).to_bytes() == data


# --- edits ----------------------------------------------------------------------------


def changed_lines(before: bytes, after: bytes) -> set[str]:
    return set(after.decode().split("\r\n")) ^ set(before.decode().split("\r\n"))


def test_edit_connection_port_origin_touches_only_those_lines() -> None:
    sd = parse_sdp(AUDIO_OFFER)
    sd.set_connection("203.0.113.9")
    sd.set_origin_address("203.0.113.9")
    sd.media[0].set_port(40000)
    out = sd.to_bytes()
    assert changed_lines(AUDIO_OFFER, out) == {
        "c=IN IP4 192.0.2.10",
        "c=IN IP4 203.0.113.9",
        "o=alice 2890844526 2890844526 IN IP4 192.0.2.10",
        "o=alice 2890844526 2890844526 IN IP4 203.0.113.9",
        "m=audio 49170 RTP/AVP 0 8 101",
        "m=audio 40000 RTP/AVP 0 8 101",
    }
    assert len(out.split(b"\r\n")) == len(AUDIO_OFFER.split(b"\r\n"))
    assert parse_sdp(out).media[0].media.port == 40000


def test_set_connection_inserts_in_rfc_order_and_ipv6() -> None:
    sd = parse_sdp(WEBRTC_OFFER)
    sd.set_connection("2001:db8::7")
    assert [ln.kind for ln in sd.lines[:5]] == ["v", "o", "s", "c", "t"]
    assert sd.connection == Connection("IN", "IP6", "2001:db8::7")
    data = parse_sdp(
        crlf(
            "v=0",
            "o=- 1 1 IN IP4 a",
            "s=-",
            "t=0 0",
            "m=audio 1 RTP/AVP 0",
            "i=title",
            "b=AS:1",
            "a=x",
        )
    )
    data.media[0].set_connection("192.0.2.3")
    assert [ln.kind for ln in data.media[0].lines] == ["m", "i", "c", "b", "a"]
    multicast = parse_sdp(
        crlf("v=0", "o=- 1 1 IN IP4 a", "s=-", "c=IN IP4 233.252.0.1/127", "t=0 0")
    )
    multicast.set_connection("192.0.2.4", "IP4")
    assert multicast.connection == Connection("IN", "IP4", "192.0.2.4")


def test_add_remove_attributes_and_direction() -> None:
    sd = parse_sdp(WEBRTC_OFFER)
    audio = sd.media[0]
    assert audio.remove_attributes("candidate") == 3
    audio.add_attribute(
        "candidate",
        Candidate("1", 1, "udp", 7, "198.51.100.2", 5000, "relay", "0.0.0.0", 0).to_value(),
    )
    audio.add_attribute("end-of-candidates")
    assert audio.candidates()[0].address == "198.51.100.2"
    assert audio.lines[-1].value == "end-of-candidates"
    assert audio.remove_attributes("rtpmap", "126 telephone-event/8000") == 1
    assert audio.attribute_values("rtpmap") == ["111 opus/48000/2"]
    position = [ln.value for ln in audio.lines].index("sendrecv")
    audio.set_direction("inactive")
    assert audio.lines[position].value == "inactive" and audio.direction == "inactive"
    sd.media[2].set_direction("sendonly")
    assert sd.media[2].lines[-1].value == "sendonly"
    sd.add_attribute("ice-lite")
    assert sd.lines[-1].value == "ice-lite" and sd.ice_lite
    out = parse_sdp(sd.to_bytes())
    assert out.media[0].direction == "inactive" and out.media[2].direction == "sendonly"
    assert len(out.media[0].candidates()) == 1


def test_repeated_direction_last_wins_and_set_direction_collapses() -> None:
    sd = parse_sdp(crlf(*GOOD, "a=sendonly", "a=rtcp-mux", "a=recvonly"))
    m = sd.media[0]
    assert m.own_direction == "recvonly" and m.direction == "recvonly"
    m.set_direction("sendrecv")
    assert [ln.value for ln in m.lines[1:]] == ["sendrecv", "rtcp-mux"]


@pytest.mark.parametrize(
    "call",
    [
        lambda sd: sd.add_attribute("a b"),
        lambda sd: sd.add_attribute("x:y"),
        lambda sd: sd.add_attribute(""),
        lambda sd: sd.add_attribute("x", "a\r\nm=evil"),
        lambda sd: sd.set_connection("1.2.3.4\n"),
        lambda sd: sd.set_direction("both"),
        lambda sd: sd.media[0].set_port(70000),
        lambda sd: sd.media[0].set_port(-1),
    ],
)
def test_bad_edits_are_protocol_errors(call: object) -> None:
    sd = parse_sdp(AUDIO_OFFER)
    with pytest.raises(ProtocolError):
        call(sd)  # type: ignore[operator]
    assert sd.to_bytes() == AUDIO_OFFER


def test_value_types_round_trip() -> None:
    assert Media.parse("audio 0 RTP/AVP 0").to_value() == "audio 0 RTP/AVP 0"
    assert Media.parse("video 5000/2 RTP/AVP 31").to_value() == "video 5000/2 RTP/AVP 31"
    assert Attribute.parse("fmtp:101 a:b").value == "101 a:b"
    assert Attribute.parse("fmtp:").to_value() == "fmtp:"
    assert Attribute.parse("rtcp-mux") == Attribute("rtcp-mux")
    assert Rtcp.parse("53020") == Rtcp(53020)
    assert isinstance(SessionDescription([]).media, list)


# --- malformed input ------------------------------------------------------------------

GOOD = ["v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "t=0 0", "m=audio 4000 RTP/AVP 0"]


@pytest.mark.parametrize(
    ("lines", "fault"),
    [
        ([], "v="),
        (GOOD[1:], "v="),
        (["v=1", *GOOD[1:]], "version"),
        ([GOOD[0], "o=- 1 IN IP4 x", *GOOD[2:]], "origin"),
        ([GOOD[0], *GOOD[2:]], "o="),
        ([*GOOD[:2], *GOOD[3:]], "s="),
        ([*GOOD[:3], GOOD[4]], "t="),
        ([*GOOD, "v=0"], "media section"),
        ([*GOOD, "o=- 1 1 IN IP4 x"], "media section"),
        ([*GOOD[:4], "m=audio 70000 RTP/AVP 0"], "port"),
        ([*GOOD[:4], "m=audio 4000/0 RTP/AVP 0"], "port count"),
        ([*GOOD[:4], "m=audio x RTP/AVP 0"], "port"),
        ([*GOOD[:4], "m=audio 4000"], "media line"),
        ([*GOOD, "c=IN IP4"], "connection"),
        ([*GOOD[:3], "c=IN IP4 /1", *GOOD[3:]], "connection"),
        ([*GOOD[:3], "", *GOOD[3:]], "line 4"),
        ([*GOOD, "a"], "line 6"),
        ([*GOOD, "A=x"], "line 6"),
        ([*GOOD, " a=x"], "line 6"),
        ([*GOOD, "a=x\x00"], "NUL"),
        ([*GOOD, "a=x\ry"], "CR"),
        ([*GOOD[:2], "s=-", "s=again", *GOOD[3:]], "s="),
    ],
)
def test_malformed_sdp(lines: list[str], fault: str) -> None:
    with pytest.raises(ParseError) as err:
        parse_sdp(crlf(*lines))
    assert fault in err.value.reason
    assert err.value.status_hint == 400


@pytest.mark.parametrize(
    ("attribute", "getter"),
    [
        ("candidate:1 1 udp 5 1.2.3.4 99999 typ host", lambda m: m.candidates()),
        ("candidate:1 1 udp 5 1.2.3.4 9 type host", lambda m: m.candidates()),
        ("candidate:1 x udp 5 1.2.3.4 9 typ host", lambda m: m.candidates()),
        ("candidate:1 1 udp 5 1.2.3.4 9 typ host raddr", lambda m: m.candidates()),
        ("candidate:1 1 udp 5 1.2.3.4 9 typ host rport x", lambda m: m.candidates()),
        ("candidate:1 1 udp", lambda m: m.candidates()),
        ("crypto:1 AES", lambda m: m.crypto()),
        ("crypto:x AES inline:k", lambda m: m.crypto()),
        ("crypto:1234567890 AES inline:k", lambda m: m.crypto()),
        ("fingerprint:sha-256", lambda m: m.fingerprints()),
        ("rtcp:9 IN IP4", lambda m: m.rtcp),
        ("rtcp:", lambda m: m.rtcp),
        ("rtcp:x", lambda m: m.rtcp),
    ],
)
def test_malformed_attributes_raise_parse_error_on_access(attribute: str, getter: object) -> None:
    sd = parse_sdp(crlf(*GOOD, f"a={attribute}"))
    with pytest.raises(ParseError):
        getter(sd.media[0])  # type: ignore[operator]


def test_malformed_group_raises_parse_error() -> None:
    with pytest.raises(ParseError):
        parse_sdp(crlf(*GOOD[:4], "a=group:")).groups()


def _touch_everything(sd: SessionDescription) -> None:
    sd.to_bytes()
    _ = (sd.origin, sd.connection, sd.ice_lite, sd.bundle_mids(), sd.attributes())
    for m in sd.media:
        _ = (m.media, m.effective_connection, m.direction, m.mid, m.ice_ufrag, m.ice_pwd)
        _ = (m.candidates(), m.effective_fingerprints(), m.setup, m.crypto(), m.rtcp)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_parse_error(data: bytes) -> None:
    with contextlib.suppress(ParseError):
        _touch_everything(parse_sdp(b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\n" + data))


KEYS = ["candidate:", "crypto:", "fingerprint:", "rtcp:", "ice-ufrag:", "setup:", "mid:"]


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(WEBRTC_OFFER)), st.binary(max_size=12), st.integers(0, 12))
def test_mutated_webrtc_offer_raises_only_parse_error(at: int, insert: bytes, cut: int) -> None:
    data = WEBRTC_OFFER[:at] + insert + WEBRTC_OFFER[at + cut :]
    with contextlib.suppress(ParseError):
        _touch_everything(parse_sdp(data))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(KEYS), st.text(" 0123456789abcIPN.:/", max_size=40))))
def test_garbage_attribute_values_raise_only_parse_error(attrs: list[tuple[str, str]]) -> None:
    sd = parse_sdp(crlf(*GOOD, "a=group:BUNDLE 0", *(f"a={k}{v}" for k, v in attrs)))
    with contextlib.suppress(ParseError):
        _touch_everything(sd)


line_text = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\x00"), max_size=30
)
token = st.text("abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=10)
attribute = st.one_of(
    token,
    st.builds(lambda n, v: f"{n}:{v}", token, line_text),
    st.builds(
        lambda f, p: f"candidate:{f} 1 udp 2 192.0.2.1 {p} typ host", token, st.integers(0, 65535)
    ),
)
media_line = st.builds(
    lambda kind, port, formats: f"m={kind} {port} RTP/AVP {' '.join(formats)}",
    st.sampled_from(["audio", "video", "application", "text"]),
    st.integers(0, 65535),
    st.lists(token, min_size=1, max_size=4),
)
media_section = st.builds(
    lambda m, c, attrs: [m, *c, *(f"a={a}" for a in attrs)],
    media_line,
    st.lists(st.sampled_from(["c=IN IP4 192.0.2.1", "c=IN IP6 ::1"]), max_size=1),
    st.lists(attribute, max_size=5),
)
sdp_lines = st.builds(
    lambda name, sess_attrs, media: [
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.1",
        f"s={name}",
        "t=0 0",
        *(f"a={a}" for a in sess_attrs),
        *(ln for sec in media for ln in sec),
    ],
    line_text,
    st.lists(attribute, max_size=5),
    st.lists(media_section, max_size=4),
)


@settings(max_examples=200, deadline=None)
@given(sdp_lines)
def test_generated_sdp_round_trips(lines: list[str]) -> None:
    data = crlf(*lines)
    sd = parse_sdp(data)
    assert sd.to_bytes() == data
    assert parse_sdp(data.replace(b"\r\n", b"\n")).to_bytes() == data
    assert len(sd.media) == sum(ln.startswith("m=") for ln in lines)
    assert [str(ln) for ln in sd.all_lines()] == lines
    # Generated attribute values may be malformed (e.g. a bare "a=rtcp"): reading them
    # may raise ParseError, and nothing else.
    with contextlib.suppress(ParseError):
        _touch_everything(sd)


@settings(max_examples=100, deadline=None)
@given(sdp_lines, st.integers(0, 65535))
def test_generated_sdp_edit_changes_only_the_touched_line(lines: list[str], port: int) -> None:
    sd = parse_sdp(crlf(*lines))
    if not sd.media:
        return
    sd.media[-1].set_port(port)
    out = [str(ln) for ln in sd.all_lines()]
    diff = [i for i, (a, b) in enumerate(zip(lines, out, strict=True)) if a != b]
    last_m = max(i for i, ln in enumerate(lines) if ln.startswith("m="))
    assert diff in ([], [last_m])
    assert sd.media[-1].media.port == port
