"""CSeq and unsigned integer values (RFC 3261 §8.1.1.5, §20.16, §20.22; RFC 4475 §3.1.2.4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipedge.sip.errors import ParseError
from sipedge.sip.hdr.cseq import CSEQ_MAX, CSeq, parse_cseq, parse_uint


def test_parse_and_serialise() -> None:
    c = parse_cseq("314159 INVITE")
    assert c == CSeq(314159, "INVITE") and str(c) == "314159 INVITE"
    assert parse_cseq("  1   ACK ") == CSeq(1, "ACK")
    assert parse_cseq("0 OPTIONS").number == 0  # RFC 4475 ncl


def test_wsinv_folded_and_leading_zeros() -> None:
    assert parse_cseq("0009\r\n  INVITE") == CSeq(9, "INVITE")
    assert parse_cseq("00000000000000000007 BYE") == CSeq(7, "BYE")
    assert parse_cseq("00 BYE") == CSeq(0, "BYE")


def test_extension_method_is_a_token() -> None:
    # RFC 4475 intmeth
    c = parse_cseq("139122385 !interesting-Method0123456789_*+`.%indeed'~")
    assert c.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert parse_cseq("8 RE%47IST%45R").method == "RE%47IST%45R"  # esc02: not unescaped


def test_32_bit_limit() -> None:
    assert parse_cseq(f"{CSEQ_MAX} BYE").number == 2**32 - 1
    assert parse_cseq("2130706432 INVITE").number == 2130706432  # RFC 4475 lwsruri
    for big in (str(2**32), "36893488147419103232", "9292394834772304023312", "9" * 5000):
        with pytest.raises(ParseError, match="too large"):
            parse_cseq(f"{big} REGISTER")  # RFC 4475 scalar02 / scalarlg


@pytest.mark.parametrize(
    "value",
    [
        "",
        "INVITE",
        "1",
        "1INVITE",
        "-1 INVITE",
        "+1 INVITE",
        "1.0 INVITE",
        "1 INV ITE",
        "1 INVITE;x",
        "one INVITE",
        "\u0661 INVITE",
        "1 INV\u00c9TE",
        "1 <INVITE>",
        "0x1 BYE",
    ],
)
def test_malformed_cseq(value: str) -> None:
    with pytest.raises(ParseError) as exc:
        parse_cseq(value)
    assert exc.value.status_hint == 400


def test_parse_uint() -> None:
    assert parse_uint("70", "Max-Forwards", 255) == 70
    assert parse_uint(" 0068", "Max-Forwards", 255) == 68  # RFC 4475 wsinv
    assert parse_uint("0", "Max-Forwards", 255) == 0  # RFC 4475 zeromf
    assert parse_uint("255", "Max-Forwards", 255) == 255
    assert parse_uint("00000000000000000000000001", "Expires", 2**32 - 1) == 1
    assert parse_uint("4294967295", "Expires", 2**32 - 1) == 2**32 - 1


@pytest.mark.parametrize(
    ("value", "what", "max_value"),
    [
        ("300", "Max-Forwards", 255),  # RFC 4475 scalar02
        ("1" + "0" * 100, "Expires", 2**32 - 1),  # RFC 4475 scalar02
        ("4294967296", "Expires", 2**32 - 1),
        ("-999", "Content-Length", 2**31 - 1),  # RFC 4475 ncl
        ("", "Content-Length", 2**31 - 1),
        ("1 2", "Content-Length", 2**31 - 1),
        ("12a", "Content-Length", 2**31 - 1),
        ("\u0665", "Max-Forwards", 255),
        ("9" * 10000, "Content-Length", 2**31 - 1),
    ],
)
def test_parse_uint_errors_name_the_header(value: str, what: str, max_value: int) -> None:
    with pytest.raises(ParseError, match=what) as exc:
        parse_uint(value, what, max_value)
    assert exc.value.status_hint == 400


@given(st.integers(0, CSEQ_MAX), st.text("ABCINVTEabc-.!%*_+`'~", min_size=1, max_size=12))
def test_round_trip(number: int, method: str) -> None:
    c = CSeq(number, method)
    assert parse_cseq(str(c)) == c


@given(st.text(" \t\r\n0123456789ABCINVITE;-+.\u0661", max_size=30) | st.text(max_size=30))
def test_fuzz_only_parse_error_escapes(value: str) -> None:
    try:
        c = parse_cseq(value)
    except ParseError:
        pass
    else:
        assert 0 <= c.number <= CSEQ_MAX
    try:
        n = parse_uint(value, "Max-Forwards", 255)
    except ParseError:
        pass
    else:
        assert 0 <= n <= 255
