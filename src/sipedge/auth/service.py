"""Digest authentication of SIP requests against a :class:`CredentialStore`.

RFC 3261 §22.2 (401 and ``Authorization`` for a registrar or UAS), §22.3 (407 and
``Proxy-Authorization`` for a proxy), RFC 7616 (Digest), RFC 8760 (SHA-256, offered first).

Nonces are stateless (:class:`~sipedge.sip.digest.NonceFactory`): every node holding the same
``secret`` verifies any node's nonce. The nonce-count replay memory is per node.

No user enumeration (RFC 3261 §22.1, §26.3.2.4): an unknown user and a wrong password get the
same answer (status, challenge headers, a fresh nonce) after the same work, because an
unknown user's response is checked against a dummy HA1 made at start-up.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

from ..sip.digest import (
    ALGORITHMS,
    AuthOutcome,
    NonceCounter,
    NonceFactory,
    authenticate,
    base_algorithm,
    build_challenges,
    compute_ha1,
)
from ..sip.errors import ParseError
from ..sip.hdr.auth import Credentials, parse_credentials
from ..sip.message import Request
from .store import Credential, CredentialStore

__all__ = ["AuthResult", "Authenticator"]

log = logging.getLogger("sipedge.auth")


@dataclass(frozen=True, slots=True)
class AuthResult:
    """What :meth:`Authenticator.check` decided.

    ``ok``: the request is authenticated as ``username`` (``status`` is then 200 and
    ``headers`` empty). Otherwise answer ``status`` (401, 407, or 400 for credentials that do
    not parse) with ``headers`` added to the response; ``reason`` explains the failure for the
    log. ``reason`` never tells an unknown user from a wrong password.
    """

    ok: bool
    username: str | None
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    reason: str = ""

    @property
    def failed(self) -> bool:
        """Credentials were sent and were wrong or malformed (a failed attempt that counts
        towards a ban); False for the first challenge and for a stale nonce."""
        return not self.ok and self.reason not in _NOT_FAILURES


_NOT_FAILURES = frozenset({"", "no credentials for our realm", "nonce expired"})
_REJECTED = "credentials rejected"  # same text for unknown user and wrong password


class Authenticator:
    """Challenges and checks Digest credentials for one ``realm``.

    ``clock`` gives wall-clock seconds (``time.time``): nonces carry their creation time and
    must verify on other nodes and after a restart. ``algorithms`` are offered in order, one
    challenge each (RFC 8760 §2.4), and only answers using one of them (or its ``-sess``
    variant) are accepted. ``max_nonces`` bounds the nc replay memory. ``allow_no_qop``
    accepts RFC 2069 answers without qop (RFC 3261 §22.4), which get no replay protection.
    Raises :class:`~sipedge.sip.errors.ProtocolError` for a secret under 16 bytes, a
    non-positive lifetime or an unsupported algorithm.
    """

    def __init__(
        self,
        store: CredentialStore,
        realm: str,
        *,
        secret: bytes,
        nonce_lifetime: float = 300.0,
        algorithms: Sequence[str] = ("SHA-256", "MD5"),
        clock: Callable[[], float],
        max_nonces: int = 100_000,
        allow_no_qop: bool = True,
    ) -> None:
        self.store = store
        self.realm = realm
        self._clock = clock
        self._nonces = NonceFactory(secret, nonce_lifetime)
        self._counter = NonceCounter(max_nonces, nonce_lifetime)
        # Validates the names (ProtocolError) and fixes their spelling.
        probe = build_challenges(realm, "x", algorithms=algorithms)
        self.algorithms: tuple[str, ...] = tuple(c.algorithm for c in probe)
        # Upper-cased algorithm name -> stored-HA1 algorithm, for the offered ones only.
        self._offered = {
            a.upper(): base_algorithm(a) for a in ALGORITHMS if base_algorithm(a) in self.algorithms
        }
        self._frames = {
            (proxy, stale): _frame(realm, self.algorithms, proxy, stale)
            for proxy in (False, True)
            for stale in (False, True)
        }
        self._allow_no_qop = allow_no_qop
        dummy_password = secrets.token_hex(16)
        self._dummy_ha1 = {
            a: compute_ha1(secrets.token_hex(8), realm, dummy_password, a) for a in self.algorithms
        }

    async def user_exists(self, username: str) -> bool:
        """Whether ``username`` has credentials in our realm (for 404 vs 480 routing)."""
        return await self.store.get(username, self.realm) is not None

    async def check(
        self, req: Request, *, proxy: bool, expect_user: str | None = None
    ) -> AuthResult:
        """Authenticate ``req`` by its ``Authorization`` (``proxy=False``: REGISTER, answer
        401) or ``Proxy-Authorization`` (``proxy=True``: answer 407) credentials.

        Only credentials for our realm are looked at (a request may carry several, RFC 3261
        §22.3). The digest ``uri`` must equal the Request-URI as written (RFC 7616 §3.4.6).
        With ``expect_user`` (e.g. the From or To user), authenticating as anyone else fails
        exactly like a wrong password.
        """
        header = "Proxy-Authorization" if proxy else "Authorization"
        chosen, base, bad = self._select(req.header_list(header))
        if chosen is None:
            if bad is not None:
                return AuthResult(False, None, 400, [], f"unparsable credentials: {bad}")
            return self._challenge(proxy, "no credentials for our realm")
        params = chosen.params
        if base is None:
            return self._challenge(proxy, f"algorithm {params.get('algorithm')!r} not offered")
        if params.get("uri") != req.uri_text:
            return self._challenge(proxy, "digest uri differs from the Request-URI")
        username = params.get("username", "")
        cred = await self.store.get(username, self.realm) if username else None
        outcome = self._verify(params, req, username, base, cred)
        if not _same_user(username, expect_user):
            outcome = AuthOutcome.FAILED  # indistinguishable from a wrong password
        if outcome is AuthOutcome.OK:
            return AuthResult(True, username, 200, [], "")
        if outcome is AuthOutcome.STALE:
            return self._challenge(proxy, "nonce expired", stale=True)
        if outcome is AuthOutcome.REPLAY:
            return self._challenge(proxy, "nonce count replayed")
        return self._challenge(proxy, _REJECTED)

    def _select(self, values: list[str]) -> tuple[Credentials | None, str | None, str | None]:
        """The credentials to check and the stored-HA1 algorithm they use if we offer it,
        else the first parse error.

        Digest credentials for our realm win, preferring one whose algorithm we offer;
        credentials for other realms belong to other hops and are ignored.
        """
        first: Credentials | None = None
        bad: str | None = None
        for value in values:
            try:
                creds = parse_credentials(value)
            except ParseError as exc:
                bad = bad or exc.reason
                continue
            if creds.scheme.lower() != "digest" or creds.params.get("realm") != self.realm:
                continue
            base = self._offered_base(creds.params.get("algorithm"))
            if base is not None:
                return creds, base, None
            if first is None:
                first = creds
        return first, None, bad

    def _offered_base(self, algorithm: str | None) -> str | None:
        """The stored-HA1 algorithm behind ``algorithm`` (absent: MD5, RFC 7616 §3.3) if we
        offer it, else None."""
        return self._offered.get("MD5" if algorithm is None else algorithm.strip().upper())

    def _verify(
        self,
        params: dict[str, str],
        req: Request,
        username: str,
        base: str,
        cred: Credential | None,
    ) -> AuthOutcome:
        """Check the response with the stored HA1, or a dummy one for an unknown user."""
        stored = None if cred is None else cred.ha1.get(base)
        ha1 = self._dummy_ha1[base] if stored is None else stored
        try:
            outcome = authenticate(
                params,
                req.method,
                ha1,
                nonces=self._nonces,
                now=self._clock(),
                counter=self._counter,
                extra=self.realm,
                body=req.body,
                allow_no_qop=self._allow_no_qop,
            )
        except ParseError as exc:  # missing field, bad nc: challenge afresh
            log.debug("malformed digest credentials: %s", exc.reason)
            return AuthOutcome.FAILED
        if stored is None:
            log.debug("digest credentials for unknown user %r", username)
            return AuthOutcome.FAILED
        return outcome

    def _challenge(self, proxy: bool, reason: str, *, stale: bool = False) -> AuthResult:
        """401 with ``WWW-Authenticate`` or 407 with ``Proxy-Authenticate`` (RFC 3261 §22.2,
        §22.3), one header field per algorithm, most preferred first (RFC 8760 §2.4)."""
        nonce = self._nonces.make(self._clock(), self.realm, os.urandom(8))
        headers = [(name, head + nonce + tail) for name, head, tail in self._frames[proxy, stale]]
        return AuthResult(False, None, 407 if proxy else 401, headers, reason)


def _frame(
    realm: str, algorithms: Sequence[str], proxy: bool, stale: bool
) -> list[tuple[str, str, str]]:
    """(header name, text before the nonce, text after it) per challenge of
    :func:`~sipedge.sip.digest.build_challenges`. Our nonces are base64url, so quoting one
    only adds the double quotes."""
    name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
    frames = []
    for c in build_challenges(realm, "", algorithms=algorithms, stale=stale):
        head, tail = c.around_nonce()
        frames.append((name, head + '"', '"' + tail))
    return frames


def _same_user(username: str, expect_user: str | None) -> bool:
    """Whether the authenticated ``username`` is ``expect_user`` (a URI user part, which may
    be %-escaped: RFC 3261 §19.1.4 compares it unescaped)."""
    if expect_user is None or username == expect_user:
        return True
    return username == unquote(expect_user)
