"""The Kamailio-style flag strings and the per-leg media profiles."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sipedge.media.flags import RTP_FLAGS, WEBRTC_FLAGS, NgFlags, parse_flags
from sipedge.media.session import MediaProfiles


def test_every_word_kind() -> None:
    got = parse_flags(
        "ICE=force RTP/AVP replace-origin replace=session-connection rtcp-mux-demux"
        " codec-strip-G729 codec-transcode-opus SDES-off direction=internal trust-address"
    )
    assert got.options == {
        "ICE": "force",
        "transport-protocol": "RTP/AVP",
        "replace": ["origin", "session-connection"],
        "rtcp-mux": ["demux"],
        "codec": {"strip": ["G729"], "transcode": ["opus"]},
        "SDES": ["off"],
        "direction": ["internal"],
    }
    assert got.flags == ["trust-address"]


def test_unknown_words_pass_through_in_order() -> None:
    assert parse_flags("zzz codec-frobnicate-X a=b").flags == ["zzz", "codec-frobnicate-X"]
    assert parse_flags("zzz a=b").options == {"a": "b"}


def test_builtin_profiles() -> None:
    web = parse_flags(WEBRTC_FLAGS)
    assert web.options["transport-protocol"] == "UDP/TLS/RTP/SAVPF"
    assert web.options["rtcp-mux"] == ["offer", "require"] and web.options["ICE"] == "force"
    rtp = parse_flags(RTP_FLAGS)
    assert rtp.options["ICE"] == "remove" and rtp.options["rtcp-mux"] == ["demux"]


def test_merge_lists_join_scalars_win() -> None:
    a = NgFlags({"replace": ["origin"], "ICE": "remove", "codec": {"strip": ["a"]}}, ["x"])
    b = NgFlags({"replace": ["zero-address"], "ICE": "force", "codec": {"strip": ["b"]}}, ["x"])
    m = a.merged(b)
    assert m.options == {
        "replace": ["origin", "zero-address"],
        "ICE": "force",
        "codec": {"strip": ["a", "b"]},
    }
    assert m.flags == ["x"]
    assert a.options["replace"] == ["origin"]  # inputs untouched


def test_profiles_from_config_and_received_from() -> None:
    p = MediaProfiles.from_config(extra="ICE=default", rtp="RTP/AVP")
    assert p.rtp.options == {
        "replace": ["origin", "session-connection"],
        "transport-protocol": "RTP/AVP",
        "ICE": "default",
    }
    natted = "v=0\r\nc=IN IP4 192.168.1.20\r\nm=audio 4000 RTP/AVP 0\r\n"
    got = p.for_leg(False, "198.51.100.7", natted)
    assert got.options["received-from"] == ["IP4", "198.51.100.7"]
    same = "v=0\r\nc=IN IP4 198.51.100.7\r\n"
    assert "received-from" not in p.for_leg(False, "198.51.100.7", same).options
    public = "v=0\r\nc=IN IP4 203.0.113.5\r\n"
    assert "received-from" not in p.for_leg(True, "198.51.100.7", public).options


@given(st.text())
def test_parse_never_raises(text: str) -> None:
    parse_flags(text)
