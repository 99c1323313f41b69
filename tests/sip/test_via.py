"""Via header values (RFC 3261 §20.42; RFC 3581 rport; RFC 5118 IPv6; RFC 4475 cases)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipedge.sip.errors import ParseError
from sipedge.sip.hdr.via import Via, parse_via
from sipedge.sip.params import Params


def one(value: str) -> Via:
    vias = parse_via(value)
    assert len(vias) == 1
    return vias[0]


def test_typical_via() -> None:
    v = one("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport")
    assert (v.protocol, v.transport, v.host, v.port) == ("SIP/2.0", "UDP", "192.0.2.1", 5060)
    assert v.branch == "z9hG4bK776asdhds"
    assert v.rport == -1 and v.received is None and v.ttl is None and v.maddr is None
    assert not v.alias
    assert v.sent_by == ("192.0.2.1", 5060)
    assert str(v) == "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport"


def test_wsinv_folded_lws_everywhere() -> None:
    # RFC 4475 §3.1.1.2 wsinv, as the message parser hands the values over (folds kept)
    v = one("SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw")
    assert (v.transport, v.host, v.port, v.branch) == ("UDP", "192.0.2.2", None, "390skdjuw")
    vias = parse_via(
        "SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ,\r\n"
        " SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239"
    )
    assert [(x.transport, x.host, x.branch) for x in vias] == [
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert str(vias[1]) == "SIP/2.0/UDP 192.168.255.111;branch=z9hG4bK30239"


def test_lws_around_colon_of_port() -> None:
    v = one("SIP/2.0/TCP host.example.com : 5070 ;branch=z9hG4bKx")
    assert (v.host, v.port, v.branch) == ("host.example.com", 5070, "z9hG4bKx")


@pytest.mark.parametrize(
    ("value", "transport"),
    [
        ("SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw", "UDP"),  # RFC 4475 transports
        ("SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf", "SCTP"),
        ("SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj", "TLS"),
        ("SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en", "UNKNOWN"),
        ("SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee", "TCP"),
        ("SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK56sdasks", "WSS"),
        ("SIP/2.0/ws df7jal23ls0d.invalid;branch=z9hG4bK56sdasks", "WS"),
    ],
)
def test_transports_are_upper_cased(value: str, transport: str) -> None:
    assert one(value).transport == transport


def test_comma_separated_list() -> None:
    vias = parse_via(
        "SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/TCP b:5062;branch=z9hG4bK2"
    )
    assert [(v.transport, v.host, v.port) for v in vias] == [
        ("UDP", "a.example.com", None),
        ("TCP", "b", 5062),
    ]


def test_ipv6_rfc5118() -> None:
    # RFC 5118 §4.5 / §4.6: received with and without brackets are both accepted
    v = one("SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111;received=[2001:db8::9:255]")
    assert v.host == "[2001:db8::9:1]" and v.port is None
    assert v.received == "[2001:db8::9:255]"
    v = one("SIP/2.0/UDP [2001:db8::9:1]:5070;branch=z9hG4bKas3;received=2001:db8::9:255")
    assert v.port == 5070 and v.received == "2001:db8::9:255"
    assert str(v) == "SIP/2.0/UDP [2001:db8::9:1]:5070;branch=z9hG4bKas3;received=2001:db8::9:255"


def test_other_rfc4475_vias() -> None:
    v = one("SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~")  # intmeth
    assert v.branch == "z9hG4bK-.!%66*_+`'~"
    assert one("SIP/2.0/TCP host.example.com;branch=z9hG4bK209%fzsnel234").branch == (
        "z9hG4bK209%fzsnel234"  # esc02: '%' is a token character
    )
    assert one("SIP/2.0/UDP iftgw.example.com").branch is None  # inv2543
    assert one("SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK1saber23").host == "255.255.255.255"
    v = one("SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw")  # badvers: 505 is the caller's
    assert v.protocol == "SIP/7.0"
    assert str(v) == "SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw"


def test_parameter_properties() -> None:
    v = one(
        "SIP/2.0/UDP h;branch=z9hG4bKa;received=192.0.2.9;rport=4000;ttl=16;maddr=224.2.0.1;alias"
    )
    assert v.received == "192.0.2.9" and v.rport == 4000 and v.ttl == 16
    assert v.maddr == "224.2.0.1" and v.alias
    assert one("SIP/2.0/UDP h;BRANCH=z9hG4bKb;RPort").rport == -1
    assert one("SIP/2.0/UDP h").rport is None


def test_setters() -> None:
    v = one("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKq;rport")
    v.set_received("192.0.2.50")
    v.set_rport(34567)
    assert str(v) == "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKq;rport=34567;received=192.0.2.50"
    assert v.rport == 34567
    v.set_received("[2001:db8::5]")
    assert v.received == "2001:db8::5"


def test_quoted_generic_param_goes_through_slow_path() -> None:
    v = one('SIP/2.0/UDP h;branch=z9hG4bKx;comment="a, b; c"')
    assert v.params.get("comment") == '"a, b; c"' and v.branch == "z9hG4bKx"


def test_built_via_serialises() -> None:
    v = Via("TLS", "proxy.example.com", 5061, Params([("branch", "z9hG4bK1")]))
    assert str(v) == "SIP/2.0/TLS proxy.example.com:5061;branch=z9hG4bK1"
    assert str(Via("UDP", "h", None)) == "SIP/2.0/UDP h"


@pytest.mark.parametrize(
    ("value", "word"),
    [
        ("", "empty"),
        ("SIP/2.0/UDP", "sent-by"),
        ("SIP/2.0/UDP ", "sent-by"),
        ("SIP/2.0 UDP host", "sent-protocol"),
        ("SIP/2.0/ host", "sent-protocol"),
        ("SIP//UDP host", "sent-protocol"),
        ("SIP/2.0/UDPhost", "sent-by"),
        ("SIP/2.0/UDP host:65536", "port"),
        ("SIP/2.0/UDP host:99999999999999999999999", "port"),
        ("SIP/2.0/UDP host:", "sent-by"),
        ("SIP/2.0/UDP host:x", "sent-by"),
        ("SIP/2.0/UDP ho st", "sent-by"),
        ("SIP/2.0/UDP -host", "sent-by"),
        ("SIP/2.0/UDP [2001:db8::10", "sent-by"),
        ("SIP/2.0/UDP [2001:db8:::1]", "IPv6"),
        ("SIP/2.0/UDP 2001:db8::10", "sent-by"),
        ("SIP/2.0/UDP host;", "parameter"),
        ("SIP/2.0/UDP host;branch", "branch"),
        ("SIP/2.0/UDP host;branch=", "value"),
        ("SIP/2.0/UDP host;rport=abc", "rport"),
        ("SIP/2.0/UDP host;rport=70000", "rport"),
        ("SIP/2.0/UDP host;ttl=256", "ttl"),
        ("SIP/2.0/UDP host;ttl=1 ; rport=x", "rport"),
        ('SIP/2.0/UDP host;a="b', "quoted"),
        ("SIP/2.0/UDP host,,SIP/2.0/UDP h2", "empty"),
        ("SIP/2.0/UDP host,", "empty"),
        ("SIP/2.0/UDP host <x>", "sent-by"),
    ],
)
def test_malformed_via_raises_parse_error_naming_fault(value: str, word: str) -> None:
    with pytest.raises(ParseError, match=word) as exc:
        parse_via(value)
    assert exc.value.status_hint == 400


_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True)
_hosts = st.one_of(
    st.lists(_label, min_size=1, max_size=3).map(".".join),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
)
_token = st.text("abcXYZ0129-.!%*_+`'~", min_size=1, max_size=10)
_params = st.lists(
    st.tuples(
        _token.filter(lambda n: n.lower() not in ("rport", "ttl", "branch")),
        st.none() | _token,
    ),
    max_size=4,
)


@given(
    st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "WS", "WSS", "X-NEW"]),
    _hosts,
    st.none() | st.integers(0, 65535),
    _token,
    st.none() | st.integers(0, 65535),
    _params,
)
def test_generated_vias_round_trip(
    transport: str,
    host: str,
    port: int | None,
    branch: str,
    rport: int | None,
    params: list[tuple[str, str | None]],
) -> None:
    text = f"SIP/2.0/{transport} {host}" + ("" if port is None else f":{port}")
    text += f";branch={branch}" + ("" if rport is None else f";rport={rport}")
    text += "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params)
    v = one(text)
    assert str(v) == text
    assert (v.transport, v.host, v.port, v.branch, v.rport) == (
        transport,
        host,
        port,
        branch,
        rport,
    )
    # the same value with LWS everywhere the grammar allows it parses to the same Via
    tail = text.partition(";")[2]
    spaced = f"SIP / 2.0 /\r\n {transport}  {host}" + ("" if port is None else f" : {port}")
    spaced += " ; " + tail.replace(";", " ;\r\n ").replace("=", " = ")
    w = one(spaced)
    assert (w.transport, w.host, w.port, w.params) == (v.transport, v.host, v.port, v.params)


FUZZ = 'SIP/2.0UDPTCP :;=,"[]\\\t\r\nabz019-.%\x00é'


@given(
    st.text(FUZZ, max_size=50)
    | st.text(max_size=30)
    | st.text(FUZZ, max_size=30).map(lambda s: "SIP/2.0/UDP " + s)
)
def test_fuzz_only_parse_error_escapes(value: str) -> None:
    try:
        vias = parse_via(value)
    except ParseError:
        return
    for v in vias:
        _ = (v.branch, v.rport, v.ttl, v.received, v.sent_by)
        again = one(str(v))
        assert (again.transport, again.host, again.port, again.params) == (
            v.transport,
            v.host,
            v.port,
            v.params,
        )
