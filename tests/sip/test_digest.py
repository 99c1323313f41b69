"""Tests for sipedge.sip.digest (RFC 7616, RFC 2617, RFC 8760, RFC 3261 §22)."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipedge.sip.digest import (
    AuthOutcome,
    Challenge,
    NonceCounter,
    NonceFactory,
    NonceStatus,
    authenticate,
    base_algorithm,
    build_authorization,
    build_challenges,
    choose_challenge,
    compute_ha1,
    compute_response,
    normalize_algorithm,
    verify,
)
from sipedge.sip.errors import ParseError, ProtocolError

SECRET = b"0123456789abcdef-test-secret"

# RFC 7616 §3.9.1
RFC7616 = {
    "username": "Mufasa",
    "realm": "http-auth@example.org",
    "uri": "/dir/index.html",
    "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    "nc": "00000001",
    "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    "qop": "auth",
    "opaque": "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS",
}
RFC7616_MD5 = "8ca523f5e9506fed4657c9700eebdbec"
RFC7616_SHA256 = "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"

# RFC 2617 §3.5
RFC2617 = {
    "username": "Mufasa",
    "realm": "testrealm@host.com",
    "nonce": "dcd98b7102dd2f0e8b11d0f600bfb0c093",
    "uri": "/dir/index.html",
    "qop": "auth",
    "nc": "00000001",
    "cnonce": "0a4f113b",
    "response": "6629fae49393a05397450978507c4ef1",
    "opaque": "5ccc069c403ebaf9f0171e9517f40e41",
}


def parse_digest(value: str) -> dict[str, str]:
    """Minimal test-only parser for ``Digest a=b, c="d"`` (escapes handled)."""
    assert value.startswith("Digest ")
    out: dict[str, str] = {}
    pattern = re.compile(r'\s*([A-Za-z0-9-]+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*(?:,|$)')
    pos = len("Digest ")
    while pos < len(value):
        m = pattern.match(value, pos)
        assert m is not None, value[pos:]
        raw = m.group(2)
        out[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", raw) if raw is not None else m.group(3)
        pos = m.end()
    return out


def md5(s: str) -> str:
    return hashlib.md5(s.encode()).hexdigest()


# --- known answers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "expected"), [("MD5", RFC7616_MD5), ("SHA-256", RFC7616_SHA256)]
)
def test_rfc7616_example(algorithm: str, expected: str) -> None:
    ha1 = compute_ha1("Mufasa", RFC7616["realm"], "Circle of Life", algorithm)
    params = {**RFC7616, "algorithm": algorithm, "response": expected}
    assert verify(params, "GET", ha1)
    assert verify({**params, "response": expected.upper()}, "GET", ha1)
    assert not verify({**params, "response": expected}, "POST", ha1)
    other = compute_ha1("Mufasa", RFC7616["realm"], "Circle of life", algorithm)
    assert not verify(params, "GET", other)


def test_rfc7616_response_value_directly() -> None:
    ha1 = compute_ha1("Mufasa", RFC7616["realm"], "Circle of Life", "SHA-256")
    got = compute_response(
        ha1,
        algorithm="SHA-256",
        method="GET",
        uri=RFC7616["uri"],
        nonce=RFC7616["nonce"],
        qop="auth",
        nc="00000001",
        cnonce=RFC7616["cnonce"],
    )
    assert got == RFC7616_SHA256


def test_rfc2617_example_and_absent_algorithm_means_md5() -> None:
    ha1 = compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    assert ha1 == md5("Mufasa:testrealm@host.com:Circle Of Life")
    assert verify(RFC2617, "GET", ha1)
    assert not verify({**RFC2617, "nc": "00000002"}, "GET", ha1)


def test_rfc2069_style_without_qop() -> None:
    ha1 = compute_ha1("bob", "example.com", "pw")
    ha2 = md5("REGISTER:sip:example.com")
    params = {
        "username": "bob",
        "realm": "example.com",
        "nonce": "abc",
        "uri": "sip:example.com",
        "response": md5(f"{ha1}:abc:{ha2}"),
    }
    assert verify(params, "REGISTER", ha1)
    assert not verify(params, "INVITE", ha1)


def test_sess_and_auth_int_follow_rfc7616_formulas() -> None:
    ha1 = compute_ha1("bob", "r", "pw", "MD5-sess")
    assert ha1 == md5("bob:r:pw")
    sess = md5(f"{ha1}:n:c")
    ha2 = md5("INVITE:sip:a@b:" + hashlib.md5(b"v=0\r\n").hexdigest())
    expected = md5(f"{sess}:n:00000001:c:auth-int:{ha2}")
    params = {
        "username": "bob",
        "realm": "r",
        "nonce": "n",
        "uri": "sip:a@b",
        "cnonce": "c",
        "nc": "00000001",
        "qop": "auth-int",
        "algorithm": "md5-sess",
        "response": expected,
    }
    assert verify(params, "INVITE", ha1, b"v=0\r\n")
    assert not verify(params, "INVITE", ha1, b"v=1\r\n")


def test_algorithm_names() -> None:
    assert normalize_algorithm(None) == "MD5"
    assert normalize_algorithm("sha-256-SESS") == "SHA-256-sess"
    assert normalize_algorithm("SHA-512-256") is None
    assert base_algorithm("MD5-sess") == "MD5"
    assert compute_ha1("a", "b", "c", "sha-256") == hashlib.sha256(b"a:b:c").hexdigest()
    with pytest.raises(ProtocolError):
        compute_ha1("a", "b", "c", "SHA-1")


# --- verify on bad input ------------------------------------------------------------


@pytest.mark.parametrize("missing", ["username", "nonce", "uri", "response", "nc", "cnonce"])
def test_missing_parameter_is_parse_error(missing: str) -> None:
    params = dict(RFC2617)
    del params[missing]
    with pytest.raises(ParseError):
        verify(params, "GET", "0" * 32)


@pytest.mark.parametrize("nc", ["", "123456789", "0000000g", "-1", " 1"])
def test_bad_nc_is_parse_error(nc: str) -> None:
    with pytest.raises(ParseError):
        verify({**RFC2617, "nc": nc}, "GET", "0" * 32)


def test_unsupported_algorithm_or_qop_is_false() -> None:
    ha1 = compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    assert not verify({**RFC2617, "algorithm": "SHA-512-256"}, "GET", ha1)
    assert not verify({**RFC2617, "qop": "auth-conf"}, "GET", ha1)
    assert not verify({**RFC2617, "response": "é" * 32}, "GET", ha1)


# --- challenges -----------------------------------------------------------------------


def test_challenge_header_values_sha256_first() -> None:
    got = build_challenges("sip.example.com", "N1", opaque='o"x', stale=True)
    assert [c.algorithm for c in got] == ["SHA-256", "MD5"]
    assert got[0].header_value() == (
        'Digest realm="sip.example.com", nonce="N1", opaque="o\\"x", stale=true, '
        'algorithm=SHA-256, qop="auth"'
    )
    assert parse_digest(got[1].header_value()) == {
        "realm": "sip.example.com",
        "nonce": "N1",
        "opaque": 'o"x',
        "stale": "true",
        "algorithm": "MD5",
        "qop": "auth",
    }
    assert got[1].params() == parse_digest(got[1].header_value())


def test_challenge_without_optional_parts() -> None:
    value = Challenge("r", "n", qop=None).header_value()
    assert value == 'Digest realm="r", nonce="n", algorithm=MD5'
    with pytest.raises(ProtocolError):
        build_challenges("r", "n", algorithms=())
    with pytest.raises(ProtocolError):
        build_challenges("r", "n", algorithms=("SHA-1",))


def test_choose_challenge_takes_topmost_supported() -> None:
    first = {"realm": "r", "nonce": "n", "algorithm": "SHA-512-256"}
    second = {"realm": "r", "nonce": "n", "algorithm": "SHA-256", "qop": "auth"}
    third = {"realm": "r", "nonce": "n"}
    assert choose_challenge([first, second, third]) is second
    assert choose_challenge([first, {"realm": "r", "nonce": "n", "qop": "x"}]) is None
    assert choose_challenge([{"nonce": "n"}, third]) is third


# --- nonces ---------------------------------------------------------------------------


def test_nonce_valid_stale_invalid() -> None:
    f = NonceFactory(SECRET, lifetime=30.0)
    n = f.make(1000.0, extra="sip.example.com")
    assert re.fullmatch(r"[A-Za-z0-9_-]+", n)
    assert f.check(n, 1000.0, "sip.example.com") is NonceStatus.VALID
    assert f.check(n, 1030.0, "sip.example.com") is NonceStatus.VALID
    assert f.check(n, 1030.5, "sip.example.com") is NonceStatus.STALE
    assert f.check(n, 990.0, "sip.example.com") is NonceStatus.STALE  # beyond max_skew
    assert f.check(n, 996.0, "sip.example.com") is NonceStatus.VALID
    assert f.check(n, 1000.0, "other.example.com") is NonceStatus.INVALID
    assert NonceFactory(SECRET + b"x", 30.0).check(n, 1000.0, "sip.example.com") is (
        NonceStatus.INVALID
    )
    # another node with the same secret accepts it
    assert NonceFactory(SECRET, 30.0).check(n, 1001.0, "sip.example.com") is NonceStatus.VALID


def test_nonces_are_unique_at_the_same_instant() -> None:
    f = NonceFactory(SECRET, 30.0)
    seen = {f.make(5.0) for _ in range(50)}
    assert len(seen) == 50
    a, b = NonceFactory(SECRET, 30.0), NonceFactory(SECRET, 30.0)
    assert a.make(5.0, entropy=b"\x01") != b.make(5.0, entropy=b"\x02")


def test_tampered_nonce_is_invalid() -> None:
    f = NonceFactory(SECRET, 30.0)
    n = f.make(1000.0)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for i in range(len(n)):
        c = alphabet[(alphabet.index(n[i]) + 1) % 64]
        assert f.check(n[:i] + c + n[i + 1 :], 1000.0) is NonceStatus.INVALID
    for bad in ["", n + "A", n[:-1], n + "=", n + "!", " " + n, "é" * 43, "A" * 10_000]:
        assert f.check(bad, 1000.0) is NonceStatus.INVALID


def test_noncanonical_spelling_of_a_nonce_is_invalid() -> None:
    f = NonceFactory(SECRET, 30.0)
    n = f.make(1000.0)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # 32 bytes -> 43 chars; the last char carries 2 padding bits that must stay zero
    alias = n[:-1] + alphabet[alphabet.index(n[-1]) | 1]
    assert alias != n
    assert f.check(alias, 1000.0) is NonceStatus.INVALID


@settings(max_examples=200)
@given(st.text(max_size=80))
def test_nonce_check_never_raises(text: str) -> None:
    assert NonceFactory(SECRET, 30.0).check(text, 0.0) in set(NonceStatus)


def test_nonce_factory_misuse() -> None:
    with pytest.raises(ProtocolError):
        NonceFactory(b"short", 30.0)
    with pytest.raises(ProtocolError):
        NonceFactory(SECRET, 0)
    f = NonceFactory(SECRET, 30.0)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ProtocolError):
            f.make(bad)
    with pytest.raises(ProtocolError):
        f.check(f.make(1.0), float("nan"))


# --- nonce counts ---------------------------------------------------------------------


def test_nonce_counter_rejects_replays() -> None:
    c = NonceCounter(max_entries=10, lifetime=60.0)
    assert c.check("n1", 1, 0.0)
    assert not c.check("n1", 1, 1.0)
    assert c.check("n1", 3, 2.0)
    assert not c.check("n1", 2, 3.0)
    assert c.check("n2", 1, 3.0)
    assert not c.check("n3", 0, 3.0)
    assert len(c) == 2


def test_nonce_counter_expiry_and_bound() -> None:
    c = NonceCounter(max_entries=3, lifetime=10.0)
    for i in range(3):
        assert c.check(f"n{i}", 5, float(i))
    assert c.check("n3", 1, 3.0)  # evicts n0, the oldest
    assert len(c) == 3
    assert c.check("n0", 1, 3.0)  # forgotten, so accepted again (documented trade-off)
    assert not c.check("n3", 1, 4.0)
    assert c.check("n9", 1, 100.0)  # everything else has expired
    assert len(c) == 1
    with pytest.raises(ProtocolError):
        NonceCounter(0, 1.0)


# --- full server check and client side ---------------------------------------------


def _answer(
    nonce: str, password: str = "secret", nc: int = 1, alg: str = "SHA-256"
) -> dict[str, str]:
    ch = {"realm": "sip.example.com", "nonce": nonce, "algorithm": alg, "qop": "auth"}
    value = build_authorization(
        ch,
        username="alice",
        password=password,
        method="REGISTER",
        uri="sip:sip.example.com",
        cnonce="c0ffee",
        nc=nc,
    )
    return parse_digest(value)


def test_authenticate_outcomes() -> None:
    f = NonceFactory(SECRET, 30.0)
    counter = NonceCounter(100, 30.0)
    ha1 = compute_ha1("alice", "sip.example.com", "secret", "SHA-256")
    n = f.make(100.0, extra="sip.example.com")

    def run(params: dict[str, str], now: float, allow_no_qop: bool = True) -> AuthOutcome:
        return authenticate(
            params,
            "REGISTER",
            ha1,
            nonces=f,
            counter=counter,
            now=now,
            extra="sip.example.com",
            allow_no_qop=allow_no_qop,
        )

    assert run(_answer(n, "wrong"), 101.0) is AuthOutcome.FAILED
    assert run(_answer(n), 101.0) is AuthOutcome.OK  # wrong try did not burn nc=1
    assert run(_answer(n), 102.0) is AuthOutcome.REPLAY
    assert run(_answer(n, nc=2), 102.0) is AuthOutcome.OK
    assert run(_answer(n, nc=3), 200.0) is AuthOutcome.STALE
    assert run(_answer(n, "wrong", nc=3), 200.0) is AuthOutcome.FAILED
    forged = NonceFactory(b"another-secret-0123456789", 30.0).make(100.0, "sip.example.com")
    assert run(_answer(forged), 101.0) is AuthOutcome.FAILED
    old = _answer(n, nc=4)
    for key in ("qop", "nc", "cnonce"):
        del old[key]
    old["response"] = compute_response(
        ha1, algorithm="SHA-256", method="REGISTER", uri="sip:sip.example.com", nonce=n
    )
    assert run(old, 101.0) is AuthOutcome.OK
    assert run(old, 101.0, allow_no_qop=False) is AuthOutcome.FAILED
    with pytest.raises(ParseError):
        run({"username": "alice"}, 101.0)


@pytest.mark.parametrize("alg", ["MD5", "MD5-sess", "SHA-256", "SHA-256-sess"])
def test_build_authorization_round_trip(alg: str) -> None:
    ch = Challenge("r", "n1", alg, opaque="op")
    value = build_authorization(
        ch, username="bob", password="pw", method="INVITE", uri="sip:x@y", cnonce="cn", nc=7
    )
    params = parse_digest(value)
    assert params["opaque"] == "op"
    assert params["nc"] == "00000007"
    assert params["qop"] == "auth"
    assert params["algorithm"] == alg
    ha1 = compute_ha1("bob", "r", "pw", base_algorithm(alg))
    assert verify(params, "INVITE", ha1)
    assert not verify(params, "ACK", ha1)
    same = build_authorization(
        ch, username="bob", ha1=ha1, method="INVITE", uri="sip:x@y", cnonce="cn", nc=7
    )
    assert same == value


def test_build_authorization_qop_choice_and_no_qop() -> None:
    both = {"realm": "r", "nonce": "n", "qop": "auth-int, auth"}
    got = parse_digest(
        build_authorization(both, username="u", password="p", method="M", uri="u:", cnonce="c")
    )
    assert got["qop"] == "auth"
    only_int = {"realm": "r", "nonce": "n", "qop": "auth-int"}
    got = parse_digest(
        build_authorization(
            only_int, username="u", password="p", method="M", uri="u:", cnonce="c", body=b"x"
        )
    )
    ha1 = compute_ha1("u", "r", "p")
    assert got["qop"] == "auth-int"
    assert verify(got, "M", ha1, b"x")
    assert not verify(got, "M", ha1, b"y")
    legacy = parse_digest(
        build_authorization(
            {"realm": "r", "nonce": "n"},
            username="u",
            password="p",
            method="M",
            uri="u:",
            cnonce="c",
        )
    )
    assert "nc" not in legacy and "cnonce" not in legacy and "qop" not in legacy
    assert verify(legacy, "M", ha1)


def test_build_authorization_errors() -> None:
    kw: dict[str, Any] = {"username": "u", "method": "M", "uri": "u:", "cnonce": "c"}
    with pytest.raises(ParseError):
        build_authorization({"realm": "r", "nonce": "n", "algorithm": "X"}, password="p", **kw)
    with pytest.raises(ParseError):
        build_authorization({"realm": "r", "nonce": "n", "qop": "x"}, password="p", **kw)
    with pytest.raises(ParseError):
        build_authorization({"nonce": "n"}, password="p", **kw)
    with pytest.raises(ProtocolError):
        build_authorization({"realm": "r", "nonce": "n"}, **kw)
    with pytest.raises(ProtocolError):
        build_authorization({"realm": "r", "nonce": "n"}, password="p", ha1="0", **kw)
    with pytest.raises(ProtocolError):
        build_authorization({"realm": "r", "nonce": "n"}, password="p", nc=0, **kw)


@settings(max_examples=60, deadline=None)
@given(
    user=st.text(min_size=1, max_size=20),
    realm=st.text(min_size=1, max_size=20),
    password=st.text(max_size=20),
    alg=st.sampled_from(["MD5", "SHA-256", "MD5-sess", "SHA-256-sess"]),
)
def test_round_trip_any_strings(user: str, realm: str, password: str, alg: str) -> None:
    ch = build_challenges(realm, "nonce", algorithms=(alg,))[0]
    params = parse_digest(ch.header_value())
    assert params["realm"] == realm
    value = build_authorization(
        params, username=user, password=password, method="REGISTER", uri="sip:r", cnonce="c"
    )
    got = parse_digest(value)
    assert got["username"] == user
    ha1 = compute_ha1(user, realm, password, base_algorithm(alg))
    assert verify(got, "REGISTER", ha1)
    assert not verify(got, "REGISTER", compute_ha1(user, realm, password + "x", alg))
