"""Params container and generic-param parsing (RFC 3261 §7.3.1, §25.1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipedge.sip.errors import ParseError
from sipedge.sip.params import Params, parse_params

TOKEN_ALPHABET = "abcXYZ019-.!%*_+`'~"
FUZZ_ALPHABET = ';=" \t\r\n\\abc1:[]<>,@%\x00\x7fé'


def test_parse_basic_and_lookup() -> None:
    p = parse_params(";branch=z9hG4bK776;Received=192.0.2.1;lr")
    assert p.items() == [("branch", "z9hG4bK776"), ("Received", "192.0.2.1"), ("lr", None)]
    assert p.get("BRANCH") == "z9hG4bK776"
    assert p.get("received") == "192.0.2.1"
    assert p.get("lr") is None and "lr" in p and "LR" in p
    assert p.get("missing", "dflt") == "dflt"
    assert "missing" not in p and 5 not in p
    assert p["RECEIVED"] == "192.0.2.1"
    with pytest.raises(KeyError):
        p["missing"]
    assert list(p) == ["branch", "Received", "lr"]
    assert len(p) == 3 and bool(p)


def test_str_is_input_and_leading_semicolon_optional() -> None:
    assert str(parse_params(";a=b;lr")) == ";a=b;lr"
    assert str(parse_params("a=b;lr")) == ";a=b;lr"
    assert str(parse_params("")) == "" and not parse_params("")


def test_lws_tolerated_and_dropped() -> None:
    # RFC 4475 wsinv: To: ... ;   tag    = 1918181833n  and folded Contact parameters
    p = parse_params(" ;   tag    = 1918181833n")
    assert p.items() == [("tag", "1918181833n")]
    p = parse_params("; newparam =\r\n      newvalue ;\r\n  secondparam ; q = 0.33")
    assert p.items() == [("newparam", "newvalue"), ("secondparam", None), ("q", "0.33")]
    assert str(p) == ";newparam=newvalue;secondparam;q=0.33"


def test_quoted_values_keep_quotes_and_semicolons() -> None:
    p = parse_params(';+sip.instance="<urn:uuid:f81d4fae-7dec>";x="a;b\\"c";reg-id=1')
    assert p.get("+sip.instance") == '"<urn:uuid:f81d4fae-7dec>"'
    assert p.get("x") == '"a;b\\"c"'
    assert p.get("reg-id") == "1"
    assert str(p) == ';+sip.instance="<urn:uuid:f81d4fae-7dec>";x="a;b\\"c";reg-id=1'


def test_utf8_in_quoted_value() -> None:
    # RFC 4475 intmeth: fromParam''~+*_!.-%="работающий"
    p = parse_params(";fromParam''~+*_!.-%=\"работающий\";tag=_token~1'+`*%!-.")
    assert p.get("fromparam''~+*_!.-%") == '"работающий"'
    assert p.get("tag") == "_token~1'+`*%!-."


def test_host_values_including_ipv6() -> None:
    p = parse_params(";received=[2001:db8::9:255];maddr=2001:db8::1")
    assert p.get("received") == "[2001:db8::9:255]"
    assert p.get("maddr") == "2001:db8::1"


def test_set_replaces_in_place_and_appends() -> None:
    p = parse_params(";Tag=1;lr")
    p.set("tag", "2")
    p.set("rport", "5060")
    assert p.items() == [("Tag", "2"), ("lr", None), ("rport", "5060")]
    assert str(p) == ";Tag=2;lr;rport=5060"
    p.set("lr", "on")
    assert str(p) == ";Tag=2;lr=on;rport=5060"


def test_remove_invalidates_cached_text() -> None:
    p = parse_params(";a=1;B=2;b=3;c")
    assert str(p) == ";a=1;B=2;b=3;c"
    p.remove("b")
    assert str(p) == ";a=1;c"
    p.remove("absent")
    assert p.items() == [("a", "1"), ("c", None)]


def test_equality_ignores_order_and_name_case_not_value_case() -> None:
    assert parse_params(";a=1;B=x") == parse_params(";b=x;A=1")
    assert parse_params(";a=1") != parse_params(";a=2")
    assert parse_params(";a=X") != parse_params(";a=x")
    assert parse_params(";a") != parse_params(";a=a")
    assert Params([("a", None)]) == parse_params("a")
    assert Params() != parse_params("a")
    assert Params().__eq__("x") is NotImplemented


def test_copy_is_independent() -> None:
    p = parse_params(";a=1")
    q = p.copy()
    q.set("a", "2")
    q.set("b", None)
    assert str(p) == ";a=1" and str(q) == ";a=2;b"


def test_constructor_and_repr() -> None:
    p = Params([("transport", "tcp"), ("lr", None)])
    assert str(p) == ";transport=tcp;lr"
    assert repr(p) == "Params([('transport', 'tcp'), ('lr', None)])"
    assert p.names() == ["transport", "lr"]


@pytest.mark.parametrize(
    "text",
    [
        ";",
        ";;",
        ";a;",
        ";a=",
        ";=b",
        ";a=b=c",
        ';a="unterminated',
        ";a b=c",
        ";a=b c",
        ";a=<b>",
        ";a=b,c",
        ';a="x"y',
        ";a\x00=b",
        ';a="ctl\x01"',
    ],
)
def test_malformed_parameters_raise_parse_error(text: str) -> None:
    with pytest.raises(ParseError) as exc:
        parse_params(text)
    assert exc.value.status_hint == 400


names = st.text(TOKEN_ALPHABET, min_size=1, max_size=8)
values = st.one_of(
    st.none(),
    st.text(TOKEN_ALPHABET + ":[]", min_size=1, max_size=8),
    st.text('ab ;,=\\"é', max_size=6).map(
        lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    ),
)


@given(st.lists(st.tuples(names, values), max_size=6))
def test_round_trip_generated(items: list[tuple[str, str | None]]) -> None:
    text = "".join(f";{n}" if v is None else f";{n}={v}" for n, v in items)
    p = parse_params(text)
    assert str(p) == text
    assert p.items() == items
    assert p == Params(items)


@given(st.text(FUZZ_ALPHABET, max_size=40) | st.text(max_size=40))
def test_fuzz_only_parse_error_escapes(text: str) -> None:
    try:
        p = parse_params(text)
    except ParseError:
        return
    assert parse_params(str(p)) == p


def test_lookup_ignores_case_for_any_spelling() -> None:
    # Unicode names whose lower-case form changes length still match (API-built lists).
    p = Params([("BrAnCh", "z9hG4bK1"), ("İx", "1"), ("rport", None)])
    assert p.get("branch") == "z9hG4bK1" and p.get("BRANCH") == "z9hG4bK1"
    assert p.get("i̇x") == "1"  # "İx".lower() is three characters long
    assert "RPORT" in p and "rpor" not in p and "rportx" not in p
