"""Shared helpers for the auth tests: requests, a manual clock, challenge answers."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sipedge.sip.digest import build_authorization
from sipedge.sip.hdr.auth import parse_challenge
from sipedge.sip.message import Request
from sipedge.sip.parser import parse_message

REALM = "example.com"
SECRET = b"0123456789abcdef-test-secret"
REG_URI = "sip:example.com"
INVITE_URI = "sip:bob@example.com"


class ManualClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def request(
    method: str = "REGISTER",
    uri: str = REG_URI,
    *,
    user: str = "alice",
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
) -> Request:
    """A minimal request from ``user`` with the extra ``headers``."""
    lines = [
        f"{method} {uri} SIP/2.0",
        "Via: SIP/2.0/UDP 198.51.100.7:40000;branch=z9hG4bK-auth-test",
        "Max-Forwards: 70",
        f"To: <sip:{user}@example.com>",
        f"From: <sip:{user}@example.com>;tag=ft1",
        "Call-ID: auth-test@ua",
        f"CSeq: 1 {method}",
        *(f"{name}: {value}" for name, value in headers),
        f"Content-Length: {len(body)}",
        "",
        "",
    ]
    msg = parse_message("\r\n".join(lines).encode() + body)
    assert isinstance(msg, Request)
    return msg


def challenge_params(headers: list[tuple[str, str]], algorithm: str) -> dict[str, str]:
    """The parameters of the challenge for ``algorithm`` among a result's headers."""
    for _, value in headers:
        params = parse_challenge(value).params
        if params["algorithm"] == algorithm:
            return params
    raise AssertionError(f"no {algorithm} challenge in {headers}")


def answer(
    headers: list[tuple[str, str]],
    *,
    algorithm: str = "SHA-256",
    username: str = "alice",
    password: str = "s3cret",
    method: str = "REGISTER",
    uri: str = REG_URI,
    nc: int = 1,
    cnonce: str = "c0ffee",
    **overrides: str,
) -> str:
    """An Authorization value answering the ``algorithm`` challenge of ``headers``.

    ``overrides`` replace challenge parameters first (e.g. ``algorithm="MD5-sess"``,
    ``realm=...``)."""
    params = {**challenge_params(headers, algorithm.removesuffix("-sess")), **overrides}
    params["algorithm"] = algorithm
    return build_authorization(
        params, username=username, method=method, uri=uri, cnonce=cnonce,
        password=password, nc=nc,
    )  # fmt: skip


_PARAM_RE = re.compile(r'([A-Za-z0-9-]+)=("(?:[^"\\]|\\.)*"|[^,\s]+)')


def shape(headers: list[tuple[str, str]]) -> list[tuple[str, str, list[tuple[str, bool]]]]:
    """Header names, schemes, parameter names and whether each value is quoted."""
    out = []
    for name, value in headers:
        scheme, _, rest = value.partition(" ")
        params = [(m.group(1), m.group(2).startswith('"')) for m in _PARAM_RE.finditer(rest)]
        out.append((name, scheme, params))
    return out
