"""The faster Digest paths give what the plain ones (and earlier releases) gave.

Nonces: same bytes from the same inputs, earlier nonces still verify, and the memory of
nonces made here answers as the HMAC would. Responses: the qop=auth shortcut of
:func:`verify` equals :func:`compute_response`. Challenges: header text byte for byte.
Auth-params: the one-``re.split`` parse equals the loop, errors included.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipedge.sip import digest
from sipedge.sip import nonce as nonce_module
from sipedge.sip.digest import (
    Challenge,
    NonceCounter,
    NonceFactory,
    NonceStatus,
    base_algorithm,
    build_challenges,
    compute_response,
    normalize_algorithm,
    verify,
)
from sipedge.sip.errors import ParseError, ProtocolError
from sipedge.sip.hdr import auth as hdr_auth

SECRET = b"0123456789abcdef-test-secret"
# Made by the implementation before the speed-up (hmac.new, base64 module).
OLD_NONCE_A = "AAABi8_laACEQS33Dkwbj7Fk3MTk71t6ZG9qlj3E8jU"  # 1_700_000_000.0, example.com
OLD_NONCE_B = "AAABi8_laHv8Uszq8NNJ9RTYOzj0TAbZM_AEBxSGnno"  # 1_700_000_000.123, ""


def reference_nonce(secret: bytes, now: float, extra: str, entropy: bytes, serial: int) -> str:
    """The nonce construction as first written: blake2b unique part, hmac.new, base64."""
    unique = hashlib.blake2b(entropy + serial.to_bytes(8, "big"), digest_size=8).digest()
    payload = int(now * 1000).to_bytes(8, "big") + unique
    msg = b"sipedge-digest-nonce-v1\x00" + payload + extra.encode("utf-8", "surrogateescape")
    mac = hmac.new(secret, msg, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(payload + mac).rstrip(b"=").decode("ascii")


def reference_unb64(text: str) -> bytes | None:
    """The canonical-base64url decoder as first written."""
    if not text.isascii() or len(text) > 64:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != text:
        return None
    return raw


# --- nonces ---------------------------------------------------------------------------


def test_same_nonces_as_before_from_the_same_inputs() -> None:
    f = NonceFactory(SECRET, 300.0)
    assert f.make(1_700_000_000.0, "example.com", bytes(range(1, 9))) == OLD_NONCE_A
    assert f.make(1_700_000_000.123, "", b"") == OLD_NONCE_B


@pytest.mark.parametrize("remember", [0, 4096])
def test_nonces_made_before_still_verify(remember: int) -> None:
    f = NonceFactory(SECRET, 300.0, remember=remember)
    assert f.check(OLD_NONCE_A, 1_700_000_100.0, "example.com") is NonceStatus.VALID
    assert f.check(OLD_NONCE_A, 1_700_000_100.0, "example.org") is NonceStatus.INVALID
    assert f.check(OLD_NONCE_A, 1_700_000_300.5, "example.com") is NonceStatus.STALE
    assert f.check(OLD_NONCE_B, 1_700_000_000.0, "") is NonceStatus.VALID
    assert f.check(OLD_NONCE_B[:-1] + "A", 1_700_000_000.0, "") is NonceStatus.INVALID


@settings(max_examples=150)
@given(
    secret=st.binary(min_size=16, max_size=150),  # below, at and above the 64-byte block
    now=st.floats(min_value=0, max_value=4e9, allow_nan=False),
    extra=st.text(max_size=30),
    entropy=st.binary(max_size=12),
)
def test_nonce_bytes_equal_the_reference(
    secret: bytes, now: float, extra: str, entropy: bytes
) -> None:
    f = NonceFactory(secret, 60.0)
    assert f.make(now, extra, entropy) == reference_nonce(secret, now, extra, entropy, 1)
    assert f.make(now, extra, entropy) == reference_nonce(secret, now, extra, entropy, 2)


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=70), st.text("AZaz09-_=+/", max_size=70)))
def test_unb64_equals_the_reference(text: str) -> None:
    assert nonce_module._unb64(text) == reference_unb64(text)


@settings(max_examples=100)
@given(
    made_at=st.floats(min_value=1000.0, max_value=2000.0),
    offset=st.floats(min_value=-20.0, max_value=100.0),
    extra=st.sampled_from(["", "example.com", "\udcc3\udca9", "é"]),
    asked=st.sampled_from(["", "example.com", "\udcc3\udca9", "é"]),
)
def test_remembered_nonces_answer_as_the_hmac_does(
    made_at: float, offset: float, extra: str, asked: str
) -> None:
    remembering = NonceFactory(SECRET, 60.0)
    stateless = NonceFactory(SECRET, 60.0, remember=0)
    nonce = remembering.make(made_at, extra)
    now = made_at + offset
    assert remembering.check(nonce, now, asked) is stateless.check(nonce, now, asked)


def test_forgotten_nonces_still_verify_by_hmac() -> None:
    f = NonceFactory(SECRET, 60.0, remember=4)
    first = f.make(1000.0, "r")
    for _ in range(20):  # well past twice ``remember``
        f.make(1000.0, "r")
    assert first not in f._issued  # the memory forgot it ...
    assert f.check(first, 1000.0, "r") is NonceStatus.VALID  # ... the HMAC still knows it
    assert f.check(first, 1000.0, "x") is NonceStatus.INVALID
    assert 4 <= len(f._issued) < 8  # bounded


def test_remember_must_not_be_negative() -> None:
    with pytest.raises(ProtocolError):
        NonceFactory(SECRET, 60.0, remember=-1)
    f = NonceFactory(SECRET, 60.0, remember=0)
    f.make(1.0)
    assert not f._issued


def test_remembered_nonce_still_refuses_a_non_finite_clock() -> None:
    f = NonceFactory(SECRET, 60.0)
    with pytest.raises(ProtocolError):
        f.check(f.make(1.0), math.inf)


def test_counter_expiry_keeps_its_order_and_nan_rule() -> None:
    c = NonceCounter(max_entries=10, lifetime=10.0)
    assert c.check("a", 1, 0.0) and c.check("b", 1, 5.0)
    assert c.check("a", 2, 10.0)  # an update keeps "a" first
    assert c.check("c", 1, 10.5)  # expires "a" only
    assert len(c) == 2
    assert c.check("a", 1, 10.5)  # forgotten, so new again
    c.check("d", 1, math.nan)  # a NaN clock expires everything, as before
    assert len(c) == 1


# --- algorithms, nc, responses --------------------------------------------------------

SPELLINGS = ["MD5", "md5", " Md5-Sess ", "SHA-256", "sha-256-SESS", "SHA-512", "", "md5 x"]


@pytest.mark.parametrize("name", SPELLINGS)
def test_base_algorithm_as_before(name: str) -> None:
    canon = normalize_algorithm(name)
    if canon is None:
        with pytest.raises(ProtocolError):
            base_algorithm(name)
    else:
        assert base_algorithm(name) == canon.removesuffix("-sess")


@settings(max_examples=200)
@given(st.text(max_size=10))
def test_nc_value_as_before(text: str) -> None:
    ok = 1 <= len(text) <= 8 and all(c in "0123456789abcdefABCDEF" for c in text)
    if ok:
        assert digest._nc_value(text) == int(text, 16)
    else:
        with pytest.raises(ParseError):
            digest._nc_value(text)


_value = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)


@settings(max_examples=200)
@given(
    algorithm=st.sampled_from(["MD5", "SHA-256", "md5", "MD5-sess", "SHA-256-sess"]),
    qop=st.sampled_from(["auth", "AUTH", " auth ", "auth-int"]),
    method=st.sampled_from(["REGISTER", "INVITE"]),
    uri=_value,
    nonce=_value,
    cnonce=_value,
    nc=st.integers(min_value=1, max_value=0xFFFFFFFF),
    ha1=st.sampled_from(["0123456789abcdef0123456789abcdef", "ABCDEF" * 10 + "0123"]),
)
def test_verify_shortcut_equals_compute_response(
    algorithm: str, qop: str, method: str, uri: str, nonce: str, cnonce: str, nc: int, ha1: str
) -> None:
    params = {"username": "u", "uri": uri, "nonce": nonce, "cnonce": cnonce, "qop": qop}
    params |= {"nc": f"{nc:08x}", "algorithm": algorithm}
    expected = compute_response(
        ha1, algorithm=algorithm, method=method, uri=uri, nonce=nonce,
        qop=qop.strip(), nc=params["nc"], cnonce=cnonce,
    )  # fmt: skip
    assert verify(params | {"response": expected.upper()}, method, ha1)
    wrong = ("0" if expected[0] != "0" else "1") + expected[1:]
    assert not verify(params | {"response": wrong}, method, ha1)
    if qop.strip().lower() == "auth" and "sess" not in algorithm.lower():
        canon = normalize_algorithm(algorithm)
        assert canon is not None
        made = digest._response_auth(params, qop.strip(), method, ha1, canon)
        assert made == expected


def test_ha2_memory_keeps_methods_and_uris_apart() -> None:
    a = digest._ha2("MD5", "REGISTER", "sip:a")
    assert a == hashlib.md5(b"REGISTER:sip:a").hexdigest()
    assert digest._ha2("MD5", "INVITE", "sip:a") == hashlib.md5(b"INVITE:sip:a").hexdigest()
    assert digest._ha2("SHA-256", "REGISTER", "sip:a") == (
        hashlib.sha256(b"REGISTER:sip:a").hexdigest()
    )


# --- challenges -----------------------------------------------------------------------


def test_challenge_text_as_before() -> None:
    realm = 'ex"a\\mple.com'
    plain, stale = (
        build_challenges(realm, "NONCE", algorithms=("SHA-256", "md5-sess"), stale=s)
        for s in (False, True)
    )
    assert [c.header_value() for c in plain] == [
        'Digest realm="ex\\"a\\\\mple.com", nonce="NONCE", algorithm=SHA-256, qop="auth"',
        'Digest realm="ex\\"a\\\\mple.com", nonce="NONCE", algorithm=MD5-sess, qop="auth"',
    ]
    assert [c.header_value() for c in stale] == [
        'Digest realm="ex\\"a\\\\mple.com", nonce="NONCE", stale=true, algorithm=SHA-256,'
        ' qop="auth"',
        'Digest realm="ex\\"a\\\\mple.com", nonce="NONCE", stale=true, algorithm=MD5-sess,'
        ' qop="auth"',
    ]
    full = Challenge("r", "n", "MD5", opaque="op", qop=None, stale=True, domain="sip:a sip:b")
    assert full.header_value() == (
        'Digest realm="r", domain="sip:a sip:b", nonce="n", opaque="op", stale=true, algorithm=MD5'
    )


@settings(max_examples=100)
@given(
    realm=st.text(max_size=10),
    nonce=st.text(max_size=10),
    opaque=st.none() | st.text(max_size=5),
    qop=st.none() | st.sampled_from(["auth", "auth,auth-int"]),
    stale=st.booleans(),
    domain=st.none() | st.text(max_size=5),
)
def test_around_nonce_frames_the_quoted_nonce(
    realm: str, nonce: str, opaque: str | None, qop: str | None, stale: bool, domain: str | None
) -> None:
    c = Challenge(realm, nonce, "SHA-256", opaque, qop, stale, domain)
    head, tail = c.around_nonce()
    assert head + digest._quote(nonce) + tail == c.header_value()


# --- auth-param parsing ---------------------------------------------------------------

_token = st.text("abcXYZ019-.!%*_+`'~", min_size=1, max_size=6)
_quoted = st.builds(
    lambda s: '"' + s + '"', st.text(st.sampled_from('ab ,=\\"\t\x01é'), max_size=6)
)
_space = st.sampled_from(["", " ", "\t", "\r\n ", "  "])
_sep = st.sampled_from([",", ", ", " ,", ",,", ", ,", "", " ", ";"])


@st.composite
def auth_param_lists(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        name = draw(st.sampled_from(["realm", "Nonce", "uri", "qop", "nc"]) | _token)
        value = draw(_token | _quoted)
        parts.append(f"{name}{draw(_space)}={draw(_space)}{value}{draw(_space)}{draw(_sep)}")
    return "".join(parts).strip(" \t\r\n")


def outcome(parse: object, s: str) -> object:
    try:
        return parse(s, "credentials")  # type: ignore[operator]
    except ParseError as exc:
        return ("error", exc.reason)


@settings(max_examples=500)
@given(st.one_of(auth_param_lists(), st.text(max_size=40)))
def test_auth_param_parse_equals_the_loop(s: str) -> None:
    assert outcome(hdr_auth._parse_params, s) == outcome(hdr_auth._parse_params_slow, s)


@pytest.mark.parametrize(
    "s",
    [
        'username="a1",realm="r",nonce="n",uri="sip:x",response="0f",algorithm=MD5,'
        'cnonce="c",qop=auth,nc=00000001',
        'a="x"b="y"',  # no comma between
        "a=1, a=2",  # repeated
        "a=1, A=2",
        'a="x\\"y", b=2',  # quoted-pair
        'a="", b=""',
        "a=1,",
        "a=1,,  ,b=2",
        'a="x\x01"',
        'a="unterminated',
        "a=1 b=2",
        "=1",
    ],
)
def test_auth_param_parse_examples(s: str) -> None:
    assert outcome(hdr_auth._parse_params, s) == outcome(hdr_auth._parse_params_slow, s)
