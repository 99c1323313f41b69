"""Challenges and credentials (RFC 3261 §20.7, §20.44, §22, §25; RFC 7616; RFC 8760)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipedge.sip.errors import ParseError
from sipedge.sip.hdr.auth import Challenge, Credentials, parse_challenge, parse_credentials

# RFC 3261 §20.44 / §20.7 examples
CHALLENGE = (
    'Digest realm="atlanta.com",\r\n domain="sip:boxesbybob.com", qop="auth",\r\n'
    ' nonce="f84f1cec41e6cbe5aea9c8e88d359",\r\n opaque="", stale=FALSE, algorithm=MD5'
)
CREDENTIALS = (
    'Digest username="Alice", realm="atlanta.com",\r\n nonce="84a4cc6f3082121f32b42a2187831a9e",'
    '\r\n response="7587245234b3434cc3412213e5f113a5432"'
)


def test_rfc3261_challenge() -> None:
    c = parse_challenge(CHALLENGE)
    assert c.scheme == "Digest"
    assert c.params == {
        "realm": "atlanta.com",
        "domain": "sip:boxesbybob.com",
        "qop": "auth",
        "nonce": "f84f1cec41e6cbe5aea9c8e88d359",
        "opaque": "",
        "stale": "FALSE",
        "algorithm": "MD5",
    }
    assert str(c) == (
        'Digest realm="atlanta.com", domain="sip:boxesbybob.com", qop="auth", '
        'nonce="f84f1cec41e6cbe5aea9c8e88d359", opaque="", stale=FALSE, algorithm=MD5'
    )
    assert parse_challenge(str(c)) == c


def test_rfc3261_credentials() -> None:
    c = parse_credentials(CREDENTIALS)
    assert c.scheme == "Digest" and c.params["username"] == "Alice"
    assert c.params["response"] == "7587245234b3434cc3412213e5f113a5432"
    assert parse_credentials(str(c)) == c


def test_rfc7616_quoting_rules() -> None:
    c = Credentials(
        "Digest",
        {
            "username": "bob",
            "realm": "biloxi.com",
            "nonce": "dcd98b",
            "uri": "sip:bob@biloxi.com",
            "algorithm": "SHA-256",
            "qop": "auth",
            "nc": "00000001",
            "cnonce": "0a4f113b",
            "response": "6629fae4",
            "opaque": "5ccc069c",
            "userhash": "false",
        },
    )
    assert str(c) == (
        'Digest username="bob", realm="biloxi.com", nonce="dcd98b", uri="sip:bob@biloxi.com", '
        'algorithm=SHA-256, qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae4", '
        'opaque="5ccc069c", userhash=false'
    )
    ch = Challenge("Digest", {"realm": "r", "qop": "auth,auth-int", "algorithm": "SHA-512-256"})
    assert str(ch) == 'Digest realm="r", qop="auth,auth-int", algorithm=SHA-512-256'
    assert str(Challenge("Digest", {"realm": "r", "qop": "auth"})) == 'Digest realm="r", qop="auth"'


def test_names_lower_cased_values_unquoted_and_unescaped() -> None:
    c = parse_credentials('Digest UserName="a\\"b\\\\c",Realm = "x, y" ,NC=00000001')
    assert c.params == {"username": 'a"b\\c', "realm": "x, y", "nc": "00000001"}
    assert str(c) == 'Digest username="a\\"b\\\\c", realm="x, y", nc=00000001'
    assert parse_credentials(str(c)) == c


def test_unknown_scheme_regaut01() -> None:
    c = parse_credentials("NoOneKnowsThisScheme opaque-data=here")
    assert c.scheme == "NoOneKnowsThisScheme" and c.params == {"opaque-data": "here"}
    assert str(c) == "NoOneKnowsThisScheme opaque-data=here"


def test_token68_and_bare_scheme() -> None:
    c = parse_credentials("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln-_~+/==")
    assert c.token68 == "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln-_~+/==" and c.params == {}
    assert str(c) == "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln-_~+/=="
    ch = parse_challenge('Bearer realm="example.com", scope="sip"')
    assert ch.token68 is None and ch.params == {"realm": "example.com", "scope": "sip"}
    assert parse_challenge("Negotiate") == Challenge("Negotiate", {})
    assert str(Challenge("Negotiate")) == "Negotiate"
    # "abc=" is a token68 (RFC 7235 §2.1), not an auth-param without a value
    assert (
        parse_credentials("Basic YWxhZGRpbjpvcGVuc2VzYW1l=").token68 == "YWxhZGRpbjpvcGVuc2VzYW1l="
    )


def test_empty_list_elements_tolerated() -> None:
    c = parse_challenge('Digest realm="a",, nonce="b",')
    assert c.params == {"realm": "a", "nonce": "b"}


@pytest.mark.parametrize(
    ("value", "word"),
    [
        ("", "auth-scheme"),
        ('"Digest" realm="a"', "auth-scheme"),
        ('Digest,realm="a"', "auth-scheme"),
        ('Digest realm="a', "auth-param"),
        ('Digest realm="a" nonce="b"', "','"),
        ('Digest realm=, nonce="a"', "auth-param"),
        ("Digest =a", "auth-param"),
        ('Digest realm="a", realm="b"', "repeated"),
        ('Digest realm="a", REALM="b"', "repeated"),
        ("Digest realm=a b", "','"),
        ("Digest realm=<x>", "auth-param"),
        ('Digest realm="a\x00"', "auth-param"),
        ("Digest a=b,=c", "auth-param"),
    ],
)
def test_malformed_raise_parse_error(value: str, word: str) -> None:
    for fn in (parse_challenge, parse_credentials):
        with pytest.raises(ParseError, match=word) as exc:
            fn(value)
        assert exc.value.status_hint == 400


_token = st.text("abcXYZ019-.!%*_+`'~", min_size=1, max_size=8)
_value = st.text('abc XYZ,;="\\é:/', max_size=10)


@given(_token, st.dictionaries(_token.map(str.lower), _value | _token, max_size=5))
def test_round_trip_generated(scheme: str, params: dict[str, str]) -> None:
    c = Credentials(scheme, params)
    assert parse_credentials(str(c)) == c
    ch = Challenge(scheme, params)
    assert parse_challenge(str(ch)) == ch


FUZZ = 'Digest realm=",\\ \t\r\nabc019=-/+~.%\x00é'


@given(st.text(FUZZ, max_size=50) | st.text(max_size=30))
def test_fuzz_only_parse_error_escapes(value: str) -> None:
    for parse in (parse_challenge, parse_credentials):
        try:
            parsed = parse(value)
        except ParseError:
            continue
        assert parse(str(parsed)) == parsed
