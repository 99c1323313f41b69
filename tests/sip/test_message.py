"""Message model: eager/lazy access, limits, and byte-for-byte edits."""

from __future__ import annotations

import pytest

from sipedge.sip.build import build_ack, build_cancel, build_response
from sipedge.sip.errors import LimitExceeded, ParseError
from sipedge.sip.hdr.via import parse_via
from sipedge.sip.message import Request, Response
from sipedge.sip.parser import Limits, parse_message

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b'From: "Alice"   <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"X-Odd:    spaced   value  \r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)

RESPONSE = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKnashds8, "
    b"SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def parse_req(data: bytes = INVITE) -> Request:
    m = parse_message(data)
    assert isinstance(m, Request)
    return m


def parse_resp(data: bytes = RESPONSE) -> Response:
    m = parse_message(data)
    assert isinstance(m, Response)
    return m


def test_eager_fields() -> None:
    m = parse_req()
    assert m.method == "INVITE"
    assert m.vias[0].branch == "z9hG4bK776asdhds"
    assert m.from_tag == "1928301774" and m.to_tag is None
    assert m.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert (m.cseq.number, m.cseq.method) == (314159, "INVITE")
    assert m.max_forwards == 70
    assert m.content_length == 4 and m.body == b"v=0\n"
    assert m.routes == []
    assert not m.dirty


def test_untouched_message_is_the_input() -> None:
    assert parse_req().to_bytes() == INVITE
    assert parse_resp().to_bytes() == RESPONSE


def test_case_insensitive_names_and_compact_forms() -> None:
    data = INVITE.replace(b"Contact:", b"m:").replace(b"Content-Type:", b"CONTENT-type:")
    m = parse_req(data)
    assert m.header("contact") == "<sip:alice@pc33.atlanta.example.com>"
    assert m.header("Content-Type") == "application/sdp"
    assert m.header("c") == "application/sdp"
    names = [n for n, _ in m.iter_headers()]
    assert "m" in names and "CONTENT-type" in names  # original spelling kept


def test_unknown_header_value_trimmed_but_bytes_kept() -> None:
    m = parse_req()
    assert m.header("x-odd") == "spaced   value"
    m.set_max_forwards(69)
    assert b"X-Odd:    spaced   value  \r\n" in m.to_bytes()


def test_forward_edits_change_only_touched_fields() -> None:
    m = parse_req()
    m.set_max_forwards(m.max_forwards - 1 if m.max_forwards else 70)
    m.push_via("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKproxy1")
    m.add_record_route("<sip:192.0.2.1;lr>")
    m.set_uri("sip:bob@192.0.2.4:5062")
    out = m.to_bytes()
    expected = (
        b"INVITE sip:bob@192.0.2.4:5062 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKproxy1\r\n"
        b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
        b"Max-Forwards: 69\r\n"
        b"To: Bob <sip:bob@biloxi.example.com>\r\n"
        b'From: "Alice"   <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
        b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
        b"CSeq: 314159 INVITE\r\n"
        b"X-Odd:    spaced   value  \r\n"
        b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
        b"Content-Type: application/sdp\r\n"
        b"Content-Length: 4\r\n"
        b"Record-Route: <sip:192.0.2.1;lr>\r\n"
        b"\r\n"
        b"v=0\n"
    )
    assert out == expected
    again = parse_req(out)
    assert [v.branch for v in again.vias] == ["z9hG4bKproxy1", "z9hG4bK776asdhds"]
    assert again.max_forwards == 69
    assert str(again.record_routes[0].uri) == "sip:192.0.2.1;lr"


def test_pop_via_from_a_comma_list() -> None:
    m = parse_resp()
    top = m.pop_via()
    assert top.branch == "z9hG4bKnashds8"
    assert [v.branch for v in m.vias] == ["z9hG4bK776asdhds"]
    out = m.to_bytes()
    assert b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n" in out
    assert b"nashds8" not in out
    # Every other line unchanged.
    for line in RESPONSE.split(b"\r\n"):
        if not line.startswith(b"Via"):
            assert line in out


def test_pop_via_whole_field() -> None:
    data = RESPONSE.replace(b", SIP/2.0/UDP pc33", b"\r\nVia: SIP/2.0/UDP pc33")
    m = parse_resp(data)
    m.pop_via()
    assert m.to_bytes() == data.replace(
        b"Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKnashds8\r\n", b""
    )


def test_replace_top_via_received_rport() -> None:
    m = parse_req(INVITE.replace(b"asdhds\r\n", b"asdhds;rport\r\n", 1))
    via = m.vias[0]
    via.set_received("198.51.100.7")
    via.set_rport(40000)
    m.replace_top_via(via)
    reparsed = parse_req(m.to_bytes())
    assert reparsed.vias[0].received == "198.51.100.7"
    assert reparsed.vias[0].rport == 40000


def test_pop_route_and_strict_route_preserved() -> None:
    data = INVITE.replace(
        b"Max-Forwards: 70\r\n",
        b"Max-Forwards: 70\r\nRoute: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n",
    )
    m = parse_req(data)
    assert [r.uri.host for r in m.routes] == ["p1.example.com", "p2.example.com"]
    top = m.pop_route()
    assert top.uri.host == "p1.example.com"
    assert [r.uri.host for r in m.routes] == ["p2.example.com"]
    assert b"Route: <sip:p2.example.com;lr>\r\n" in m.to_bytes()
    m.pop_route()
    assert b"Route" not in m.to_bytes()


def test_set_remove_add_header_generic() -> None:
    m = parse_req()
    m.add_header("X-New", "1")
    m.add_header("X-New", "2")
    assert m.header_list("X-New") == ["1", "2"]
    m.set_header("x-new", "3")
    assert m.header_list("X-New") == ["3"]
    assert m.remove_header("X-NEW") == 1
    assert m.header("X-New") is None
    m.set_header("Call-ID", "changed")
    assert m.call_id == "changed"


def test_set_body_updates_content_length() -> None:
    m = parse_req()
    m.set_body(b"hello world", "text/plain")
    again = parse_req(m.to_bytes())
    assert again.body == b"hello world" and again.content_length == 11
    assert again.content_type == "text/plain"


def test_folded_header_kept_byte_for_byte() -> None:
    data = INVITE.replace(b"X-Odd:    spaced   value  \r\n", b"X-Fold: a,\r\n  b\r\n")
    m = parse_req(data)
    assert m.header("x-fold") == "a, b"
    m.set_max_forwards(1)
    assert b"X-Fold: a,\r\n  b\r\n" in m.to_bytes()


def test_bare_lf_message_accepted() -> None:
    m = parse_req(INVITE.replace(b"\r\n", b"\n"))
    assert m.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert m.body == b"v=0\n"


def test_leading_crlf_ignored() -> None:
    m = parse_req(b"\r\n\r\n" + INVITE)
    assert m.to_bytes() == INVITE


def test_missing_content_length_body_runs_to_end() -> None:
    data = INVITE.replace(b"Content-Length: 4\r\n", b"")
    m = parse_req(data)
    assert m.content_length is None and m.body == b"v=0\n"


@pytest.mark.parametrize(
    "limits,data",
    [
        (Limits(max_message_size=100), INVITE),
        (Limits(max_headers=5), INVITE),
        (Limits(max_line_length=40), INVITE),
    ],
)
def test_limits(limits: Limits, data: bytes) -> None:
    with pytest.raises(LimitExceeded) as exc:
        parse_message(data, limits)
    assert exc.value.status_hint == 513


def test_via_count_limit() -> None:
    many = b"".join(b"Via: SIP/2.0/UDP h%d;branch=z9hG4bK%d\r\n" % (i, i) for i in range(5))
    data = INVITE.replace(b"Max-Forwards", many + b"Max-Forwards")
    with pytest.raises(ParseError) as exc:
        parse_message(data, Limits(max_vias=4))
    assert "Via" in exc.value.reason


@pytest.mark.parametrize(
    "data,fault",
    [
        (b"", "no empty line"),
        (b"INVITE sip:a@b SIP/2.0\r\nVia SIP/2.0/UDP h\r\n\r\n", "':'"),
        (b"INVITE sip:a@b SIP/2.0\r\n folded\r\n\r\n", "continuation"),
        (INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: x INVITE"), "CSeq"),
        (INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards: 256"), "Max-Forwards"),
        (
            INVITE.replace(b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com", b"Call-ID:"),
            "Call-ID",
        ),
        (INVITE.replace(b"Via: SIP/2.0/UDP", b"Via: SIP/2.0/UDP ;", 1), "Via"),
        (INVITE.replace(b"X-Odd:", b"X Odd:"), "header name"),
        (b"SIP/2.0 99 Weird\r\n" + RESPONSE.split(b"\r\n", 1)[1], "status"),
    ],
)
def test_malformed_messages_name_the_fault(data: bytes, fault: str) -> None:
    with pytest.raises(ParseError) as exc:
        parse_message(data)
    assert exc.value.status_hint == 400
    assert fault.lower() in exc.value.reason.lower()


def test_build_response_copies_fields() -> None:
    m = parse_req()
    r = build_response(m, 180, to_tag="xyz")
    out = r.to_bytes()
    assert out.startswith(b"SIP/2.0 180 Ringing\r\n")
    assert b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n" in out
    assert b'From: "Alice"   <sip:alice@atlanta.example.com>;tag=1928301774\r\n' in out
    assert b"To: Bob <sip:bob@biloxi.example.com>;tag=xyz\r\n" in out
    again = parse_resp(out)
    assert again.to_tag == "xyz" and again.status == 180 and again.cseq.method == "INVITE"
    assert r.to_tag == "xyz"
    trying = build_response(m, 100, to_tag="xyz")
    assert trying.to_tag is None  # never a tag on 100 (RFC 3261 §8.2.6.1)


def test_build_ack_and_cancel() -> None:
    inv = parse_req()
    final = parse_resp(build_response(inv, 486, to_tag="t1").to_bytes())
    ack = parse_req(build_ack(inv, final).to_bytes())
    assert ack.method == "ACK" and ack.cseq.method == "ACK" and ack.cseq.number == 314159
    assert ack.to_tag == "t1" and ack.vias[0].branch == inv.vias[0].branch
    assert ack.uri_text == inv.uri_text
    cancel = parse_req(build_cancel(inv).to_bytes())
    assert cancel.method == "CANCEL" and cancel.to_tag is None
    assert cancel.vias[0].branch == inv.vias[0].branch and len(cancel.vias) == 1


def test_vias_helper_consistency() -> None:
    v = parse_via("SIP/2.0/TCP h.example.com:5070;branch=z9hG4bKx;rport")[0]
    assert v.sent_by == ("h.example.com", 5070)
    assert v.rport == -1


def test_header_line_without_colon_is_rejected() -> None:
    data = INVITE.replace(b"X-Odd:    spaced   value  \r\n", b"Tox\r\n")
    with pytest.raises(ParseError) as exc:
        parse_message(data)
    assert "':'" in exc.value.reason
