"""An initial request that preloads a Route to us is judged like any other initial request
(RFC 3261 §16.4 pops our entry, §16.5 then decides): never relayed for an untrusted,
unauthenticated caller (no open relay), a REGISTER to our domain is registered, a local user
is challenged. Sequential requests and requests that follow a Path/Record-Route entry with our
flow token still go to their next hop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from types import SimpleNamespace
from typing import Any

from sipedge.proxy.default_router import DefaultRouter, DefaultRouterConfig
from sipedge.registrar import MemoryLocationStore, Registrar
from sipedge.sip.message import Request, Response
from sipedge.sip.uri import parse_uri

from .harness import Harness, invite
from .test_flows import BROWSER, WsHarness
from .test_lane import register

OUR_ROUTE = "Route: <sip:127.0.0.1:5060;lr>\r\n"


class Challenges:
    """An authenticator that challenges every caller it is asked about."""

    def __init__(self) -> None:
        self.asked: list[str | None] = []

    async def check(self, req: Any, *, proxy: bool, expect_user: str | None = None) -> Any:
        self.asked.append(expect_user)

        return SimpleNamespace(
            ok=False,
            username=None,
            status=407 if proxy else 401,
            headers=[("Proxy-Authenticate", 'Digest realm="example.org", nonce="n"')],
            failed=False,
        )

    async def user_exists(self, username: str) -> bool:
        return False


def drive(h: Harness, data: bytes) -> list[tuple[Request | Response, Any]]:
    """Feed ``data`` and let the router's coroutines finish; what the proxy sent."""

    async def main() -> list[tuple[Request | Response, Any]]:
        h.feed(data)
        for _ in range(10):
            await asyncio.sleep(0)
        return h.take()

    return asyncio.run(main())


def harness(config: DefaultRouterConfig, *, trusted: bool) -> Harness:
    tasks: list[asyncio.Future[Any]] = []

    def spawn(aw: Awaitable[Any]) -> None:
        tasks.append(asyncio.ensure_future(aw))

    return Harness(trusted=trusted, router=DefaultRouter(config), spawn=spawn)


def finals(sent: list[tuple[Request | Response, Any]]) -> list[int]:
    return [m.status for m, _ in sent if isinstance(m, Response) and m.status >= 200]


def test_untrusted_caller_cannot_relay_through_a_preloaded_route() -> None:
    auth = Challenges()
    h = harness(DefaultRouterConfig(auth=auth), trusted=False)
    sent = drive(h, invite(uri="sip:bob@192.0.2.99:5099", extra=OUR_ROUTE))
    assert not [m for m, _ in sent if isinstance(m, Request)]  # nothing forwarded
    assert finals(sent) == [403]
    assert auth.asked == []  # a foreign From is not ours to challenge (RFC 3261 §22.3)


def test_local_user_with_a_preloaded_route_is_challenged() -> None:
    auth = Challenges()
    h = harness(DefaultRouterConfig(auth=auth), trusted=False)
    data = invite(uri="sip:bob@192.0.2.99:5099", extra=OUR_ROUTE)
    data = data.replace(b"From: <sip:alice@example.com>", b"From: <sip:alice@example.org>")
    sent = drive(h, data)
    assert finals(sent) == [407] and auth.asked == ["alice"]


def test_register_with_a_preloaded_route_is_registered() -> None:
    registrar = Registrar(MemoryLocationStore(None))
    h = harness(DefaultRouterConfig(registrar=registrar), trusted=True)
    sent = drive(h, register(extra=OUR_ROUTE))
    assert finals(sent) == [200]

    async def bound() -> int:
        return len(await registrar.bindings(Registrar.aor_of(parse_uri("sip:alice@example.org"))))

    assert asyncio.run(bound()) == 1


def test_request_following_our_flow_token_still_reaches_the_flow() -> None:
    # An upstream registrar uses the Path entry we added (RFC 3327): its initial INVITE
    # preloads our entry with the browser's flow token, and goes to that flow.
    h = WsHarness()
    h.proxy.is_trusted = lambda ip: False
    tok = h.tokens.encode(BROWSER)
    route = f"Route: <sip:{tok}@127.0.0.1:8080;transport=ws;lr>\r\n"
    h.feed(invite(uri="sip:x7k2@df7jal23ls0d.invalid;transport=ws", extra=route))
    fwd, dest = h.take_one(Request)
    assert fwd.method == "INVITE" and dest.flow == BROWSER
