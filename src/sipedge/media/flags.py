"""rtpengine flags as operators write them (Kamailio's ``rtpengine_manage`` string syntax),
and the built-in profile of each kind of leg.

``parse_flags("ICE=force RTP/AVP replace-origin rtcp-mux-demux codec-strip-G729 foo")``
gives the ng dictionary entries ``{"ICE": "force", "transport-protocol": "RTP/AVP",
"replace": ["origin"], "rtcp-mux": ["demux"], "codec": {"strip": ["G729"]}}`` and the plain
flag list ``["foo"]``: words sipedge does not know pass through to rtpengine unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .bencode import Encodable

#: ng keys whose value is a list: ``key=value`` and ``key-value`` both append to it.
LIST_KEYS = ("replace", "rtcp-mux", "SDES", "OSRTP", "T.38", "supports", "direction")
#: ``codec-<action>-<name>`` words (rtpengine's codec manipulation).
CODEC_ACTIONS = ("strip", "offer", "transcode", "mask", "accept", "except", "consume", "set")
TRANSPORTS = (
    "RTP/AVP",
    "RTP/AVPF",
    "RTP/SAVP",
    "RTP/SAVPF",
    "UDP/TLS/RTP/SAVP",
    "UDP/TLS/RTP/SAVPF",
)


@dataclass(slots=True)
class NgFlags:
    """ng options (dictionary entries) and plain flags, ready for ``offer``/``answer``."""

    options: dict[str, Encodable] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)

    def merged(self, other: NgFlags) -> NgFlags:
        """``other`` applied on top of this: its scalar keys win, lists are joined."""
        out = NgFlags(dict(self.options), list(self.flags))
        for key, value in other.options.items():
            old = out.options.get(key)
            if isinstance(old, list) and isinstance(value, list):
                out.options[key] = old + [v for v in value if v not in old]
            elif isinstance(old, dict) and isinstance(value, dict):
                out.options[key] = _merge_codec(old, value)
            else:
                out.options[key] = value
        out.flags += [f for f in other.flags if f not in out.flags]
        return out


def parse_flags(text: str) -> NgFlags:
    """Parse a space-separated flag string (see the module text); never raises."""
    out = NgFlags()
    for word in text.split():
        _apply(out, word)
    return out


def _apply(out: NgFlags, word: str) -> None:
    if word in TRANSPORTS:
        out.options["transport-protocol"] = word
        return
    key, eq, value = word.partition("=")
    if eq and key in LIST_KEYS:
        _append(out.options, key, value)
    elif eq:
        out.options[key] = value
    elif word.startswith("codec-") and word.count("-") >= 2:
        _, action, name = word.split("-", 2)
        if action in CODEC_ACTIONS:
            codec = out.options.setdefault("codec", {})
            assert isinstance(codec, dict)
            _append(codec, action, name)
        else:
            out.flags.append(word)
    elif (prefix := _list_prefix(word)) is not None:
        _append(out.options, prefix, word[len(prefix) + 1 :])
    else:
        out.flags.append(word)


def _list_prefix(word: str) -> str | None:
    for key in LIST_KEYS:
        if word.startswith(key + "-") and len(word) > len(key) + 1:
            return key
    return None


def _append(target: dict[str, Encodable], key: str, value: str) -> None:
    current = target.setdefault(key, [])
    if isinstance(current, list) and value not in current:
        current.append(value)
    elif not isinstance(current, list):
        target[key] = [current, value]


def _merge_codec(
    old: Mapping[str, Encodable], new: Mapping[str, Encodable]
) -> dict[str, Encodable]:
    out: dict[str, Encodable] = dict(old)
    for key, value in new.items():
        prev = out.get(key)
        if isinstance(prev, list) and isinstance(value, list):
            out[key] = prev + [v for v in value if v not in prev]
        else:
            out[key] = value
    return out


#: Towards a browser (WS/WSS): DTLS-SRTP with ICE and rtcp-mux (RFC 8827, RFC 8834).
WEBRTC_FLAGS = (
    "UDP/TLS/RTP/SAVPF ICE=force DTLS=passive rtcp-mux-offer rtcp-mux-require SDES-off generate-mid"
)
#: Towards a phone, PBX or trunk: plain RTP, no ICE, RTCP on its own port.
RTP_FLAGS = "RTP/AVP ICE=remove DTLS=off rtcp-mux-demux SDES-off"
#: On every leg: our address in o= and the session c= line.
COMMON_FLAGS = "replace-origin replace-session-connection"
