"""From/To/Contact/Route values (RFC 3261 §20.10, §25.1; RFC 4475 cases)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipedge.sip.errors import ParseError
from sipedge.sip.hdr.nameaddr import (
    NameAddr,
    parse_contact,
    parse_name_addr,
    parse_name_addr_list,
)
from sipedge.sip.params import Params
from sipedge.sip.uri import parse_uri


def test_quoted_display_name_and_tag() -> None:
    n = parse_name_addr('"Bob" <sip:bob@biloxi.com>;tag=a6c85cf')
    assert n.display_name == "Bob" and n.quoted and n.bracketed
    assert str(n.uri) == "sip:bob@biloxi.com"
    assert n.tag == "a6c85cf"
    assert str(n) == '"Bob" <sip:bob@biloxi.com>;tag=a6c85cf'


@pytest.mark.parametrize(
    "value",
    [
        "<sip:alice@atlanta.com>;tag=1928301774",
        "sip:alice@atlanta.com;tag=1928301774",
        '"A. G. Bell" <sip:agb@bell-telephone.com>;tag=a48s',
        "Anonymous <sip:c8oqz84zk7z@privacy.org>;tag=hyh8",
        '"" <sip:x@y>',
        "<sip:services.example.com;lr;unknownwith=value;unknown-no-value>",
        "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>",
        '<sip:a@b>;+sip.instance="<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>";reg-id=1',
        "<sip:[2001:db8::10]:5070>;expires=3600",
        "<sips:bob@192.0.2.4;transport=tls>;q=0.7;expires=3600",
        "<tel:+1-201-555-0123>",
        "isbn:2983792873",
    ],
)
def test_canonical_values_round_trip(value: str) -> None:
    assert str(parse_name_addr(value)) == value


def test_addr_spec_uri_ends_at_first_semicolon() -> None:
    # RFC 3261 §20.10; RFC 4475 cparam01 / cparam02
    n = parse_name_addr("sip:+19725552222@gw1.example.net;unknownparam")
    assert not n.bracketed and str(n.uri) == "sip:+19725552222@gw1.example.net"
    assert n.params.items() == [("unknownparam", None)] and not n.uri.params
    n = parse_name_addr("<sip:+19725552222@gw1.example.net;unknownparam>")
    assert n.bracketed and n.uri.params.items() == [("unknownparam", None)] and not n.params


def test_wsinv_values() -> None:
    n = parse_name_addr("\r\n sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n")
    assert str(n.uri) == "sip:vivekg@chair-dnrc.example.com" and n.tag == "1918181833n"
    n = parse_name_addr(
        '"J Rosenberg \\\\\\""       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8'
    )
    assert n.display_name == 'J Rosenberg \\\\\\"'
    assert n.display_text == 'J Rosenberg \\"'
    assert n.tag == "98asjd8"
    n = parse_name_addr(
        '"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =\r\n      newvalue ;\r\n'
        "  secondparam ; q = 0.33"
    )
    assert n.display_text == 'Quoted string ""'
    assert n.params.items() == [("newparam", "newvalue"), ("secondparam", None), ("q", "0.33")]


def test_lwsdisp_token_display_without_space() -> None:
    # RFC 4475 §3.1.1.6: no LWS before '<' must be accepted
    n = parse_name_addr("caller<sip:caller@example.com>;tag=323")
    assert n.display_name == "caller" and not n.quoted and n.tag == "323"
    assert str(n) == "caller <sip:caller@example.com>;tag=323"


def test_intmeth_values() -> None:
    n = parse_name_addr(
        "token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;"
        "fromParam''~+*_!.-%=\"работающий\";tag=_token~1'+`*%!-."
    )
    assert n.display_name == "token1~` token2'+_ token3*%!.-" and not n.quoted
    assert n.tag == "_token~1'+`*%!-."
    assert n.params.get("fromparam''~+*_!.-%") == '"работающий"'
    n = parse_name_addr(
        '"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" '
        "<sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>"
    )
    assert n.display_text == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert n.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"


def test_escapes_in_uri_kept() -> None:
    n = parse_name_addr("<sip:I%20have%20spaces@example.net>;tag=938")  # esc01
    assert n.uri.user == "I%20have%20spaces"
    n = parse_name_addr("sip:%75se%72@example.com")
    assert n.uri.user == "%75se%72"
    n = parse_name_addr('"%Z%45" <sip:resource@example.com>')  # esc02: not an escape here
    assert n.display_name == "%Z%45"


def test_other_schemes() -> None:
    # RFC 4475 unksm2
    assert parse_name_addr("isbn:2983792873").uri.opaque == "2983792873"
    n = parse_name_addr("<http://www.example.com>;tag=3234233")
    assert n.uri.scheme == "http" and n.tag == "3234233"
    assert parse_name_addr("<name:John_Smith>").uri.scheme == "name"


def test_serialisation_adds_brackets_when_needed() -> None:
    uri = parse_uri("sip:a@b;transport=tcp")
    assert str(NameAddr(uri, bracketed=False)) == "<sip:a@b;transport=tcp>"
    assert str(NameAddr(parse_uri("sip:a@b?x=y"), bracketed=False)) == "<sip:a@b?x=y>"
    assert str(NameAddr(parse_uri("sip:a,b@c"), bracketed=False)) == "<sip:a,b@c>"
    n = NameAddr(parse_uri("sip:a@b"), params=Params([("tag", "x")]), bracketed=False)
    assert str(n) == "sip:a@b;tag=x"
    # a display name always needs <>
    n = NameAddr(parse_uri("sip:a@b"), display_name="Al", bracketed=False, quoted=False)
    assert str(n) == "Al <sip:a@b>"
    # an unquoted display name that is not tokens gets quoted
    n = NameAddr(parse_uri("sip:a@b"), display_name="Bell, Alexander", quoted=False)
    assert str(n) == '"Bell, Alexander" <sip:a@b>'


def test_display_text_helpers() -> None:
    n = NameAddr(parse_uri("sip:a@b"))
    n.set_display_text('Say "hi" \\ bye')
    assert n.display_name == 'Say \\"hi\\" \\\\ bye' and n.quoted
    assert str(n) == '"Say \\"hi\\" \\\\ bye" <sip:a@b>'
    again = parse_name_addr(str(n))
    assert again.display_text == 'Say "hi" \\ bye'
    n.set_display_text(None)
    assert n.display_name is None and n.display_text is None
    assert parse_name_addr("Al <sip:a@b>").display_text == "Al"


def test_copy_is_independent() -> None:
    n = parse_name_addr('"A" <sip:a@b;lr>;tag=1')
    c = n.copy()
    c.params.set("tag", "2")
    c.uri.params.remove("lr")
    assert str(n) == '"A" <sip:a@b;lr>;tag=1'
    assert str(c) == '"A" <sip:a@b>;tag=2'


def test_lists_and_contact_star() -> None:
    routes = parse_name_addr_list("<sip:p1.example.com;lr>, <sip:p2.example.com;lr>,<sip:p3>")
    assert [r.uri.host for r in routes] == ["p1.example.com", "p2.example.com", "p3"]
    contacts = parse_contact(
        '"Mr. Watson" <sip:watson@worcester.bell-telephone.com>;q=0.7; expires=3600, '
        '"Mr. Watson" <mailto:watson@bell-telephone.com> ;q=0.1'
    )
    assert contacts != "*"
    assert [c.params.get("q") for c in contacts] == ["0.7", "0.1"]
    assert contacts[1].uri.scheme == "mailto"
    assert parse_contact(" * ") == "*"
    assert parse_contact("sip:a@b;expires=0") != "*"
    # commas inside quotes and brackets do not split
    two = parse_name_addr_list('"Bell, Alexander" <sip:a@b>, "Watson, Thomas" <sip:c@d>')
    assert [x.display_name for x in two] == ["Bell, Alexander", "Watson, Thomas"]


@pytest.mark.parametrize(
    ("value", "word"),
    [
        ('"Watson, Thomas" < sip:t.watson@example.org >', "whitespace"),  # badaspec
        ("<sip:t.watson@example.org >", "whitespace"),
        ("< sip:t.watson@example.org>", "whitespace"),
        ("Bell, Alexander <sip:a.g.bell@example.com>;tag=43", "display name"),  # baddn
        ('"Mr. J. User <sip:j.user@example.com>', "quoted"),  # quotbal
        ("sip:user@example.com?Route=%3Csip:sip.example.com%3E", "<>"),  # regbadct
        ("sip:a,b@c", "<>"),
        ("sip:user@example.com x", "URI"),
        ("", "empty"),
        ("   ", "empty"),
        ("<sip:a@b", "'>'"),
        ("<>", "whitespace"),
        ("<sip:a@b> junk", "junk"),
        ("<sip:a@b>;", "parameter"),
        ("<sip:a@b>;tag=", "value"),
        ('"Bob" sip:a@b', "<URI>"),
        ('"Bob" Smith <sip:a@b>', "<URI>"),
        ("Bob <sip:a b@c>", "URI"),
        ("<sip:a@[::1>", "IPv6"),
        ("<Sip:a@b:99999>", "port"),
        ("<%sip:a@b>", "scheme"),
        ('Bob "x" <sip:a@b>', "display name"),
        ('sip:a@b;tag=1;x="unterminated', "quoted"),
    ],
)
def test_malformed_values_raise_parse_error(value: str, word: str) -> None:
    with pytest.raises(ParseError, match=word) as exc:
        parse_name_addr(value)
    assert exc.value.status_hint == 400


def test_list_errors() -> None:
    for value in ("<sip:a@b>,,<sip:c@d>", "<sip:a@b>,", '"x <sip:a@b>', "<sip:a@b"):
        with pytest.raises(ParseError):
            parse_name_addr_list(value)
    with pytest.raises(ParseError):
        parse_contact("*, <sip:a@b>")


_token = st.text("abcXYZ0129-.!%*_+`'~", min_size=1, max_size=8)
_display = st.none() | st.text('ab XY,;<>@:é\\"', max_size=12).map(
    lambda s: s.replace("\\", "\\\\").replace('"', '\\"')
)
_uris = st.sampled_from(
    [
        "sip:alice@atlanta.com",
        "sips:bob@[2001:db8::1]:5061;transport=tls",
        "sip:p.example.com;lr",
        "tel:+1-201-555-0123",
        "sip:a@b?subject=x%20y",
        "urn:uuid:f81d4fae",
    ]
)
_params = st.lists(st.tuples(_token, st.none() | _token), max_size=3)


@given(_display, _uris, _params)
def test_generated_name_addrs_round_trip(
    display: str | None, uri: str, params: list[tuple[str, str | None]]
) -> None:
    text = ("" if display is None else f'"{display}" ') + f"<{uri}>"
    text += "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params)
    n = parse_name_addr(text)
    assert str(n) == text
    assert n.display_name == display and str(n.uri) == uri and n.params.items() == params


FUZZ = 'sip:@;=<>"\\ ,?&[]%\t\r\nabAB09.-*é\x00'


@given(st.text(FUZZ, max_size=50) | st.text(max_size=30))
def test_fuzz_only_parse_error_escapes(value: str) -> None:
    for fn in (parse_name_addr, parse_name_addr_list, parse_contact):
        try:
            result = fn(value)
        except ParseError:
            continue
        if result == "*":
            continue
        for n in result if isinstance(result, list) else [result]:
            again = parse_name_addr(str(n))
            assert str(again) == str(n)
