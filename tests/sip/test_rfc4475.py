"""RFC 4475 torture messages: every one parsed (or rejected) as the RFC says.

The data files are copied from RFC 4475 Appendix A (see tests/data/rfc4475/SOURCE.md).
Where the RFC lets an element choose, the choice sipedge makes is stated beside the case.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from sipedge.sip.errors import ParseError
from sipedge.sip.hdr.auth import parse_credentials
from sipedge.sip.message import Request, Response
from sipedge.sip.parser import parse_message
from sipedge.sip.uri import unescape

DATA = Path(__file__).parent.parent / "data" / "rfc4475"


def load(name: str) -> bytes:
    return (DATA / f"{name}.dat").read_bytes()


def req(name: str) -> Request:
    msg = parse_message(load(name))
    assert isinstance(msg, Request)
    return msg


def resp(name: str) -> Response:
    msg = parse_message(load(name))
    assert isinstance(msg, Response)
    return msg


def test_all_49_files_are_present() -> None:
    assert len(list(DATA.glob("*.dat"))) == 49


# ---------------------------------------------------------------- §3.1.1 valid messages


def test_wsinv_short_tortuous_invite() -> None:  # §3.1.1.1
    m = req("wsinv")
    assert m.method == "INVITE"
    assert m.uri.host == "chair-dnrc.example.com"
    assert "unknownparam" in m.uri.params
    assert m.to_tag == "1918181833n"
    assert m.from_tag == "98asjd8"
    assert m.from_.display_name is not None and "J Rosenberg" in m.from_.display_name
    assert m.max_forwards == 68
    assert m.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert (m.cseq.number, m.cseq.method) == (9, "INVITE")
    assert [v.transport for v in m.vias] == ["UDP", "TCP", "UDP"]
    assert [v.host for v in m.vias] == ["192.0.2.2", "spindle.example.com", "192.168.255.111"]
    assert m.vias[0].branch == "390skdjuw"
    assert m.vias[1].branch == "z9hG4bK9ikj8"
    assert m.vias[2].branch == "z9hG4bK30239"
    assert m.header("NewFangledHeader") == "newfangled value continued newfangled value"
    assert m.header("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert m.header("subject") == ""
    assert len(m.routes) == 1 and m.routes[0].uri.host == "services.example.com"
    contacts = m.contacts
    assert contacts != "*" and len(contacts) == 1
    assert contacts[0].params.get("q") == "0.33"
    assert contacts[0].params.get("newparam") == "newvalue"
    assert "secondparam" in contacts[0].params
    assert m.content_length == 150 and len(m.body) == 150
    assert m.to_bytes() == load("wsinv")


def test_intmeth_unusual_characters() -> None:  # §3.1.1.2
    m = req("intmeth")
    assert m.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert m.cseq.method == m.method
    assert m.uri.host == "example.com"
    assert m.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert m.vias[0].branch == "z9hG4bK-.!%66*_+`'~"
    assert m.from_tag == "_token~1'+`*%!-."
    assert m.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert m.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert m.header("extensionHeader-!.%*+_`'~") is not None
    assert m.max_forwards == 255


def test_esc01_valid_escapes() -> None:  # §3.1.1.3
    m = req("esc01")
    assert unescape(m.uri.user or "") == "sips:user@example.com"
    assert unescape(m.to.uri.user or "") == "user"
    assert unescape(m.from_.uri.user or "") == "I have spaces"
    contacts = m.contacts
    assert contacts != "*"
    assert unescape(contacts[0].uri.user or "") == "caller"
    assert m.content_type == "application/sdp"  # compact "C:"


def test_escnull_escaped_nuls() -> None:  # §3.1.1.4
    m = req("escnull")
    assert unescape(m.to.uri.user or "") == "null-\x00-null"
    contacts = m.contacts
    assert contacts != "*" and len(contacts) == 2
    assert unescape(contacts[1].uri.user or "") == "\x00\x00"


def test_esc02_percent_not_an_escape() -> None:  # §3.1.1.5
    m = req("esc02")
    # %-escapes have no meaning in a method or header name: these are unknown tokens.
    assert m.method == "RE%47IST%45R"
    assert m.from_.display_name == "%Z%45"
    assert m.vias[0].branch == "z9hG4bK209%fzsnel234"
    contacts = m.contacts
    assert contacts != "*" and len(contacts) == 2  # C%6Fntact is another header
    assert m.header("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_lwsdisp_no_space_before_laquot() -> None:  # §3.1.1.6
    m = req("lwsdisp")
    assert m.from_.display_name == "caller"
    assert m.from_.uri.user == "caller"
    assert m.from_tag == "323"


def test_longreq_very_long_values() -> None:  # §3.1.1.7
    m = req("longreq")
    assert len(m.vias) == 34
    assert m.to.uri.port == 6000
    assert m.from_tag is not None and m.from_tag.startswith("1298298298")
    assert m.to_bytes() == load("longreq")


def test_dblreq_trailing_octets_ignored() -> None:  # §3.1.1.8
    data = load("dblreq")
    m = req("dblreq")
    assert m.method == "REGISTER"
    assert m.content_length == 0 and m.body == b""
    # The serialised message ends with the first message; the extra INVITE is gone.
    assert m.to_bytes() == data[: data.index(b"\r\n\r\n") + 4]


def test_semiuri_semicolon_in_user() -> None:  # §3.1.1.9
    m = req("semiuri")
    assert m.uri.user == "user;par=u%40example.net"
    assert m.uri.host == "example.com"
    assert len(m.uri.params) == 0
    assert m.header_list("Accept") == [
        "application/sdp",
        "application/pkcs7-mime",
        "multipart/mixed",
        "multipart/signed",
        "message/sip",
        "message/sipfrag",
    ]


def test_transports_unknown_transport_tokens() -> None:  # §3.1.1.10
    m = req("transports")
    assert [v.transport for v in m.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert m.call_id == "transports.kijh4akdnaqjkwendsasfdj"


def test_mpart01_multipart_body() -> None:  # §3.1.1.11
    m = req("mpart01")
    assert m.content_type == "multipart/mixed"
    assert m.content_length == 553 and len(m.body) == 553
    assert b"--7a9cbec02ceef655" in m.body


def test_unreason_unusual_reason_phrase() -> None:  # §3.1.1.12
    m = resp("unreason")
    assert m.status == 200
    assert m.reason.startswith("= 2**3 * 5**2 ")
    assert "\u043d\u043e" in m.reason  # UTF-8 (Cyrillic) decoded
    assert m.to_bytes() == load("unreason")


def test_noreason_empty_reason_phrase() -> None:  # §3.1.1.13
    m = resp("noreason")
    assert (m.status, m.reason) == (100, "")


# ---------------------------------------------------------------- §3.1.2 invalid messages

INVALID = {
    "badinv01": 400,  # §3.1.2.1 extraneous separators in Via
    "clerr": 400,  # §3.1.2.2 Content-Length larger than the message
    "ncl": 400,  # §3.1.2.3 negative Content-Length
    "scalar02": 400,  # §3.1.2.4 overlarge CSeq / Max-Forwards
    "scalarlg": 400,  # §3.1.2.5 a response: discarded
    "quotbal": 400,  # §3.1.2.6 unterminated quoted string
    "ltgtruri": 400,  # §3.1.2.7 <> around the Request-URI
    "lwsruri": 400,  # §3.1.2.8 LWS inside the Request-URI
    "lwsstart": 400,  # §3.1.2.9 several SP in the request line
    "trws": 400,  # §3.1.2.10 SP at the end of the request line
    "escruri": 400,  # §3.1.2.11 escaped headers in a SIP Request-URI
    "badaspec": 400,  # §3.1.2.14 spaces inside an addr-spec
    "baddn": 400,  # §3.1.2.15 unquoted display name with non-token characters
    "badvers": 505,  # §3.1.2.16 SIP/7.0
    "mismatch01": 400,  # §3.1.2.17 method and CSeq method differ
    "mismatch02": 400,  # §3.1.2.18 unknown method, CSeq mismatch
    "bigcode": 400,  # §3.1.2.19 a response: discarded
    "insuf": 400,  # §3.3.1 missing Call-ID, From, To
    "multi01": 400,  # §3.3.8 several values of single-valued headers
    "mcl01": 400,  # §3.3.9 two Content-Length headers
}


@pytest.mark.parametrize("name,status", sorted(INVALID.items()))
def test_invalid_rejected_with_status(name: str, status: int) -> None:
    data = load(name)
    with pytest.raises(ParseError) as exc:
        m = parse_message(data)
        # Faults in lazily decoded parts surface on first access.
        if isinstance(m, Request):
            _ = m.uri
    assert exc.value.status_hint == status
    assert exc.value.reason  # the reason phrase names the fault


def test_baddate_forwarded() -> None:  # §3.1.2.12
    # Choice: a proxy does not interpret Date, so the request parses and is forwarded.
    m = req("baddate")
    assert m.header("Date") == "Fri, 01 Jan 2010 16:00:00 EST"


def test_regbadct_rejected_where_contact_is_used() -> None:  # §3.1.2.13
    # Choice: the proxy does not decode Contact on REGISTER; the registrar does, and
    # answers 400.
    m = req("regbadct")
    with pytest.raises(ParseError) as exc:
        _ = m.contacts
    assert exc.value.status_hint == 400


# ---------------------------------------------------------------- §3.2 transaction layer


def test_badbranch_cookie_only_branch() -> None:  # §3.2.1
    m = req("badbranch")
    assert m.vias[0].branch == "z9hG4bK"


# ---------------------------------------------------------------- §3.3 application layer


def test_unkscm_unknown_scheme_exposed() -> None:  # §3.3.2: the proxy answers 416
    m = req("unkscm")
    assert m.uri.scheme == "nobodyknowsthisscheme"
    assert m.uri.opaque == "totallyopaquecontent"


def test_novelsc_atypical_scheme_exposed() -> None:  # §3.3.3
    m = req("novelsc")
    assert m.uri.scheme == "soap.beep"


def test_unksm2_unknown_schemes_in_headers_accepted() -> None:  # §3.3.4
    m = req("unksm2")
    assert m.to.uri.scheme == "isbn"
    assert m.from_.uri.scheme == "http"
    contacts = m.contacts
    assert contacts != "*" and contacts[0].uri.scheme == "name"


def test_bext01_unknown_extensions_exposed() -> None:  # §3.3.5: the proxy answers 420
    m = req("bext01")
    assert m.option_tags("Proxy-Require") == [
        "noproxiessupportthis",
        "nordoanyproxiessupportthis",
    ]
    assert m.option_tags("Require") == ["nothingsupportsthis", "nothingsupportsthiseither"]


def test_invut_unknown_content_type() -> None:  # §3.3.6
    m = req("invut")
    assert m.content_type == "application/unknownformat"
    assert m.body.startswith(b"<audio>")


def test_regaut01_unknown_auth_scheme() -> None:  # §3.3.7
    m = req("regaut01")
    auth = m.header("Authorization")
    assert auth is not None
    creds = parse_credentials(auth)
    assert creds.scheme == "NoOneKnowsThisScheme"


def test_bcast_broadcast_via_exposed() -> None:  # §3.3.10
    m = resp("bcast")
    assert m.vias[1].host == "255.255.255.255"


def test_zeromf_max_forwards_zero() -> None:  # §3.3.11: the proxy answers 483
    m = req("zeromf")
    assert m.max_forwards == 0


def test_cparam01_contact_header_param() -> None:  # §3.3.12
    contacts = req("cparam01").contacts
    assert contacts != "*"
    assert "unknownparam" in contacts[0].params
    assert "unknownparam" not in contacts[0].uri.params


def test_cparam02_contact_uri_param() -> None:  # §3.3.13
    contacts = req("cparam02").contacts
    assert contacts != "*"
    assert "unknownparam" in contacts[0].uri.params
    assert "unknownparam" not in contacts[0].params


def test_regescrt_escaped_header_in_contact() -> None:  # §3.3.14
    contacts = req("regescrt").contacts
    assert contacts != "*"
    assert contacts[0].uri.headers == "Route=%3Csip:sip.example.com%3E"


def test_sdp01_accept_only_unknown_type() -> None:  # §3.3.15: a UAS answers 406
    m = req("sdp01")
    assert m.header_list("Accept") == ["text/nobodyKnowsThis"]


# ---------------------------------------------------------------- §3.4 backwards compat


def test_inv2543_rfc2543_syntax() -> None:  # §3.4.1
    m = req("inv2543")
    assert m.vias[0].branch is None
    assert m.from_tag is None and m.to_tag is None
    assert m.max_forwards is None
    assert m.record_routes[0].uri.params.get("maddr") == "ss1.example.com"


def test_every_file_parses_or_raises_parse_error_only() -> None:
    for path in sorted(DATA.glob("*.dat")):
        with contextlib.suppress(ParseError):
            parse_message(path.read_bytes())
