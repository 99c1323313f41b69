"""SDP fixing without a media relay (OpenSIPS/Kamailio ``fix_nated_sdp``).

Every ``c=`` line (session and media level) gets the message's source address, and, when
asked, the ``o=`` line too. The old values are kept, as nathelper does, in ``a=oldcip``
(in the section whose ``c=`` changed) and ``a=oldoip`` (session level), so that a later
hop or a trace still shows what the UA wrote. Hold addresses (0.0.0.0, ``::``, RFC 3264
§8.4) are left alone. Only the lines touched change; everything else is kept verbatim.
"""

from __future__ import annotations

from ..sip.errors import ParseError, ProtocolError
from ..sip.message import Message
from ..sip.sdp import Connection, MediaSection, SessionDescription, parse_sdp
from .addresses import same_ip
from .detect import is_null

OLD_CONNECTION = "oldcip"
OLD_ORIGIN = "oldoip"


def fix_sdp_body(body: bytes, address: str, *, origin: bool = False) -> bytes | None:
    """The SDP ``body`` with its connection (and with ``origin``, origin) address set to
    ``address``, or None when nothing had to change or the body does not parse."""
    try:
        sdp = parse_sdp(body)
        changed = _fix_origin(sdp, address) if origin else False
        changed = _fix_connection(sdp, address) or changed
        for media in sdp.media:
            changed = _fix_connection(media, address) or changed
    except (ParseError, ProtocolError):
        return None
    return sdp.to_bytes() if changed else None


def fix_sdp(msg: Message, address: str, *, origin: bool = False) -> bool:
    """Fix the SDP body of ``msg`` in place (Content-Length follows); whether it changed."""
    if not msg.body or msg.content_type != "application/sdp":
        return False
    new = fix_sdp_body(msg.body, address, origin=origin)
    if new is None:
        return False
    msg.set_body(new)
    return True


def _fix_connection(section: SessionDescription | MediaSection, address: str) -> bool:
    lines = section.lines
    old = [Connection.parse(ln.value) for ln in lines if ln.kind == "c"]
    if not old or all(is_null(c.address) or same_ip(c.address, address) for c in old):
        return False
    for ln in lines:
        if ln.kind == "c":
            c = Connection.parse(ln.value)
            if not is_null(c.address):
                kind = "IP6" if ":" in address else "IP4"
                ln.value = Connection(c.nettype, kind, address.strip("[]"), "").to_value()
    first = next(c for c in old if not is_null(c.address))
    section.add_attribute(OLD_CONNECTION, first.address)
    return True


def _fix_origin(sdp: SessionDescription, address: str) -> bool:
    old = sdp.origin.address
    if same_ip(old, address):
        return False
    sdp.set_origin_address(address.strip("[]"))
    sdp.add_attribute(OLD_ORIGIN, old)
    return True
