"""The ``[media]`` (rtpengine) and ``[dialog]`` sections of the configuration."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from ..sip.errors import ParseError
from .base import Section, setting
from .values import Invalid, Items


def _node_specs(items: tuple[str, ...]) -> tuple[str, ...]:
    from ..media.ng import parse_node_spec

    for text in items:
        try:
            parse_node_spec(text)
        except ParseError as exc:
            raise Invalid(
                exc.reason,
                'write nodes as "udp:HOST:PORT", "tcp:HOST:PORT" or "ws://HOST:PORT/", '
                'with an optional "=WEIGHT"',
            ) from None
    return items


NodeList = Annotated[Items[str], AfterValidator(_node_specs)]


class RelaySet(Section):
    """A named set of rtpengine nodes, ``[[media.sets]]``."""

    name: str = Field(min_length=1, description="Set name, used by routes.")
    nodes: NodeList = Field(min_length=1, description="Nodes of the set, as in media.nodes.")


class MediaConfig(Section):
    """Media relay through rtpengine's ng protocol (offer, answer, delete per call)."""

    enabled: bool = setting(False, "Relay the media of every call with SDP through rtpengine.")
    nodes: NodeList = setting(
        ("udp:127.0.0.1:22222",),
        'Default set: "udp:H:P", "tcp:H:P" (--listen-tcp-ng), "ws://H:P/" (--listen-http).',
    )
    sets: Items[RelaySet] = setting((), "More node sets, [[media.sets]] (name, nodes).")
    timeout: float = setting(2.0, "Seconds one ng command may take, resends included.", gt=0.0)
    retransmit: float = setting(0.5, "Seconds between UDP resends (same cookie).", gt=0.0)
    disable_time: float = setting(60.0, "Seconds a node that failed gets no new calls.", ge=0.0)
    ping_interval: float = setting(10.0, "Seconds between health pings; 0 = none.", ge=0.0)
    flags: str = setting(
        "", 'Extra ng flags for every offer and answer, Kamailio style ("ICE=remove foo").'
    )
    webrtc_flags: str = setting(
        "",
        "Flags that replace the built-in ones for a leg towards a WS/WSS client.",
    )
    rtp_flags: str = setting(
        "", "Flags that replace the built-in ones for a leg towards a UDP/TCP/TLS peer."
    )

    @model_validator(mode="after")
    def _set_names_unique(self) -> MediaConfig:
        names = [s.name for s in self.sets]
        for i, name in enumerate(names):
            if name == "default" or name in names[:i]:
                raise Invalid(
                    f'set name "{name}" is used twice ("default" is media.nodes)',
                    "give every [[media.sets]] table its own name",
                    key=f"sets[{i}].name",
                )
        return self


class DialogConfig(Section):
    """Dialog tracking: call limits and timeouts."""

    max_call_duration: float = setting(
        0.0, "Seconds an answered call may last before BYE both ways; 0 = no limit.", ge=0.0
    )
    setup_timeout: float = setting(
        300.0, "Seconds an unanswered call is remembered at most.", gt=0.0
    )
    idle_timeout: float = setting(
        43200.0, "Seconds an answered call is remembered without a BYE (no hangup).", gt=0.0
    )
