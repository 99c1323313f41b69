"""Authenticator shortcuts answer as before: challenge text from kept frames, the offered
algorithm found by one lookup, nonces from memory or from another node alike."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from auth_support import INVITE_URI, REALM, SECRET, ManualClock, answer, request

from sipedge.auth import Authenticator, AuthResult, Credential, MemoryCredentialStore
from sipedge.sip.digest import ALGORITHMS, Challenge, base_algorithm, normalize_algorithm
from sipedge.sip.message import Request

NONCE = r"[A-Za-z0-9_-]{43}"


def make_auth(clock: ManualClock | None = None, realm: str = REALM, **kw: Any) -> Authenticator:
    store = MemoryCredentialStore([Credential.from_password("alice", realm, "s3cret")])
    return Authenticator(store, realm, secret=SECRET, clock=clock or ManualClock(), **kw)


def check(auth: Authenticator, req: Request, **kw: Any) -> AuthResult:
    return asyncio.run(auth.check(req, proxy=kw.pop("proxy", False), **kw))


def nonce_of(value: str) -> str:
    m = re.search(r'nonce="([^"]*)"', value)
    assert m is not None
    return m.group(1)


@pytest.mark.parametrize("proxy", [False, True])
@pytest.mark.parametrize("algorithms", [("SHA-256", "MD5"), ("md5",), ("MD5", "sha-256")])
def test_challenge_text_as_challenge_header_value(proxy: bool, algorithms: tuple[str, ...]) -> None:
    auth = make_auth(algorithms=algorithms)
    method, uri = ("INVITE", INVITE_URI) if proxy else ("REGISTER", "sip:example.com")
    result = check(auth, request(method, uri), proxy=proxy)
    name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
    assert [n for n, _ in result.headers] == [name] * len(algorithms)
    for (_, value), algorithm in zip(result.headers, auth.algorithms, strict=True):
        nonce = nonce_of(value)
        assert re.fullmatch(NONCE, nonce)
        assert value == Challenge(REALM, nonce, algorithm).header_value()
    # the exact text of earlier releases
    first = result.headers[0][1]
    alg = auth.algorithms[0]
    assert re.fullmatch(
        rf'Digest realm="example\.com", nonce="{NONCE}", algorithm={alg}, qop="auth"', first
    )


def test_stale_challenge_text() -> None:
    clock = ManualClock()
    auth = make_auth(clock, nonce_lifetime=60.0)
    headers = check(auth, request()).headers
    clock.now += 61
    result = check(auth, request(headers=[("Authorization", answer(headers))]))
    assert (result.status, result.reason) == (401, "nonce expired")
    for (_, value), alg in zip(result.headers, ("SHA-256", "MD5"), strict=True):
        assert re.fullmatch(
            rf'Digest realm="example\.com", nonce="{NONCE}", stale=true, algorithm={alg},'
            r' qop="auth"',
            value,
        )
    assert nonce_of(result.headers[0][1]) != nonce_of(headers[0][1])


def test_realm_needing_escapes_is_quoted_as_before() -> None:
    realm = 'a"b\\c'
    auth = make_auth(realm=realm)
    value = check(auth, request()).headers[0][1]
    assert value == Challenge(realm, nonce_of(value), "SHA-256").header_value()
    assert value.startswith('Digest realm="a\\"b\\\\c", nonce="')


@pytest.mark.parametrize("offered", [("SHA-256", "MD5"), ("SHA-256",), ("MD5",)])
@pytest.mark.parametrize(
    "spelling", [None, "MD5", "md5", " md5-SESS ", "SHA-256", "sha-256-sess", "SHA-512", ""]
)
def test_offered_algorithm_lookup_as_before(offered: tuple[str, ...], spelling: str | None) -> None:
    auth = make_auth(algorithms=offered)
    canon = normalize_algorithm(spelling)
    expected = None
    if canon is not None and base_algorithm(canon) in auth.algorithms:
        expected = base_algorithm(canon)
    assert auth._offered_base(spelling) == expected
    assert set(auth._offered.values()) <= set(auth.algorithms)
    assert set(auth._offered) <= {a.upper() for a in ALGORITHMS}


@pytest.mark.parametrize("remember", [True, False])
def test_nonce_from_memory_or_from_a_peer_node(remember: bool) -> None:
    """A nonce this node made (checked from memory) and one a peer made (checked by HMAC)
    get the same answers: accepted once, the same nc refused, a higher nc accepted."""
    clock = ManualClock()
    mine, peer = make_auth(clock), make_auth(clock)
    issuer = mine if remember else peer
    headers = check(issuer, request()).headers
    first = check(mine, request(headers=[("Authorization", answer(headers))]))
    assert (first.ok, first.username) == (True, "alice")
    again = check(mine, request(headers=[("Authorization", answer(headers))]))
    assert (again.ok, again.status, again.reason) == (False, 401, "nonce count replayed")
    assert check(mine, request(headers=[("Authorization", answer(headers, nc=2))])).ok


def test_nonce_of_another_realm_is_refused_even_when_remembered() -> None:
    clock = ManualClock()
    store = MemoryCredentialStore(
        [Credential.from_password("alice", r, "s3cret") for r in (REALM, "other.example")]
    )
    ours = Authenticator(store, REALM, secret=SECRET, clock=clock)
    other = Authenticator(store, "other.example", secret=SECRET, clock=clock)
    # share the factory, so the nonce is in memory, but for the other realm
    other._nonces = ours._nonces
    headers = check(other, request()).headers
    forged = answer(headers, realm=REALM)
    result = check(ours, request(headers=[("Authorization", forged)]))
    assert (result.ok, result.reason) == (False, "credentials rejected")


def test_expect_user_compares_escaped_and_plain() -> None:
    auth = make_auth()
    headers = check(auth, request()).headers
    ok = check(auth, request(headers=[("Authorization", answer(headers))]), expect_user="alice")
    assert ok.ok
    escaped = request(headers=[("Authorization", answer(headers, nc=2))])
    assert check(auth, escaped, expect_user="%61lice").ok
    other = request(headers=[("Authorization", answer(headers, nc=3))])
    assert not check(auth, other, expect_user="%62ob").ok
