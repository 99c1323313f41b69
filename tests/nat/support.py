"""Builders shared by the NAT tests: a NATed client's messages and flows."""

from __future__ import annotations

from sipedge.sip.message import Request, Response
from sipedge.sip.parser import parse_message
from sipedge.transport.base import Flow

PUBLIC = ("203.0.113.1", 40000)  # the client's NAT binding as we see it
NATED = Flow("udp", ("198.51.100.10", 5060), PUBLIC)
DIRECT = Flow("udp", ("198.51.100.10", 5060), ("198.51.100.7", 5060))

SDP = (
    "v=0\r\n"
    "o=alice 1 1 IN IP4 192.168.1.20\r\n"
    "s=-\r\n"
    "c=IN IP4 192.168.1.20\r\n"
    "t=0 0\r\n"
    "m=audio 4000 RTP/AVP 0\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
)


def request(
    method: str = "INVITE",
    via: str = "192.168.1.20:5060",
    contact: str = "<sip:alice@192.168.1.20:5060>",
    body: str = "",
    extra: str = "",
    uri: str = "sip:bob@example.org",
) -> Request:
    """A request from alice; ``via`` is its sent-by, ``contact`` its Contact value."""
    ctype = "Content-Type: application/sdp\r\n" if body else ""
    contact_line = f"Contact: {contact}\r\n" if contact else ""
    data = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {via};branch=z9hG4bK-nat-1\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@example.org>;tag=a1\r\n"
        "To: <sip:bob@example.org>\r\n"
        "Call-ID: nat-call-1\r\n"
        f"CSeq: 1 {method}\r\n"
        f"{contact_line}{extra}{ctype}"
        f"Content-Length: {len(body.encode())}\r\n\r\n{body}"
    ).encode()
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


def response(
    status: int = 200,
    contact: str = "<sip:bob@10.1.2.3:5062>",
    body: str = "",
    extra: str = "",
    method: str = "INVITE",
) -> Response:
    """A response from bob (the callee), our Via already popped."""
    ctype = "Content-Type: application/sdp\r\n" if body else ""
    data = (
        f"SIP/2.0 {status} Whatever\r\n"
        "Via: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK-nat-1\r\n"
        f"{extra}"
        "From: <sip:alice@example.org>;tag=a1\r\n"
        "To: <sip:bob@example.org>;tag=b1\r\n"
        "Call-ID: nat-call-1\r\n"
        f"CSeq: 1 {method}\r\n"
        f"Contact: {contact}\r\n{ctype}"
        f"Content-Length: {len(body.encode())}\r\n\r\n{body}"
    ).encode()
    msg = parse_message(data)
    assert isinstance(msg, Response)
    return msg
