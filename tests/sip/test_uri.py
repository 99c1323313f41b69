"""SIP/SIPS/tel URIs (RFC 3261 §19.1, §25.1; RFC 3966; RFC 5118; RFC 4475 cases)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipedge.sip.errors import ParseError
from sipedge.sip.params import Params
from sipedge.sip.uri import URI, parse_uri, unescape, uri_equal

# (text, scheme, user, password, host, port, params, headers)
# fmt: off
VALID = [
    ("sip:alice@atlanta.com", "sip", "alice", None, "atlanta.com", None, [], None),
    (
        "sip:alice:secretword@atlanta.com;transport=tcp",
        "sip", "alice", "secretword", "atlanta.com", None, [("transport", "tcp")], None,
    ),
    (
        "sips:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sips", "alice", None, "atlanta.com", None, [], "subject=project%20x&priority=urgent",
    ),
    (
        "sip:+1-212-555-1212:1234@gateway.com;user=phone",
        "sip", "+1-212-555-1212", "1234", "gateway.com", None, [("user", "phone")], None,
    ),
    ("sips:1212@gateway.com", "sips", "1212", None, "gateway.com", None, [], None),
    ("sip:alice@192.0.2.4", "sip", "alice", None, "192.0.2.4", None, [], None),
    (
        "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
        "sip", None, None, "atlanta.com", None, [("method", "REGISTER")], "to=alice%40atlanta.com",
    ),
    ("sip:alice;day=tuesday@atlanta.com", "sip", "alice;day=tuesday", None, "atlanta.com",
     None, [], None),
    ("sip:host.example.com.:5061", "sip", None, None, "host.example.com.", 5061, [], None),
    ("sip:user:@host", "sip", "user", "", "host", None, [], None),
    ("sip:h:0", "sip", None, None, "h", 0, [], None),
    ("sip:h:65535", "sip", None, None, "h", 65535, [], None),
    # RFC 5118 §4.1, §4.2 (port-ambiguous: all of it is the address), §4.3, §4.7
    ("sip:[2001:db8::10]", "sip", None, None, "[2001:db8::10]", None, [], None),
    ("sip:[2001:db8::10:5070]", "sip", None, None, "[2001:db8::10:5070]", None, [], None),
    ("sip:[2001:db8::10]:5070", "sip", None, None, "[2001:db8::10]", 5070, [], None),
    ("sip:user@[::ffff:192.0.2.10]:5060", "sip", "user", None, "[::ffff:192.0.2.10]", 5060,
     [], None),
    # RFC 4475 esc01, escnull, semiuri, regescrt, intmeth, wsinv
    ("sip:sips%3Auser%40example.com@example.net", "sip", "sips%3Auser%40example.com", None,
     "example.net", None, [], None),
    (
        "sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31",
        "sip", "cal%6Cer", None, "host5.example.net", None,
        [("%6C%72", None), ("n%61me", "v%61lue%25%34%31")], None,
    ),
    ("sip:null-%00-null@example.com", "sip", "null-%00-null", None, "example.com", None, [],
     None),
    ("sip:user;par=u%40example.net@example.com", "sip", "user;par=u%40example.net", None,
     "example.com", None, [], None),
    ("sip:user@example.com?Route=%3Csip:sip.example.com%3E", "sip", "user", None,
     "example.com", None, [], "Route=%3Csip:sip.example.com%3E"),
    (
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too."
        "(doesn't-it)@example.com",
        "sip", "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*",
        "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)", "example.com", None, [], None,
    ),
    (
        "sip:services.example.com;lr;unknownwith=value;unknown-no-value",
        "sip", None, None, "services.example.com", None,
        [("lr", None), ("unknownwith", "value"), ("unknown-no-value", None)], None,
    ),
    ("sip:h;maddr=[2001:db8::1];x=a/b:c&d+e$f", "sip", None, None, "h", None,
     [("maddr", "[2001:db8::1]"), ("x", "a/b:c&d+e$f")], None),
    ("sip:h?a=&b=c", "sip", None, None, "h", None, [], "a=&b=c"),
]
# fmt: on


@pytest.mark.parametrize(
    ("text", "scheme", "user", "password", "host", "port", "params", "headers"), VALID
)
def test_valid_sip_uris(
    text: str,
    scheme: str,
    user: str | None,
    password: str | None,
    host: str,
    port: int | None,
    params: list[tuple[str, str | None]],
    headers: str | None,
) -> None:
    u = parse_uri(text)
    assert (u.scheme, u.user, u.password, u.host, u.port) == (scheme, user, password, host, port)
    assert u.params.items() == params
    assert u.headers == headers
    assert u.opaque is None
    assert str(u) == text


def test_upper_case_scheme_is_lowered() -> None:
    u = parse_uri("SIP:ALICE@AtLanTa.CoM;Transport=udp")
    assert u.scheme == "sip" and u.user == "ALICE" and u.host == "AtLanTa.CoM"
    assert str(u) == "sip:ALICE@AtLanTa.CoM;Transport=udp"
    assert parse_uri("Sips:h").scheme == "sips"


@pytest.mark.parametrize(
    ("text", "scheme", "opaque"),
    [
        ("http://www.example.com", "http", "//www.example.com"),  # RFC 4475 unksm2
        ("isbn:2983792873", "isbn", "2983792873"),
        ("name:John_Smith", "name", "John_Smith"),
        ("soap.beep://192.0.2.103:3002", "soap.beep", "//192.0.2.103:3002"),  # novelsc
        (
            "nobodyKnowsThisScheme:totallyopaquecontent",
            "nobodyknowsthisscheme",
            "totallyopaquecontent",
        ),  # unkscm
        (
            "mailto:alice@example.com?subject=hi%20there",
            "mailto",
            "alice@example.com?subject=hi%20there",
        ),
        (
            "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
            "urn",
            "uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
        ),
    ],
)
def test_other_schemes_are_opaque(text: str, scheme: str, opaque: str) -> None:
    u = parse_uri(text)
    assert (u.scheme, u.opaque, u.user, u.host) == (scheme, opaque, None, "")
    assert str(u) == f"{scheme}:{opaque}"


@pytest.mark.parametrize(
    ("text", "number", "params"),
    [
        ("tel:+1-201-555-0123", "+1-201-555-0123", []),
        ("tel:+358-555-1234567;postd=pp22", "+358-555-1234567", [("postd", "pp22")]),
        ("tel:7042;phone-context=example.com", "7042", [("phone-context", "example.com")]),
        ("tel:863-1234;phone-context=+1-914-555", "863-1234", [("phone-context", "+1-914-555")]),
        (
            "tel:+1(800)555.0199;ext=22;isub=1411",
            "+1(800)555.0199",
            [("ext", "22"), ("isub", "1411")],
        ),
        ("tel:*21#;phone-context=example.net", "*21#", [("phone-context", "example.net")]),
    ],
)
def test_tel_uris(text: str, number: str, params: list[tuple[str, str | None]]) -> None:
    u = parse_uri(text)
    assert u.scheme == "tel" and u.user == number and u.params.items() == params
    assert u.host == "" and u.opaque is None
    assert str(u) == text


@pytest.mark.parametrize(
    "text",
    [
        "<sip:user@example.com>",  # RFC 4475 ltgtruri
        "sip:",
        "sip:@host",
        "sip:user@",
        "sip:a b@c",
        "sip:user@example.com ",
        "sip:user@exa mple.com",
        "sip:2001:db8::10",  # RFC 5118 §4.1: an IPv6 host needs brackets
        "sip:[2001:db8:::192.0.2.1]",  # RFC 5118 §4.8: three colons
        "sip:[2001:db8::10]5070",
        "sip:[2001:db8::10",
        "sip:[2001:db8::10]:",
        "sip:[fe80::1%25eth0]",
        "sip:[::1]:1:2",
        "sip:host:65536",
        "sip:host:99999999999999999999",
        "sip:host:-1",
        "sip:host:5x",
        "sip:-host",
        "sip:host-",
        "sip:ho_st",
        "sip:a..b",
        "sip:a@b@c",
        "sip:a%zz@b",
        "sip:a%4@b",
        "sip:h;a=",
        "sip:h;=b",
        "sip:h;a b",
        "sip:h;",
        "sip:h?",
        "sip:h?a",
        "sip:h?a=b&",
        "sip:h>",
        "sip:h\x00",
        "sip:user@host;lr\u0661",
        "sip:h:\u0665\u0660\u0666\u0660",  # Arabic-Indic digits are not DIGIT
        "tel:",
        "tel:1234",  # local number needs phone-context (RFC 3966 §5.1.5)
        "tel:+",
        "tel:+-.",
        "tel:+1 234",
        "tel:+1234;",
        "tel:+1234;a=",
        "tel:+1234;a_b=c",
        ":nothing",
        "nocolon",
        "",
        "1sip:x",
        "ht tp:x",
        "http:",
        "http:a b",
        "mailto:<a>",
    ],
)
def test_malformed_uris_raise_parse_error_400(text: str) -> None:
    with pytest.raises(ParseError) as exc:
        parse_uri(text)
    assert exc.value.status_hint == 400


def test_error_reason_names_the_fault() -> None:
    cases = {
        "sip:a b@c": "whitespace",
        "sip:[2001:db8::10": "IPv6",
        "sip:[2001:db8:::1]": "IPv6",
        "sip:host:70000": "port",
        "sip:host:x": "port",
        "sip:a%zz@b": "user",
        "sip:h;a=": "uri-parameters",
        "sip:h?a": "headers",
        "sip:-h": "host",
        "<sip:a@b>": "scheme",
    }
    for text, word in cases.items():
        with pytest.raises(ParseError, match=word):
            parse_uri(text)


def test_helpers() -> None:
    u = parse_uri("sip:proxy.example.com:5070;Transport=TCP;lr;maddr=239.255.255.1;user=Phone")
    assert u.transport == "tcp" and u.lr and u.maddr == "239.255.255.1"
    assert u.user_param == "phone"
    assert u.host_port() == "proxy.example.com:5070"
    assert u.is_sip and not u.is_secure and not u.is_ipv6
    v = parse_uri("sips:[2001:db8::1]")
    assert v.is_ipv6 and v.is_secure and v.transport is None and not v.lr
    assert v.host_port() == "[2001:db8::1]" and v.maddr is None and v.user_param is None
    assert not parse_uri("tel:+1234").is_sip


def test_copy_is_deep_for_params() -> None:
    u = parse_uri("sip:a@b;lr")
    c = u.copy()
    c.params.set("transport", "tcp")
    c.host = "x"
    assert str(u) == "sip:a@b;lr"
    assert str(c) == "sip:a@x;lr;transport=tcp"


def test_built_uri_serialises() -> None:
    u = URI("sip", user="bob", host="biloxi.com", port=5060, params=Params([("lr", None)]))
    assert str(u) == "sip:bob@biloxi.com:5060;lr"
    assert str(URI("sips", host="h", headers="a=b")) == "sips:h?a=b"
    assert str(URI("urn", opaque="x:y")) == "urn:x:y"


def test_mutating_lazily_parsed_params_changes_serialisation() -> None:
    u = parse_uri("sip:a@b;transport=udp;lr")
    u.params.set("transport", "tcp")
    u.params.remove("lr")
    assert str(u) == "sip:a@b;transport=tcp"


# --- RFC 3261 §19.1.4 -----------------------------------------------------------------

EQUIVALENT = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    (
        "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
    ),
    (
        "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
    ),
    # RFC 4475 esc01: the Contact is equivalent to its unescaped form
    (
        "sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31",
        "sip:caller@host5.example.net;lr;name=value%2541",
    ),
    ("sip:[2001:db8::1]:5060", "sip:[2001:DB8:0::1]:5060"),
    ("sip:a@h;MADDR=X.example", "sip:a@h;maddr=x.EXAMPLE"),
]

NOT_EQUIVALENT = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
    ("sip:alice@atlanta.com", "sip:atlanta.com"),
    ("sip:alice:pw@atlanta.com", "sip:alice@atlanta.com"),
    ("sip:alice:pw@atlanta.com", "sip:alice:PW@atlanta.com"),
    ("sip:a@h;user=phone", "sip:a@h"),
    ("sip:a@h;ttl=1", "sip:a@h"),
    ("sip:a@h;method=INVITE", "sip:a@h"),
    ("sip:a@h;maddr=x", "sip:a@h"),
    ("sip:a@h;x=1", "sip:a@h;x=2"),
    ("sip:a@h;lr", "sip:a@h;lr=on"),
    ("sip:a%3Bb@h", "sip:a;b@h"),  # an escaped reserved character is not the character
    ("sip:a@h?x=1", "sip:a@h?x=2"),
    ("sip:a@h?x=1&x=1", "sip:a@h?x=1"),
    ("sip:a@example.com.", "sip:a@example.com"),
    ("sip:a@h", "tel:+1234"),
    ("sip:a@h", "http://h"),
]


@pytest.mark.parametrize(("a", "b"), EQUIVALENT)
def test_rfc3261_equivalent_uris(a: str, b: str) -> None:
    ua, ub = parse_uri(a), parse_uri(b)
    assert uri_equal(ua, ub) and uri_equal(ub, ua)


@pytest.mark.parametrize(("a", "b"), NOT_EQUIVALENT)
def test_rfc3261_non_equivalent_uris(a: str, b: str) -> None:
    ua, ub = parse_uri(a), parse_uri(b)
    assert not uri_equal(ua, ub) and not uri_equal(ub, ua)


def test_tel_comparison_rfc3966() -> None:
    eq = uri_equal
    assert eq(parse_uri("tel:+1-201-555-0123"), parse_uri("tel:+1(201)5550123"))
    assert eq(
        parse_uri("tel:7042;phone-context=EXAMPLE.com;ext=1"),
        parse_uri("tel:7042;ext=1;phone-context=example.com"),
    )
    assert eq(
        parse_uri("tel:863-1234;phone-context=+1-914-555"),
        parse_uri("tel:8631234;phone-context=+1914555"),
    )
    assert not eq(parse_uri("tel:+1-201-555-0123"), parse_uri("tel:+1-201-555-0124"))
    assert not eq(parse_uri("tel:+12015550123"), parse_uri("tel:+12015550123;ext=1"))


def test_opaque_comparison_is_exact() -> None:
    assert uri_equal(parse_uri("urn:a:b"), parse_uri("URN:a:b"))
    assert not uri_equal(parse_uri("urn:a:b"), parse_uri("urn:a:B"))


def test_unescape() -> None:
    assert unescape("%75se%72") == "user"
    assert unescape("I%20have%20spaces") == "I have spaces"
    assert unescape("null-%00-null") == "null-\x00-null"
    assert unescape("caf%C3%A9") == "café"
    assert unescape("plain") == "plain"
    assert unescape("%25%34%31") == "%41"
    for bad in ("%", "%4", "%zz", "a%g0", "%%41"):
        with pytest.raises(ParseError):
            unescape(bad)


# --- property tests ---------------------------------------------------------------------

UNRESERVED = "abcXYZ09-_.!~*'()"


def _escaped(chars: str, min_size: int) -> st.SearchStrategy[str]:
    esc = st.integers(0, 255).map(lambda b: f"%{b:02X}")
    return st.lists(st.sampled_from(list(chars)) | esc, min_size=min_size, max_size=8).map("".join)


_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True)
hosts = st.one_of(
    st.lists(_label, min_size=1, max_size=4).map(".".join),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
)
param_chars = UNRESERVED + "[]/:&+$"
uri_params = st.lists(
    st.tuples(_escaped(param_chars, 1), st.none() | _escaped(param_chars, 1)), max_size=4
)
hnv = UNRESERVED + "[]/?:+$"
uri_headers = st.none() | st.lists(
    st.tuples(_escaped(hnv, 1), _escaped(hnv, 0)), min_size=1, max_size=3
).map(lambda hs: "&".join(f"{n}={v}" for n, v in hs))


@st.composite
def sip_uris(draw: st.DrawFn) -> tuple[str, dict[str, object]]:
    scheme = draw(st.sampled_from(["sip", "sips"]))
    user = draw(st.none() | _escaped(UNRESERVED + "&=+$,;?/", 1))
    password = draw(st.none() | _escaped(UNRESERVED + "&=+$,", 0)) if user else None
    host = draw(hosts)
    port = draw(st.none() | st.integers(0, 65535))
    params = draw(uri_params)
    headers = draw(uri_headers)
    text = f"{scheme}:"
    if user is not None:
        text += user if password is None else f"{user}:{password}"
        text += "@"
    text += host if port is None else f"{host}:{port}"
    text += "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params)
    if headers is not None:
        text += "?" + headers
    fields = dict(
        scheme=scheme,
        user=user,
        password=password,
        host=host,
        port=port,
        params=params,
        headers=headers,
    )
    return text, fields


@given(sip_uris())
def test_generated_uris_round_trip(case: tuple[str, dict[str, object]]) -> None:
    text, f = case
    u = parse_uri(text)
    assert str(u) == text
    assert (u.scheme, u.user, u.password, u.host, u.port, u.headers) == (
        f["scheme"],
        f["user"],
        f["password"],
        f["host"],
        f["port"],
        f["headers"],
    )
    assert u.params.items() == f["params"]
    assert uri_equal(u, parse_uri(str(u.copy())))


@given(st.ip_addresses(v=6))
def test_any_ipv6_reference_parses(addr: ipaddress.IPv6Address) -> None:
    exploded = f"sip:[{addr.exploded}]:5060"
    assert parse_uri(exploded).port == 5060
    assert uri_equal(parse_uri(exploded), parse_uri(f"sip:[{addr.compressed}]:5060"))


FUZZ = 'sipte:@;=?&<>[]%"\\ ,.+-/0129aAfF\t\r\n\x00é'


@given(
    st.text(FUZZ, max_size=40).map(lambda s: "sip:" + s)
    | st.text(FUZZ, max_size=40)
    | st.text(max_size=30)
)
def test_fuzz_only_parse_error_escapes(text: str) -> None:
    try:
        u = parse_uri(text)
    except ParseError:
        return
    assert uri_equal(u, parse_uri(str(u)))
    assert str(parse_uri(str(u))) == str(u)
