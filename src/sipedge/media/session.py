"""Offer, answer and delete for one call leg at a time: the proxy's view of the relay.

The SDP of a message is sent to rtpengine with the flags of the leg it is going *to*
(a WebRTC leg or a plain RTP one, see :mod:`sipedge.media.flags`) and replaced by the SDP
rtpengine returns. The ``from-tag`` is always the tag of the side that made the offer, as
rtpengine expects: the From tag of a request offer, the To tag of an offer in a 2xx (late
offer, answered in the ACK).

A relay error raises :class:`~sipedge.media.ng.RelayError` to the caller (the proxy then
answers 503 for an INVITE); deletes run in the background and never raise.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..nat.addresses import is_private
from ..sip.message import Message
from .flags import COMMON_FLAGS, RTP_FLAGS, WEBRTC_FLAGS, NgFlags, parse_flags
from .ng import RelayError
from .rtpengine import MediaRelay, Reply

log = logging.getLogger("sipedge.media")


@dataclass(frozen=True, slots=True)
class MediaProfiles:
    """The flags of each kind of leg, built-ins replaced or extended by the config."""

    webrtc: NgFlags
    rtp: NgFlags

    @classmethod
    def from_config(cls, extra: str = "", webrtc: str = "", rtp: str = "") -> MediaProfiles:
        """``webrtc``/``rtp`` replace the built-in leg flags when set; ``extra`` applies to
        both (and wins over them)."""
        common = parse_flags(COMMON_FLAGS)
        added = parse_flags(extra)
        return cls(
            webrtc=common.merged(parse_flags(webrtc or WEBRTC_FLAGS)).merged(added),
            rtp=common.merged(parse_flags(rtp or RTP_FLAGS)).merged(added),
        )

    def for_leg(self, webrtc: bool, source_ip: str | None, sdp: str) -> NgFlags:
        """The flags for SDP going to a leg; ``received-from`` when the SDP advertises a
        private address different from where the message came from (a NATed sender)."""
        base = self.webrtc if webrtc else self.rtp
        if source_ip is None or not _private_connection(sdp, source_ip):
            return base
        family = "IP6" if ":" in source_ip else "IP4"
        return base.merged(NgFlags({"received-from": [family, source_ip]}))


class MediaSession:
    """Drive the relay for the messages of calls (see the module text)."""

    def __init__(
        self,
        relay: MediaRelay,
        profiles: MediaProfiles,
        spawn: Callable[[Awaitable[Any]], None],
    ) -> None:
        self.relay = relay
        self.profiles = profiles
        self.spawn = spawn
        self.counters = {"offers": 0, "answers": 0, "deletes": 0, "errors": 0}

    async def offer(
        self,
        msg: Message,
        *,
        from_tag: str,
        to_webrtc: bool,
        source_ip: str | None,
        via_branch: str | None = None,
        node_set: str | None = None,
    ) -> None:
        """Send the SDP of ``msg`` as an offer and put the relay's SDP in its place; a new
        call goes to a node of ``node_set`` (None: the default set)."""
        sdp = _sdp_of(msg)
        chosen = self.profiles.for_leg(to_webrtc, source_ip, sdp)
        self.counters["offers"] += 1
        reply = await self._guard(
            self.relay.offer(
                msg.call_id,
                from_tag,
                sdp,
                flags=chosen.flags,
                options=chosen.options,
                via_branch=via_branch,
                node_set=node_set,
            )
        )
        _replace_sdp(msg, reply)

    async def answer(
        self,
        msg: Message,
        *,
        from_tag: str,
        to_tag: str,
        to_webrtc: bool,
        source_ip: str | None,
        via_branch: str | None = None,
    ) -> None:
        """Send the SDP of ``msg`` as the answer and put the relay's SDP in its place."""
        sdp = _sdp_of(msg)
        chosen = self.profiles.for_leg(to_webrtc, source_ip, sdp)
        self.counters["answers"] += 1
        reply = await self._guard(
            self.relay.answer(
                msg.call_id,
                from_tag,
                to_tag,
                sdp,
                flags=chosen.flags,
                options=chosen.options,
                via_branch=via_branch,
            )
        )
        _replace_sdp(msg, reply)

    def delete(self, call_id: str, from_tag: str) -> None:
        """Delete the call on its node in the background (retried there on failure)."""
        self.counters["deletes"] += 1
        self.spawn(self._delete(call_id, from_tag))

    async def _delete(self, call_id: str, from_tag: str) -> None:
        try:
            await self.relay.delete(call_id, from_tag)
        except RelayError as exc:
            log.warning("call %s: media delete failed (%s); retried in background", call_id, exc)

    async def _guard(self, pending: Awaitable[Reply]) -> Reply:
        try:
            return await pending
        except RelayError:
            self.counters["errors"] += 1
            raise


def has_sdp(msg: Message) -> bool:
    """Whether ``msg`` carries an SDP body (RFC 3264 offer or answer)."""
    if not msg.body:
        return False
    ctype = msg.content_type
    return ctype is None or ctype.split(";", 1)[0].strip().lower() == "application/sdp"


def _sdp_of(msg: Message) -> str:
    return msg.body.decode("utf-8", "replace")


def _replace_sdp(msg: Message, reply: Reply) -> None:
    sdp = reply.get("sdp")
    if not isinstance(sdp, str):
        raise RelayError("relay reply has no SDP")
    msg.set_body(sdp.encode())


def _private_connection(sdp: str, source_ip: str) -> bool:
    """Whether the SDP's first c= address is in private or shared space (as the NAT tests
    define it) and is not the source address: the sender is behind NAT."""
    for line in sdp.splitlines():
        if line.startswith("c="):
            parts = line[2:].split()
            if len(parts) < 3 or parts[2] == source_ip:
                return False
            return is_private(parts[2].split("/", 1)[0])
    return False
