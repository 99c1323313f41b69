"""The custom router of docs/concepts.md (examples/routers/pbx_pair.py) in the real proxy.

The router is loaded the way sipedge loads ``server.router`` (``load_router``, with the
file's directory on the import path) and driven through the proxy core of the unit
tests (tests/proxy/harness.py: a transaction layer, a manual clock, no sockets).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from docs_support import EXAMPLES

from sipedge.app import load_router
from sipedge.config import parse_config
from sipedge.proxy.hooks import Router
from sipedge.sip.message import Request, Response

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from proxy.harness import Harness, answer, invite

ROUTERS = EXAMPLES / "routers"
PBX_A = ("10.0.0.20", 5060)
PBX_B = ("10.0.0.21", 5060)
EMERGENCY = ("10.0.0.30", 5060)


@pytest.fixture
def router() -> Iterator[Router]:
    """PbxPairRouter as ``server.router = "pbx_pair:PbxPairRouter"`` loads it."""
    sys.path.insert(0, str(ROUTERS))
    try:
        config = parse_config(
            {
                "server": {"router": "pbx_pair:PbxPairRouter"},
                "proxy": {"default_upstream": "sip:10.0.0.20:5060;transport=udp"},
            }
        )

        async def load() -> Router:  # load_router reads the running loop's clock
            return load_router(config)

        yield asyncio.run(load())
    finally:
        sys.path.remove(str(ROUTERS))
        sys.modules.pop("pbx_pair", None)


def sent_invites(h: Harness) -> list[tuple[Request, tuple[str, int]]]:
    return [
        (m, d.flow.remote) for m, d in h.take() if isinstance(m, Request) and m.method == "INVITE"
    ]


def upstream_statuses(h: Harness) -> list[int]:
    """Final statuses sent back to the caller (port 5061 in the harness)."""
    return [
        m.status
        for m, d in h.sent
        if isinstance(m, Response) and m.status >= 200 and d.flow.remote[1] == 5061
    ]


def test_router_is_the_documented_class(router: Router) -> None:
    assert type(router).__name__ == "PbxPairRouter"


def test_pbx_a_down_fails_over_to_pbx_b(router: Router) -> None:
    h = Harness(router=router)
    h.feed(invite(uri="sip:2001@example.org"))
    [(first, dest)] = sent_invites(h)
    assert dest == PBX_A
    assert first.header("X-Edge-Route") == "pbx-a"
    h.feed(answer(first, 503, "a1", extra="Retry-After: 30\r\n"), remote=PBX_A)
    [(second, dest)] = sent_invites(h)
    assert dest == PBX_B
    assert second.header("X-Edge-Route") == "pbx-b"
    h.feed(answer(second, 200, "b1"), remote=PBX_B)
    assert upstream_statuses(h) == [200]


def test_pbx_a_timeout_fails_over_too(router: Router) -> None:
    h = Harness(router=router)
    h.feed(invite(uri="sip:2001@example.org"))
    assert [d for _, d in sent_invites(h)] == [PBX_A]
    for _ in range(70):  # Timer B: 64*T1 = 32 s without any answer -> 408
        h.advance(0.5)
    assert PBX_B in [d for _, d in sent_invites(h)]


def test_busy_goes_back_to_the_caller(router: Router) -> None:
    h = Harness(router=router)
    h.feed(invite(uri="sip:2001@example.org"))
    [(first, _)] = sent_invites(h)
    h.feed(answer(first, 486, "a1"), remote=PBX_A)
    assert upstream_statuses(h) == [486] and sent_invites(h) == []


def test_emergency_numbers_go_to_their_gateway(router: Router) -> None:
    h = Harness(router=router)
    h.feed(invite(uri="sip:112@example.org"))
    [(req, dest)] = sent_invites(h)
    assert dest == EMERGENCY and req.header("X-Edge-Route") == "emergency"


def test_untrusted_sources_and_registrations_are_refused(router: Router) -> None:
    h = Harness(router=router, trusted=False)
    h.feed(invite(uri="sip:2001@example.org"))
    assert upstream_statuses(h) == [403] and sent_invites(h) == []
    h = Harness(router=router)
    h.feed(invite(uri="sip:example.org", method="REGISTER", call_id="reg-1"))
    assert upstream_statuses(h) == [405]
