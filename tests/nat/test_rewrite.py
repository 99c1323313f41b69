"""Message rewrites, byte for byte: Contact (fix_nated_contact), received, Path, SDP."""

from __future__ import annotations

from sipedge.nat.rewrite import path_value, received_uri, rewrite_contacts
from sipedge.nat.sdp import fix_sdp, fix_sdp_body
from sipedge.sip.message import Request
from sipedge.sip.parser import parse_message
from sipedge.transport.base import Flow

from .support import NATED, SDP, request, response

V6 = Flow("udp", ("2001:db8::10", 5060), ("2001:db8::77", 41000))


def test_contact_rewrite_whole_message() -> None:
    req = request(contact='"Alice" <sip:alice@192.168.1.20:5060;transport=udp>;expires=60')
    assert rewrite_contacts(req, NATED)
    assert req.to_bytes() == (
        b"INVITE sip:bob@example.org SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK-nat-1\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: <sip:alice@example.org>;tag=a1\r\n"
        b"To: <sip:bob@example.org>\r\n"
        b"Call-ID: nat-call-1\r\n"
        b"CSeq: 1 INVITE\r\n"
        b'Contact: "Alice" <sip:alice@203.0.113.1:40000;transport=udp>;expires=60\r\n'
        b"Content-Length: 0\r\n\r\n"
    )


def test_contact_rewrite_every_contact_and_addr_spec_form() -> None:
    data = (
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\n"
        b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n"
        b"Contact: sip:bob@10.1.2.3;ob\r\n"
        b"Contact: <sip:bob@[fd00::5]:5070>, <tel:+15551234>\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(data)
    assert rewrite_contacts(msg, V6)
    assert msg.header_list("Contact") == [
        "sip:bob@[2001:db8::77]:41000;ob",
        "<sip:bob@[2001:db8::77]:41000>",
        "<tel:+15551234>",
    ]
    assert msg.to_bytes().count(b"Contact:") == 1


def test_contact_rewrite_no_change_and_unparseable() -> None:
    same = request(contact="<sip:alice@203.0.113.1:40000>")
    before = same.to_bytes()
    assert not rewrite_contacts(same, NATED)
    assert same.to_bytes() == before
    bad = request(contact="<sip:alice@192.168.1.20")
    assert not rewrite_contacts(bad, NATED)
    assert not rewrite_contacts(request(contact=""), NATED)


def test_received_uri() -> None:
    assert received_uri(NATED) == "sip:203.0.113.1:40000"
    assert received_uri(V6) == "sip:[2001:db8::77]:41000"
    tcp = Flow("tcp", NATED.local, ("203.0.113.1", 51000), 3)
    assert received_uri(tcp) == "sip:203.0.113.1:51000;transport=tcp"


def test_path_value() -> None:
    assert (
        path_value("ft-abc", "198.51.100.10", 5060, "UDP") == "<sip:ft-abc@198.51.100.10:5060;lr>"
    )
    assert (
        path_value("ft-abc", "[2001:db8::10]", 5061, "TLS")
        == "<sip:ft-abc@[2001:db8::10]:5061;transport=tls;lr>"
    )


def test_sdp_media_ip_byte_for_byte() -> None:
    out = fix_sdp_body(SDP.encode(), "203.0.113.1")
    assert out == (
        b"v=0\r\n"
        b"o=alice 1 1 IN IP4 192.168.1.20\r\n"
        b"s=-\r\n"
        b"c=IN IP4 203.0.113.1\r\n"
        b"t=0 0\r\n"
        b"a=oldcip:192.168.1.20\r\n"
        b"m=audio 4000 RTP/AVP 0\r\n"
        b"a=rtpmap:0 PCMU/8000\r\n"
    )


def test_sdp_origin_and_media_level_connections() -> None:
    body = (
        "v=0\r\no=- 7 8 IN IP4 10.0.0.5\r\ns=call\r\nt=0 0\r\n"
        "m=audio 4000 RTP/AVP 0\r\nc=IN IP4 10.0.0.5\r\n"
        "m=video 4002 RTP/AVP 96\r\nc=IN IP4 0.0.0.0\r\n"
        "m=audio 4004 RTP/AVP 8\r\nc=IN IP4 10.0.0.6/127\r\na=sendonly\r\n"
    )
    out = fix_sdp_body(body.encode(), "2001:db8::77", origin=True)
    assert out == (
        b"v=0\r\no=- 7 8 IN IP6 2001:db8::77\r\ns=call\r\nt=0 0\r\na=oldoip:10.0.0.5\r\n"
        b"m=audio 4000 RTP/AVP 0\r\nc=IN IP6 2001:db8::77\r\na=oldcip:10.0.0.5\r\n"
        b"m=video 4002 RTP/AVP 96\r\nc=IN IP4 0.0.0.0\r\n"
        b"m=audio 4004 RTP/AVP 8\r\nc=IN IP6 2001:db8::77\r\na=sendonly\r\n"
        b"a=oldcip:10.0.0.6\r\n"
    )


def test_sdp_nothing_to_do() -> None:
    assert fix_sdp_body(SDP.replace("192.168.1.20", "203.0.113.1").encode(), "203.0.113.1") is None
    hold = SDP.replace("c=IN IP4 192.168.1.20", "c=IN IP4 0.0.0.0")
    assert fix_sdp_body(hold.encode(), "203.0.113.1") is None
    assert fix_sdp_body(b"v=0\r\nbroken\r\n", "203.0.113.1") is None


def test_fix_sdp_on_a_message_updates_content_length() -> None:
    req = request(body=SDP)
    assert fix_sdp(req, "203.0.113.1", origin=True)
    assert isinstance(req, Request)
    assert req.header("Content-Length") == str(len(req.body))
    assert b"o=alice 1 1 IN IP4 203.0.113.1\r\n" in req.body
    assert req.body.endswith(
        b"a=oldcip:192.168.1.20\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )
    assert not fix_sdp(response(), "203.0.113.1")  # no body
