"""HTTP Digest authentication for SIP (RFC 3261 §22.4, RFC 7616, RFC 8760).

Server side: :func:`compute_ha1` (what a registrar stores, one HA1 per algorithm),
:func:`build_challenges` (``WWW-Authenticate`` / ``Proxy-Authenticate`` values),
:class:`NonceFactory` (stateless HMAC nonces), :class:`NonceCounter` (nc replay guard),
:func:`verify` (one response against a stored HA1) and :func:`authenticate` (all three).
Client side: :func:`choose_challenge` and :func:`build_authorization`.

Credentials and challenges come in as ``dict[str, str]`` with lower-case names and unquoted
values (what ``sipedge.sip.hdr.auth`` produces). Pure: the clock (``now``) and randomness
(``cnonce``, nonce ``entropy``) are arguments.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from .errors import ParseError, ProtocolError
from .nonce import NonceCounter, NonceFactory, NonceStatus, _b

__all__ = [
    "ALGORITHMS",
    "AuthOutcome",
    "Challenge",
    "NonceCounter",
    "NonceFactory",
    "NonceStatus",
    "authenticate",
    "base_algorithm",
    "build_authorization",
    "build_challenges",
    "choose_challenge",
    "compute_ha1",
    "compute_response",
    "normalize_algorithm",
    "verify",
]

# RFC 7616 §3.3 / RFC 8760 §2.1: algorithm name -> hash constructor. Names compare
# case-insensitively; the "-sess" variants reuse the base hash (RFC 7616 §3.4.2).
_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
ALGORITHMS: tuple[str, ...] = ("SHA-256", "SHA-256-sess", "MD5", "MD5-sess")
_CANONICAL = {name.upper(): name for name in ALGORITHMS}
_BASE = {name.upper(): name.removesuffix("-sess") for name in ALGORITHMS}


def normalize_algorithm(name: str | None) -> str | None:
    """Canonical spelling of a supported algorithm, ``"MD5"`` when absent, else None.

    RFC 7616 §3.3: a missing ``algorithm`` parameter means MD5.
    """
    if name is None:
        return "MD5"
    return _CANONICAL.get(name.strip().upper())


def base_algorithm(algorithm: str) -> str:
    """The stored-HA1 algorithm behind ``algorithm`` (``"MD5-sess"`` -> ``"MD5"``)."""
    base = _BASE.get(algorithm.strip().upper())
    if base is None:
        raise ProtocolError(f"unsupported digest algorithm {algorithm!r}")
    return base


def _require_algorithm(algorithm: str) -> str:
    canon = normalize_algorithm(algorithm)
    if canon is None:
        raise ProtocolError(f"unsupported digest algorithm {algorithm!r}")
    return canon


def _h(algorithm: str, data: bytes) -> str:
    return _HASHES[algorithm.removesuffix("-sess")](data).hexdigest()


def compute_ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """``H(username ":" realm ":" password)`` in lower-case hex (RFC 7616 §3.4.2).

    For a ``-sess`` algorithm this is the stored part; the per-session HA1 is derived at
    verification time from it, the nonce and the cnonce.
    """
    canon = _require_algorithm(algorithm)
    return _h(canon, _b(f"{username}:{realm}:{password}"))


def compute_response(
    ha1: str,
    *,
    algorithm: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response`` value (RFC 7616 §3.4.1-§3.4.3; RFC 2069 form when ``qop`` is None).

    ``ha1`` is the stored ``H(username:realm:password)``; ``body`` only counts for
    ``qop=auth-int``. Raises :class:`ProtocolError` for an unsupported algorithm or qop.
    """
    canon = _require_algorithm(algorithm)
    ha1 = ha1.lower()
    kind = None if qop is None else qop.lower()
    if canon.endswith("-sess"):
        # RFC 7616 §3.4.2: A1 = H(user:realm:pass) ":" nonce ":" cnonce
        ha1 = _h(canon, _b(f"{ha1}:{nonce}:{cnonce or ''}"))
    if kind == "auth-int":
        # RFC 7616 §3.4.3: A2 = Method ":" request-uri ":" H(entity-body)
        ha2 = _h(canon, _b(f"{method}:{uri}:") + _h(canon, body).encode("ascii"))
    elif kind in (None, "auth"):
        ha2 = _ha2(canon.removesuffix("-sess"), method, uri)
    else:
        raise ProtocolError(f"unsupported qop {qop!r}")
    if qop is None:
        # RFC 2069 §2.1.2 compatibility, kept by RFC 3261 §22.4 for old clients.
        return _h(canon, _b(f"{ha1}:{nonce}:{ha2}"))
    return _h(canon, _b(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}"))


@functools.lru_cache(maxsize=256)
def _ha2(base: str, method: str, uri: str) -> str:
    """``H(Method ":" request-uri)`` (RFC 7616 §3.4.3, qop=auth or none), remembered: a
    registrar is asked with the same few methods and URIs over and over."""
    return _h(base, _b(f"{method}:{uri}"))


def _quote(value: str) -> str:
    """A quoted-string (RFC 3261 §25.1): backslash-escape ``"`` and ``\\``."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class Challenge:
    """One Digest challenge (RFC 7616 §3.3, RFC 3261 §22.4 / §25.1 ``digest-cln``)."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    opaque: str | None = None
    qop: str | None = "auth"
    stale: bool = False
    domain: str | None = None

    def header_value(self) -> str:
        """The value of one ``WWW-Authenticate`` or ``Proxy-Authenticate`` header field."""
        head, tail = self.around_nonce()
        return head + _quote(self.nonce) + tail

    def around_nonce(self) -> tuple[str, str]:
        """``header_value()`` before and after the quoted nonce, which is the only part
        that changes between challenges: a server keeps them to frame each fresh nonce."""
        head = f"Digest realm={_quote(self.realm)}, "
        if self.domain is not None:
            head += f"domain={_quote(self.domain)}, "
        tail = "" if self.opaque is None else f", opaque={_quote(self.opaque)}"
        if self.stale:
            tail += ", stale=true"
        tail += f", algorithm={self.algorithm}"
        if self.qop is not None:
            tail += f", qop={_quote(self.qop)}"
        return head + "nonce=", tail

    def params(self) -> dict[str, str]:
        """The challenge as the ``dict`` a header parser would return for it."""
        out = {"realm": self.realm, "nonce": self.nonce, "algorithm": self.algorithm}
        for key, value in (("opaque", self.opaque), ("qop", self.qop), ("domain", self.domain)):
            if value is not None:
                out[key] = value
        if self.stale:
            out["stale"] = "true"
        return out


def build_challenges(
    realm: str,
    nonce: str,
    *,
    algorithms: Sequence[str] = ("SHA-256", "MD5"),
    opaque: str | None = None,
    qop: str | None = "auth",
    stale: bool = False,
) -> list[Challenge]:
    """One challenge per algorithm, most preferred first (RFC 8760 §2.3, §2.4).

    SIP carries one challenge per header field (RFC 3261 §20.44), so the caller adds one
    ``WWW-Authenticate`` (401) or ``Proxy-Authenticate`` (407, RFC 3261 §22.3) header field
    per element, in order. ``stale=True`` tells a client whose password was right that only
    the nonce expired (RFC 7616 §3.3).
    """
    if not algorithms:
        raise ProtocolError("no digest algorithm to offer")
    return [Challenge(realm, nonce, _require_algorithm(a), opaque, qop, stale) for a in algorithms]


_NC_RE = re.compile("[0-9a-fA-F]{1,8}")


def _nc_value(text: str) -> int:
    """RFC 7616 §3.4: nc is 8 hex digits (fewer accepted)."""
    if _NC_RE.fullmatch(text) is None:
        raise ParseError(f"bad digest nc value {text[:16]!r}")
    return int(text, 16)


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if value is None:
        raise ParseError(f"digest credentials without {name}")
    return value


def verify(params: Mapping[str, str], method: str, ha1: str, body: bytes = b"") -> bool:
    """True when ``params["response"]`` matches ``ha1`` (RFC 7616 §3.4.1, RFC 3261 §22.4).

    ``ha1`` is the stored HA1 for ``base_algorithm(params["algorithm"])``. Does not check
    the nonce, the realm or that ``uri`` names the Request-URI; :func:`authenticate` does
    the nonce. Raises :class:`ParseError` for malformed credentials (missing username,
    nonce, uri or response; qop without nc/cnonce; bad nc); returns False for an unsupported
    algorithm or qop.
    """
    for name in ("username", "nonce", "uri", "response"):
        _required(params, name)
    algorithm = normalize_algorithm(params.get("algorithm"))
    qop = params.get("qop")
    if qop is not None:
        qop = qop.strip()
        _nc_value(_required(params, "nc"))
        _required(params, "cnonce")
    elif algorithm is not None and algorithm.endswith("-sess"):
        _required(params, "cnonce")
    if algorithm is None or (qop is not None and qop.lower() not in ("auth", "auth-int")):
        return False
    if qop is not None and algorithm in _HASHES and qop.lower() == "auth":  # the usual answer
        expected = _response_auth(params, qop, method, ha1, algorithm)
    else:
        expected = compute_response(
            ha1,
            algorithm=algorithm,
            method=method,
            uri=params["uri"],
            nonce=params["nonce"],
            qop=qop,
            nc=params.get("nc"),
            cnonce=params.get("cnonce"),
            body=body,
        )
    given = params["response"].strip().lower()
    return hmac.compare_digest(expected.encode("ascii"), _b(given))


def _response_auth(
    params: Mapping[str, str], qop: str, method: str, ha1: str, algorithm: str
) -> str:
    """What :func:`compute_response` gives for qop=auth and a non-``-sess`` ``algorithm``
    (RFC 7616 §3.4.1), in fewer steps."""
    ha2 = _ha2(algorithm, method, params["uri"])
    nonce, nc, cnonce = params["nonce"], params["nc"], params["cnonce"]
    return _h(algorithm, _b(f"{ha1.lower()}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}"))


class AuthOutcome(Enum):
    """Result of :func:`authenticate` and what the server should answer."""

    OK = "ok"  # accept the request
    STALE = "stale"  # right password, expired nonce: re-challenge with stale=true
    REPLAY = "replay"  # right password, nc reused: re-challenge with a fresh nonce
    FAILED = "failed"  # wrong password or forged nonce: re-challenge (or 403)


def authenticate(
    params: Mapping[str, str],
    method: str,
    ha1: str,
    *,
    nonces: NonceFactory,
    now: float,
    counter: NonceCounter | None = None,
    extra: str = "",
    body: bytes = b"",
    allow_no_qop: bool = True,
) -> AuthOutcome:
    """Check nonce, response and nonce-count of one set of credentials, in that order.

    The nc is recorded only after response and nonce verified, so a forger cannot burn a client's
    counts. Credentials without qop (RFC 2069 clients) carry no nc and so get no replay
    protection; set ``allow_no_qop=False`` to refuse them. Raises :class:`ParseError` as
    :func:`verify` does.
    """
    if not verify(params, method, ha1, body):
        return AuthOutcome.FAILED
    status = nonces.check(params["nonce"], now, extra)
    if status is NonceStatus.INVALID:
        return AuthOutcome.FAILED
    if status is NonceStatus.STALE:
        return AuthOutcome.STALE
    if "qop" not in params:  # verify() made sure nc and cnonce come with qop
        return AuthOutcome.OK if allow_no_qop else AuthOutcome.FAILED
    nc = int(params["nc"], 16)  # verify() checked it is 1 to 8 hex digits
    if counter is not None and not counter.check(params["nonce"], nc, now):
        return AuthOutcome.REPLAY
    return AuthOutcome.OK


def choose_challenge(challenges: Iterable[Mapping[str, str]]) -> Mapping[str, str] | None:
    """The topmost Digest challenge whose algorithm and qop we support (RFC 8760 §2.4).

    Each element is the parameter dict of one ``WWW-Authenticate``/``Proxy-Authenticate``
    header field, in message order. None when there is no usable one.
    """
    for params in challenges:
        if "realm" not in params or "nonce" not in params:
            continue
        if normalize_algorithm(params.get("algorithm")) is None:
            continue
        if "qop" in params and _pick_qop(params["qop"]) is None:
            continue
        return params
    return None


def _pick_qop(offered: str) -> str | None:
    options = [q.strip().lower() for q in offered.split(",")]
    for choice in ("auth", "auth-int"):
        if choice in options:
            return choice
    return None


def build_authorization(
    challenge: Mapping[str, str] | Challenge,
    *,
    username: str,
    method: str,
    uri: str,
    cnonce: str,
    password: str | None = None,
    ha1: str | None = None,
    nc: int = 1,
    body: bytes = b"",
) -> str:
    """An ``Authorization`` / ``Proxy-Authorization`` value answering ``challenge``.

    Give ``password`` or the precomputed ``ha1``; ``cnonce`` is a fresh random string from
    the caller. Prefers qop=auth over auth-int (RFC 7616 §3.3), echoes ``opaque``. Raises
    :class:`ParseError` when the challenge is unusable, :class:`ProtocolError` on misuse.
    """
    params = challenge.params() if isinstance(challenge, Challenge) else challenge
    realm, nonce = _required(params, "realm"), _required(params, "nonce")
    algorithm = normalize_algorithm(params.get("algorithm"))
    if algorithm is None:
        raise ParseError(f"unsupported digest algorithm {params.get('algorithm')!r}")
    qop = None if "qop" not in params else _pick_qop(params["qop"])
    if "qop" in params and qop is None:
        raise ParseError(f"unsupported qop {params['qop']!r}")
    if (password is None) == (ha1 is None):
        raise ProtocolError("give exactly one of password and ha1")
    if not 0 < nc < 1 << 32:
        raise ProtocolError("nc out of range")
    if ha1 is None:
        ha1 = compute_ha1(username, realm, password or "", algorithm)
    nc_text = f"{nc:08x}"
    response = compute_response(
        ha1, algorithm=algorithm, method=method, uri=uri, nonce=nonce,
        qop=qop, nc=nc_text, cnonce=cnonce, body=body,
    )  # fmt: skip
    parts = [
        f"username={_quote(username)}",
        f"realm={_quote(realm)}",
        f"nonce={_quote(nonce)}",
        f"uri={_quote(uri)}",
        f"response={_quote(response)}",
        f"algorithm={algorithm}",
    ]
    if qop is not None or algorithm.endswith("-sess"):
        parts.append(f"cnonce={_quote(cnonce)}")
    if "opaque" in params:
        parts.append(f"opaque={_quote(params['opaque'])}")
    if qop is not None:
        parts += [f"qop={qop}", f"nc={nc_text}"]
    return "Digest " + ", ".join(parts)
