"""Authenticator: challenges, verification, nonce life, replay, no user enumeration."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from auth_support import (
    INVITE_URI,
    REALM,
    SECRET,
    ManualClock,
    answer,
    challenge_params,
    request,
    shape,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import sipedge.auth.service as service_mod
from sipedge.auth import Authenticator, AuthResult, Credential, MemoryCredentialStore
from sipedge.sip.digest import build_authorization
from sipedge.sip.errors import ProtocolError
from sipedge.sip.hdr.auth import parse_challenge
from sipedge.sip.message import Request

PASSWORD = "s3cret"


def make_auth(
    clock: ManualClock | None = None, *, secret: bytes = SECRET, **kw: Any
) -> Authenticator:
    store = MemoryCredentialStore(
        [
            Credential.from_password("alice", REALM, PASSWORD),
            Credential.from_password("bob", REALM, "b0b-pass"),
        ]
    )
    return Authenticator(store, REALM, secret=secret, clock=clock or ManualClock(), **kw)


def check(auth: Authenticator, req: Request, *, proxy: bool = False, **kw: Any) -> AuthResult:
    return asyncio.run(auth.check(req, proxy=proxy, **kw))


def challenge(auth: Authenticator, *, proxy: bool = False) -> list[tuple[str, str]]:
    """The challenge headers for a request without credentials."""
    method, uri = ("INVITE", INVITE_URI) if proxy else ("REGISTER", "sip:example.com")
    result = check(auth, request(method, uri), proxy=proxy)
    assert not result.ok
    return result.headers


def register_with(value: str) -> Request:
    return request(headers=[("Authorization", value)])


def test_no_credentials_gets_both_challenges_sha256_first() -> None:
    auth = make_auth()
    result = check(auth, request())
    assert (result.ok, result.status, result.username) == (False, 401, None)
    assert [name for name, _ in result.headers] == ["WWW-Authenticate"] * 2
    params = [parse_challenge(v).params for _, v in result.headers]
    assert [p["algorithm"] for p in params] == ["SHA-256", "MD5"]
    for p in params:
        assert p["realm"] == REALM
        assert p["qop"] == "auth"
        assert "stale" not in p


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5", "SHA-256-sess", "MD5-sess"])
def test_right_answer_passes(algorithm: str) -> None:
    auth = make_auth()
    value = answer(challenge(auth), algorithm=algorithm)
    result = check(auth, register_with(value))
    assert result == AuthResult(True, "alice", 200, [], "")


def test_answer_without_qop_rfc2069_passes_unless_refused() -> None:
    for allow in (True, False):
        auth = make_auth(allow_no_qop=allow)
        params = challenge_params(challenge(auth), "MD5")
        del params["qop"]
        value = build_authorization(
            params, username="alice", method="REGISTER", uri="sip:example.com",
            cnonce="x", password=PASSWORD,
        )  # fmt: skip
        assert check(auth, register_with(value)).ok is allow


def test_auth_int_covers_the_body() -> None:
    auth = make_auth()
    body = b"v=0\r\n"
    value = answer(challenge(auth), qop="auth-int", method="MESSAGE", uri=INVITE_URI)
    assert "qop=auth-int" in value
    ok = request("MESSAGE", INVITE_URI, headers=[("Authorization", value)], body=body)
    assert check(auth, ok).ok is False  # answer was computed over an empty body
    value = build_authorization(
        {**challenge_params(challenge(auth), "SHA-256"), "qop": "auth-int"},
        username="alice", method="MESSAGE", uri=INVITE_URI, cnonce="c", password=PASSWORD,
        body=body,
    )  # fmt: skip
    ok = request("MESSAGE", INVITE_URI, headers=[("Authorization", value)], body=body)
    assert check(auth, ok).ok


def test_wrong_password_fails_with_fresh_challenge() -> None:
    auth = make_auth()
    first = challenge(auth)
    result = check(auth, register_with(answer(first, password="wrong")))
    assert (result.ok, result.status, result.username) == (False, 401, None)
    params = [parse_challenge(v).params for _, v in result.headers]
    assert [p["algorithm"] for p in params] == ["SHA-256", "MD5"]
    assert params[0]["nonce"] != challenge_params(first, "SHA-256")["nonce"]
    assert "stale" not in params[0]
    # the fresh nonce works
    assert check(auth, register_with(answer(result.headers, algorithm="MD5"))).ok


def test_unknown_user_and_wrong_password_answer_identically() -> None:
    auth = make_auth()
    headers = challenge(auth)
    wrong = check(auth, register_with(answer(headers, password="wrong")))
    unknown = check(auth, register_with(answer(headers, username="mallory", cnonce="c2")))
    assert wrong.status == unknown.status == 401
    assert wrong.reason == unknown.reason
    assert wrong.username is unknown.username is None
    assert shape(wrong.headers) == shape(unknown.headers)
    assert len(shape(wrong.headers)[0][2]) == 4  # realm, nonce, algorithm, qop
    nonces = {parse_challenge(v).params["nonce"] for _, v in wrong.headers + unknown.headers}
    assert len(nonces) == 2  # one fresh nonce per answer, shared by its two challenges
    # same again for the Proxy-Authorization flavour and expected-user mismatches
    headers = challenge(auth, proxy=True)
    kw: dict[str, Any] = {"method": "INVITE", "uri": INVITE_URI}
    as_wrong = answer(headers, password="nope", **kw)
    as_bob = answer(headers, username="bob", password="b0b-pass", **kw)
    req_wrong = request("INVITE", INVITE_URI, headers=[("Proxy-Authorization", as_wrong)])
    req_other = request("INVITE", INVITE_URI, headers=[("Proxy-Authorization", as_bob)])
    a = check(auth, req_wrong, proxy=True, expect_user="alice")
    b = check(auth, req_other, proxy=True, expect_user="alice")
    assert (a.status, a.reason, shape(a.headers)) == (b.status, b.reason, shape(b.headers))
    assert a.status == 407


def test_unknown_user_is_hashed_like_a_known_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same hashing work: authenticate() runs once, with an HA1 of the right size."""
    calls: list[tuple[str, str]] = []
    real = service_mod.authenticate

    def spy(params: Any, method: str, ha1: str, **kw: Any) -> Any:
        calls.append((params["username"], ha1))
        return real(params, method, ha1, **kw)

    monkeypatch.setattr(service_mod, "authenticate", spy)
    auth = make_auth()
    headers = challenge(auth)
    for algorithm, size in (("SHA-256", 64), ("MD5", 32)):
        calls.clear()
        check(auth, register_with(answer(headers, algorithm=algorithm, username="mallory")))
        assert len(calls) == 1
        assert calls[0][0] == "mallory"
        assert len(calls[0][1]) == size


def test_unknown_user_takes_similar_time() -> None:
    auth = make_auth()
    headers = challenge(auth)
    wrong = register_with(answer(headers, password="wrong"))
    unknown = register_with(answer(headers, username="mallory"))

    async def mean_times(n: int) -> tuple[float, float]:
        totals = [0.0, 0.0]
        for _ in range(n):
            for i, req in enumerate((wrong, unknown)):
                start = time.perf_counter()
                await auth.check(req, proxy=False)
                totals[i] += time.perf_counter() - start
        return totals[0] / n, totals[1] / n

    t_wrong, t_unknown = asyncio.run(mean_times(300))
    assert t_unknown / t_wrong < 3.0
    assert t_wrong / t_unknown < 3.0


def test_expired_nonce_with_right_password_is_stale() -> None:
    clock = ManualClock()
    auth = make_auth(clock, nonce_lifetime=60.0)
    headers = challenge(auth)
    clock.now += 61
    result = check(auth, register_with(answer(headers)))
    assert (result.ok, result.status) == (False, 401)
    params = [parse_challenge(v).params for _, v in result.headers]
    assert [p.get("stale") for p in params] == ["true", "true"]
    assert check(auth, register_with(answer(result.headers))).ok  # the new nonce is fine
    # a wrong password with an expired nonce is not told "stale"
    clock.now += 61
    result = check(auth, register_with(answer(result.headers, password="x", cnonce="d")))
    assert all("stale" not in parse_challenge(v).params for _, v in result.headers)


def test_replayed_nc_fails_higher_nc_passes() -> None:
    auth = make_auth()
    headers = challenge(auth)
    value = answer(headers)
    assert check(auth, register_with(value)).ok
    replay = check(auth, register_with(value))
    assert (replay.ok, replay.status) == (False, 401)
    assert all("stale" not in parse_challenge(v).params for _, v in replay.headers)
    assert check(auth, register_with(answer(headers, nc=2))).ok
    assert not check(auth, register_with(answer(headers, nc=2))).ok


def test_nonce_from_another_node_with_same_secret() -> None:
    clock = ManualClock()
    node_a, node_b = make_auth(clock), make_auth(clock)
    value = answer(challenge(node_a))
    assert check(node_b, register_with(value)).ok
    stranger = make_auth(clock, secret=b"another-secret-of-16+")
    result = check(stranger, register_with(answer(challenge(node_a), cnonce="z")))
    assert (result.ok, result.status) == (False, 401)


def test_wrong_realm_is_ignored() -> None:
    auth = make_auth()
    value = answer(challenge(auth), realm="other.example")
    result = check(auth, register_with(value))
    assert (result.ok, result.status) == (False, 401)
    # credentials for another realm next to ours: ours are picked, whatever the order
    ours = answer(challenge(auth), cnonce="o")
    req = request(headers=[("Authorization", value), ("Authorization", ours)])
    assert check(auth, req).ok


def test_digest_uri_must_equal_request_uri() -> None:
    auth = make_auth()
    value = answer(challenge(auth), uri="sip:evil.example")
    result = check(auth, register_with(value))
    assert (result.ok, result.status) == (False, 401)
    value = answer(challenge(auth), uri="sip:EXAMPLE.com")
    assert not check(auth, register_with(value)).ok


def test_proxy_flag_selects_header_and_status() -> None:
    auth = make_auth()
    headers = challenge(auth, proxy=True)
    assert [n for n, _ in headers] == ["Proxy-Authenticate"] * 2
    kw: dict[str, Any] = {"method": "INVITE", "uri": INVITE_URI}
    value = answer(headers, **kw)
    as_www = request("INVITE", INVITE_URI, headers=[("Authorization", value)])
    result = check(auth, as_www, proxy=True)
    assert (result.ok, result.status) == (False, 407)
    assert [n for n, _ in result.headers] == ["Proxy-Authenticate"] * 2
    as_proxy = request("INVITE", INVITE_URI, headers=[("Proxy-Authorization", value)])
    assert check(auth, as_proxy, proxy=True).ok
    result = check(auth, as_proxy, proxy=False)
    assert (result.ok, result.status) == (False, 401)
    assert [n for n, _ in result.headers] == ["WWW-Authenticate"] * 2


def test_expect_user() -> None:
    auth = make_auth()
    headers = challenge(auth)
    assert check(auth, register_with(answer(headers)), expect_user="alice").ok
    assert check(auth, register_with(answer(headers, nc=2)), expect_user="%61lice").ok
    result = check(auth, register_with(answer(headers, nc=3)), expect_user="bob")
    assert (result.ok, result.status, result.username) == (False, 401, None)


def test_algorithm_not_offered_is_refused() -> None:
    auth = make_auth(algorithms=["sha-256"])
    headers = challenge(auth)
    assert [parse_challenge(v).params["algorithm"] for _, v in headers] == ["SHA-256"]
    md5 = {**challenge_params(headers, "SHA-256"), "algorithm": "MD5"}
    value = build_authorization(
        md5, username="alice", method="REGISTER", uri="sip:example.com", cnonce="c",
        password=PASSWORD,
    )  # fmt: skip
    assert not check(auth, register_with(value)).ok
    with pytest.raises(ProtocolError):
        make_auth(algorithms=["SHA-512"])
    with pytest.raises(ProtocolError):
        make_auth(secret=b"short")


def test_user_stored_without_the_algorithm_fails() -> None:
    store = MemoryCredentialStore([Credential.from_password("alice", REALM, PASSWORD, ["MD5"])])
    auth = Authenticator(store, REALM, secret=SECRET, clock=ManualClock())
    headers = challenge(auth)
    assert not check(auth, register_with(answer(headers, algorithm="SHA-256"))).ok
    assert check(auth, register_with(answer(headers, algorithm="MD5"))).ok


@pytest.mark.parametrize(
    "value",
    [
        'Digest username="alice", realm="example.com"',  # no nonce, uri, response
        'Digest username="alice", realm="example.com", nonce="AAAA", uri="sip:example.com",'
        ' response="00", qop=auth, nc=zz, cnonce="c"',  # bad nc
        'Digest username="alice", realm="example.com", nonce="AAAA", uri="sip:example.com",'
        ' response="00", algorithm=SHA-512',
        "Basic YWxpY2U6czNjcmV0",
    ],
)
def test_malformed_but_parsable_gets_a_challenge(value: str) -> None:
    result = check(make_auth(), register_with(value))
    assert (result.ok, result.status, len(result.headers)) == (False, 401, 2)


def test_unparsable_credentials_give_400() -> None:
    result = check(make_auth(), register_with('Digest username="alice", realm'))
    assert result == AuthResult(False, None, 400, [], result.reason)
    assert "auth-param" in result.reason


def test_user_exists() -> None:
    auth = make_auth()
    assert asyncio.run(auth.user_exists("alice"))
    assert not asyncio.run(auth.user_exists("mallory"))


_HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=120)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            _HEADER_TEXT.map(lambda t: "Digest " + t),
            st.builds(
                lambda u, n, r: (
                    f'Digest username="{u}", realm="{REALM}", nonce="{n}", '
                    f'uri="sip:example.com", response="{r}", qop=auth, nc=00000001, cnonce="c"'
                ),
                st.sampled_from(["alice", "bob", "x"]),
                st.from_regex(r"[A-Za-z0-9_-]{0,48}", fullmatch=True),
                st.from_regex(r"[0-9a-f]{0,64}", fullmatch=True),
            ),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_garbage_never_raises_never_passes(values: list[str]) -> None:
    req = request(headers=[("Authorization", v.strip()) for v in values])
    result = check(make_auth(), req)
    assert not result.ok
    assert result.status in (400, 401)
    assert (result.status == 400) == (result.headers == [])
